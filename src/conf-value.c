/*
 * conf-value.c: the value types of linbat.conf. Each type has one checker
 * that turns a value as written into a number or says, in words a user can
 * act on, why it is wrong; sizes and durations take unit suffixes, and ranges
 * are reported in the unit a user would write ("between 1s and 1h").
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "conf-value.h"
#include "util.h"

/* A checker turns a value into a number (or 0) or says why it is wrong. */
struct conf_type_entry {
	const char *name;
	int numeric;
	int (*parse)(const struct conf_key *, const char *, long long *, char **);
};

/* A suffix of a size or a duration and what it multiplies by. */
struct conf_unit {
	const char *suffix;
	long long factor;
};

static const struct conf_unit conf_size_units[] = {
	{ "", 1 }, { "k", CONF_KB }, { "K", CONF_KB }, { "m", CONF_MB },
	{ "M", CONF_MB }, { "g", CONF_GB }, { "G", CONF_GB },
};

static const struct conf_unit conf_duration_units[] = {
	{ "", CONF_SEC }, { "ms", 1 }, { "s", CONF_SEC }, { "m", CONF_MIN }, { "h", CONF_HOUR },
};

static const struct {
	const char *word;
	int value;
} conf_bools[] = {
	{ "yes", 1 }, { "no", 0 }, { "true", 1 }, { "false", 0 },
	{ "on", 1 }, { "off", 0 }, { "1", 1 }, { "0", 0 },
};

/* Format n (bytes or milliseconds) with the largest suffix that divides it. */
static void
conf_format_units(const struct conf_unit *units, size_t n, long long v, char *out, size_t outlen)
{
	size_t i;

	for (i = n; i-- > 0;) {
		if (v != 0 && v % units[i].factor == 0) {
			snprintf(out, outlen, "%lld%s", v / units[i].factor, units[i].suffix);
			return;
		}
	}
	snprintf(out, outlen, "%lld", v);
}

/* Format a value of a numeric key in the unit a user would write. */
static void
conf_format(const struct conf_key *key, long long v, char *out, size_t outlen)
{
	if (key->type == CONF_SIZE)
		conf_format_units(conf_size_units, nitems(conf_size_units), v, out, outlen);
	else if (key->type == CONF_DURATION && v % CONF_SEC == 0)
		conf_format_units(conf_duration_units + 2, nitems(conf_duration_units) - 2, v, out,
		    outlen);
	else if (key->type == CONF_DURATION)
		snprintf(out, outlen, "%lldms", v);
	else
		snprintf(out, outlen, "%lld", v);
}

/* Check v against the key's range. */
static int
conf_check_range(const struct conf_key *key, long long v, char **why)
{
	char lo[32], hi[32];

	if (v >= key->min && v <= key->max)
		return 0;
	conf_format(key, key->min, lo, sizeof lo);
	conf_format(key, key->max, hi, sizeof hi);
	xasprintf(why, "must be between %s and %s", lo, hi);
	return -1;
}

/* Parse leading decimal digits (a '-' first if signed); *end is what follows. */
static int
conf_parse_digits(const char *s, int sign, long long *v, const char **end)
{
	char *e;
	const char *d = (sign && *s == '-') ? s + 1 : s;

	if (!isdigit((unsigned char)*d))
		return -1;
	errno = 0;
	*v = strtoll(s, &e, 10);
	if (errno == ERANGE)
		return -1;
	*end = e;
	return 0;
}

/* Parse a number followed by one of the units' suffixes. */
static int
conf_parse_units(const char *s, const struct conf_unit *units, size_t n, long long *v)
{
	const char *end;
	long long digits;
	size_t i;

	if (conf_parse_digits(s, 0, &digits, &end) != 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (strcmp(end, units[i].suffix) != 0)
			continue;
		if (digits > LLONG_MAX / units[i].factor)
			return -1;
		*v = digits * units[i].factor;
		return 0;
	}
	return -1;
}

/* CONF_STRING: anything goes. */
static int
conf_parse_string(const struct conf_key *key, const char *s, long long *v, char **why)
{
	*v = 0;
	return 0;
}

/* CONF_INT: a decimal integer in range. */
static int
conf_parse_int(const struct conf_key *key, const char *s, long long *v, char **why)
{
	const char *end;

	if (conf_parse_digits(s, 1, v, &end) != 0 || *end != '\0') {
		*why = xstrdup("must be a whole number");
		return -1;
	}
	return conf_check_range(key, *v, why);
}

/* CONF_BOOL: one of the words of conf_bools, in any case. */
static int
conf_parse_bool(const struct conf_key *key, const char *s, long long *v, char **why)
{
	size_t i;

	for (i = 0; i < nitems(conf_bools); i++) {
		if (strcasecmp(s, conf_bools[i].word) == 0) {
			*v = conf_bools[i].value;
			return 0;
		}
	}
	*why = xstrdup("must be yes or no (or true/false, on/off, 1/0)");
	return -1;
}

