/* version.h: the program version and the versions of the libraries it runs with. */
#ifndef LINBAT_VERSION_H
#define LINBAT_VERSION_H

#include <stdio.h>

/* Print "PROGRAM VERSION" and one line per linked library. */
void version_print(FILE *, const char *program);

#endif
