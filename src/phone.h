/*
 * phone.h: one normaliser for telephone numbers, used wherever a number
 * enters linbat (SMS and WhatsApp webhooks, CSV import, the API). It takes
 * Indonesian numbers the way people write them and international numbers,
 * and gives E.164 ("+6281234567890"), or a reason why the number cannot be.
 */
#ifndef LINBAT_PHONE_H
#define LINBAT_PHONE_H

#include <stddef.h>

/* The longest E.164 number with its "+" and NUL. */
#define PHONE_E164_MAX 17

/*
 * Normalise in into out (outlen >= PHONE_E164_MAX). Accepted: "0812-3456-7890",
 * "62812...", "+62 812 ...", "+62 (0)812...", "(0511) 4772xxx" landlines,
 * "00<cc>..." and "+<cc>..." international. Spaces, dashes, dots, slashes
 * and parentheses are separators. Returns 0, or -1 with *cause (caller frees)
 * saying why the number is impossible.
 */
int phone_normalise(const char *in, char *out, size_t outlen, char **cause);

#endif
