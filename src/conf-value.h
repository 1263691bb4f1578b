/*
 * conf-value.h: the value types of linbat.conf (enum conf_type): parsing a
 * value as written, checking its range, and the units of sizes and durations.
 * Private to conf.c; callers use conf.h.
 */
#ifndef LINBAT_CONF_VALUE_H
#define LINBAT_CONF_VALUE_H

#include "conf.h"

#define CONF_KB 1024LL
#define CONF_MB (1024LL * 1024)
#define CONF_GB (1024LL * 1024 * 1024)
#define CONF_SEC 1000LL
#define CONF_MIN (60 * CONF_SEC)
#define CONF_HOUR (60 * CONF_MIN)
#define CONF_DAY (24 * CONF_HOUR)

/*
 * Parse s as a value of key: 0 and its number in *v (bytes, milliseconds,
 * 0/1, the index of an enum's choice; 0 for the text types), or -1 and *why
 * (caller frees), such as "must be a duration such as 250ms, 30s, 15m or 2h".
 */
int conf_value_parse(const struct conf_key *key, const char *s, long long *v, char **why);
/* Whether values of the type are numbers (conf_int() may read them). */
int conf_value_numeric(enum conf_type);
/* The type's name, for messages: "duration", "URL". */
const char *conf_value_type_name(enum conf_type);

#endif