/* Say "a|b|c" as "a, b or c", each word followed by suffix. */
static char *
conf_list(const char *choices, const char *suffix)
{
	struct buf b;
	size_t n;

	buf_init(&b);
	for (;; choices += n + 1) {
		n = strcspn(choices, "|");
		buf_add(&b, choices, n);
		buf_adds(&b, suffix);
		if (choices[n] == '\0')
			break;
		buf_adds(&b, strchr(choices + n + 1, '|') != NULL ? ", " : " or ");
	}
	return buf_take(&b);
}

/* CONF_ENUM: one of the choices, in any case; the number is its index. */
static int
conf_parse_enum(const struct conf_key *key, const char *s, long long *v, char **why)
{
	const char *c = key->choices;
	size_t len;
	char *list;

	for (*v = 0;; (*v)++) {
		len = strcspn(c, "|");
		if (strlen(s) == len && strncasecmp(s, c, len) == 0)
			return 0;
		if (c[len] == '\0')
			break;
		c += len + 1;
	}
	list = conf_list(key->choices, "");
	xasprintf(why, "must be one of %s", list);
	free(list);
	return -1;
}

/* CONF_ADDR: host:port or [v6]:port, checked by util_parse_hostport(). */
static int
conf_parse_addr(const struct conf_key *key, const char *s, long long *v, char **why)
{
	char host[256];
	int port;

	*v = 0;
	if (util_parse_hostport(s, host, sizeof host, &port) == 0 && host[0] != '\0' &&
	    port >= 1 && port <= 65535)
		return 0;
	*why = xstrdup("must be host:port or [IPv6]:port, with a port from 1 to 65535");
	return -1;
}

/* Whether scheme (of length len) is one of the "a|b" list, in any case. */
static int
conf_scheme_allowed(const char *list, const char *scheme, size_t len)
{
	size_t n;

	for (;; list += n + 1) {
		n = strcspn(list, "|");
		if (n == len && strncasecmp(list, scheme, len) == 0)
			return 1;
		if (list[n] == '\0')
			return 0;
	}
}

/* CONF_URL: an allowed scheme, "://", a host, and no blanks. */
static int
conf_parse_url(const struct conf_key *key, const char *s, long long *v, char **why)
{
	const char *schemes = key->choices != NULL ? key->choices : "http|https";
	const char *sep = strstr(s, "://");
	const char *p;
	char *list;

	*v = 0;
	for (p = s; *p != '\0' && !isspace((unsigned char)*p) && !iscntrl((unsigned char)*p); p++)
		;
	if (sep != NULL && *p == '\0' && conf_scheme_allowed(schemes, s, sep - s) &&
	    sep[3] != '\0' && sep[3] != '/')
		return 0;
	list = conf_list(schemes, "://");
	xasprintf(why, "must be a URL starting with %s, with a host and no blanks", list);
	free(list);
	return -1;
}

/* CONF_SIZE: bytes, with an optional k/m/g suffix. */
static int
conf_parse_size(const struct conf_key *key, const char *s, long long *v, char **why)
{
	if (conf_parse_units(s, conf_size_units, nitems(conf_size_units), v) != 0) {
		*why = xstrdup("must be a size such as 4096, 512k, 1M or 2G");
		return -1;
	}
	return conf_check_range(key, *v, why);
}

/* CONF_DURATION: milliseconds; bare numbers are seconds. */
static int
conf_parse_duration(const struct conf_key *key, const char *s, long long *v, char **why)
{
	if (conf_parse_units(s, conf_duration_units, nitems(conf_duration_units), v) != 0) {
		*why = xstrdup("must be a duration such as 250ms, 30s, 15m or 2h");
		return -1;
	}
	return conf_check_range(key, *v, why);
}

/*
 * CONF_CONNINFO: what libpq accepts. libpq's own message is not passed on,
 * since it may quote a piece of a malformed password.
 */
static int
conf_parse_conninfo(const struct conf_key *key, const char *s, long long *v, char **why)
{
	PQconninfoOption *opts;
	char *err = NULL;

	*v = 0;
	opts = PQconninfoParse(s, &err);
	if (opts != NULL) {
		PQconninfoFree(opts);
		return 0;
	}
	PQfreemem(err);
	*why = xstrdup("must be a PostgreSQL connection string: key=value words "
		       "or a postgresql:// URI");
	return -1;
}

static const struct conf_type_entry conf_types[] = {
	[CONF_STRING] = { "string", 0, conf_parse_string },
	[CONF_INT] = { "integer", 1, conf_parse_int },
	[CONF_BOOL] = { "boolean", 1, conf_parse_bool },
	[CONF_ENUM] = { "enum", 1, conf_parse_enum },
	[CONF_ADDR] = { "address", 0, conf_parse_addr },
	[CONF_URL] = { "URL", 0, conf_parse_url },
	[CONF_SIZE] = { "size", 1, conf_parse_size },
	[CONF_DURATION] = { "duration", 1, conf_parse_duration },
	[CONF_CONNINFO] = { "connection string", 0, conf_parse_conninfo },
};

int
conf_value_parse(const struct conf_key *key, const char *s, long long *v, char **why)
{
	return conf_types[key->type].parse(key, s, v, why);
}

int
conf_value_numeric(enum conf_type type)
{
	return conf_types[type].numeric;
}

const char *
conf_value_type_name(enum conf_type type)
{
	return conf_types[type].name;
}
