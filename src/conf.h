/*
 * conf.h: the configuration file of linbatd and linbatctl. One const schema
 * table says, for every key, its section, type, default, range, whether a
 * SIGHUP may change it, whether it is secret, and its help text; the sample
 * config, the man page and the tests are checked against that table.
 * Channel instances are sections "[channel NAME]" whose keys depend on their
 * "type"; the caller supplies the schema of each type (see conf_schema_fn).
 */
#ifndef LINBAT_CONF_H
#define LINBAT_CONF_H

#include <stddef.h>

enum conf_type {
	CONF_STRING,   /* any text, as written */
	CONF_INT,      /* a decimal integer inside [min, max] */
	CONF_BOOL,     /* yes/no, true/false, on/off, 1/0 (any case); 1 or 0 */
	CONF_ENUM,     /* one of choices "a|b|c" (any case); the index of the choice */
	CONF_ADDR,     /* host:port or [v6]:port, port 1-65535 */
	CONF_URL,      /* scheme://host...; schemes from choices, "http|https" if NULL */
	CONF_SIZE,     /* bytes; suffixes k, m, g (either case) are powers of 1024 */
	CONF_DURATION, /* milliseconds; suffixes ms, s, m, h; a bare number is seconds */
	CONF_CONNINFO, /* a libpq connection string: key=value words or a postgresql:// URI */
};

#define CONF_RELOADABLE 0x1 /* a SIGHUP may change it without a restart */
#define CONF_SECRET 0x2     /* never logged (for CONF_CONNINFO: its password only) */
#define CONF_REQUIRED 0x4   /* must be set, and not empty */

/*
 * One row of a schema. For CONF_INT, CONF_SIZE and CONF_DURATION, min and max
 * bound the value in its unit (bytes, milliseconds); def is written as a user
 * would write it ("1M", "30s") and "" means no default.
 */
struct conf_key {
	const char *section; /* "daemon", ...; NULL in channel schemas */
	const char *name;
	enum conf_type type;
	const char *def;
	long long min, max;
	const char *choices; /* CONF_ENUM: "a|b|c"; CONF_URL: allowed schemes "imap|imaps" */
	int flags;           /* CONF_RELOADABLE, CONF_SECRET, CONF_REQUIRED */
	const char *help;
};

struct conf;
struct conf_section;

/*
 * The keys of one channel type: NULL if the type is unknown. Rows may repeat
 * a generic channel key ("rate", "enabled") to give it another default.
 */
typedef const struct conf_key *(*conf_schema_fn)(const char *type, size_t *nkeys);

/*
 * Read and check the file at path. On success the values of secret keys have
 * been given to log_add_secret(). On error: NULL, and *cause (caller frees)
 * is one line naming the file, the line and the key, such as
 * "linbat.conf:12: unknown key "listen_port" in section [daemon]".
 */
struct conf *conf_load(const char *path, conf_schema_fn, char **cause);
void conf_free(struct conf *);

/* The path conf_load() was given (owned by the conf). */
const char *conf_path(const struct conf *);

/*
 * The value of a daemon key, or its default: never NULL for a schema key
 * ("" if it has no default), NULL for a key not in the schema. Owned by the
 * conf. An enum gives its canonical (lower-case) choice.
 */
const char *conf_str(const struct conf *, const char *section, const char *key);
/*
 * The value of a numeric daemon key: ints, sizes in bytes, durations in
 * milliseconds, bools 0/1, enums the index of the choice (so log_level maps
 * onto enum log_level). Fatal for a key that is not in the schema or not
 * numeric: that is a programming error.
 */
long long conf_int(const struct conf *, const char *section, const char *key);

/* Channel instances, in the order of the file. */
size_t conf_channel_count(const struct conf *);
const struct conf_section *conf_channel(const struct conf *, size_t);
const char *conf_channel_name(const struct conf_section *);
const char *conf_channel_type(const struct conf_section *);
/* Like conf_str() and conf_int(), with defaults from the type's schema. */
const char *conf_channel_str(const struct conf_section *, const char *key);
long long conf_channel_int(const struct conf_section *, const char *key);

/* The daemon schema and the keys every channel accepts, for docs and tests. */
const struct conf_key *conf_schema(size_t *n);
const struct conf_key *conf_channel_schema(size_t *n);

/*
 * For SIGHUP: 0 if new differs from old only in reloadable keys, else -1 and
 * *cause (caller frees) names the first key or channel that needs a restart.
 */
int conf_check_reload(const struct conf *old, const struct conf *new, char **cause);

#endif
