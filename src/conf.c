/*
 * conf.c: reads linbat.conf with inih and checks every value against one
 * const schema table, so that a mistake is reported once, with the file,
 * line and key, before the daemon starts (or before a SIGHUP applies it).
 *
 * Debian's inih calls its handler without a line number, so the file is fed
 * to ini_parse_stream() by our own reader, which counts lines and also sees
 * section headers (an empty unknown section is still an error). The reader
 * strips leading blanks: inih would otherwise join an indented line onto the
 * key above it, and an indented "key = value" would vanish into a value.
 *
 * Loading has two passes. Reading records raw key = value items per section
 * (catching unknown sections and duplicates). Binding then matches items to
 * the section's schema: a fixed slice of the daemon table, or for
 * "[channel NAME]" the schema of its type, known only once the whole file is
 * read since "type" may come last. Of all errors, the one on the lowest line
 * is reported; errors of the whole file (a missing key) come last.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>
#include <libpq-fe.h>

#include "conf.h"
#include "conf-value.h"
#include "log.h"
#include "util.h"

#define CONF_CHANNEL_NAME_MAX 32

/* The daemon's keys; the sample config and the man page follow this order. */
static const struct conf_key conf_keys[] = {
	{ "daemon", "listen", CONF_ADDR, "127.0.0.1:8080", 0, 0, NULL, 0,
	  "Address and port of the HTTP server (webhooks, API, inbox, /metrics)." },
	{ "daemon", "public_url", CONF_URL, "http://127.0.0.1:8080", 0, 0, NULL, 0,
	  "The URL at which providers and browsers reach this server; webhook URLs "
	  "and links in messages are built from it." },
	{ "daemon", "max_body", CONF_SIZE, "1M", CONF_KB, 64 * CONF_MB, NULL, CONF_RELOADABLE,
	  "Largest HTTP request body accepted; a larger one is refused with 413." },
	{ "daemon", "log_level", CONF_ENUM, "info", 0, 0, "debug|info|warn|error", CONF_RELOADABLE,
	  "Least severe log lines written." },
	{ "daemon", "log_format", CONF_ENUM, "text", 0, 0, "text|json", CONF_RELOADABLE,
	  "Log lines as text (journald takes them as they are) or as one JSON object each." },
	{ "daemon", "migrations_dir", CONF_STRING, LINBAT_DATADIR "/migrations", 0, 0, NULL, 0,
	  "Directory of the SQL migrations (NNNN_what.sql) that linbatctl migrate applies." },
	{ "daemon", "web_dir", CONF_STRING, LINBAT_DATADIR "/web", 0, 0, NULL, 0,
	  "Directory of the static files of the operator inbox and the manager pages." },
	{ "daemon", "shutdown_timeout", CONF_DURATION, "5s", 0, 10 * CONF_MIN, NULL, 0,
	  "On SIGTERM, how long sends and requests under way may take to finish before "
	  "linbatd exits." },
	{ "daemon", "metrics_token", CONF_STRING, "", 0, 0, NULL, CONF_SECRET,
	  "If set, /metrics asks for the header \"Authorization: Bearer TOKEN\"; if empty, "
	  "it asks for nothing." },
	{ "database", "url", CONF_CONNINFO, "", 0, 0, NULL, CONF_REQUIRED | CONF_SECRET,
	  "PostgreSQL connection string: libpq key=value words or a postgresql:// URI. "
	  "A password in it is never logged; a ~/.pgpass file is a better place for it." },
	{ "database", "pool_size", CONF_INT, "4", 1, 64, NULL, 0,
	  "Connections to PostgreSQL that each linbatd process keeps open." },
	{ "database", "query_timeout", CONF_DURATION, "30s", CONF_SEC, CONF_HOUR, NULL, 0,
	  "Longest a query may run before it is cancelled." },
	{ "dispatch", "batch", CONF_INT, "100", 1, 1000, NULL, 0,
	  "Outbound messages claimed from the database in one round trip." },
	{ "dispatch", "lease", CONF_DURATION, "60s", 5 * CONF_SEC, CONF_HOUR, NULL, 0,
	  "How long a claimed message stays locked to this process; if the process dies, "
	  "another one takes the message over after this." },
	{ "dispatch", "max_attempts", CONF_INT, "8", 1, 100, NULL, 0,
	  "Attempts to send one message on one channel before it counts as failed there "
	  "and the investor's next channel is tried." },
	{ "dispatch", "backoff_base", CONF_DURATION, "1s", 100, CONF_HOUR, NULL, 0,
	  "Delay before the first retry of a temporary failure; each further retry doubles "
	  "it, with jitter. A provider's Retry-After wins." },
	{ "dispatch", "in_flight", CONF_INT, "200", 1, 10000, NULL, 0,
	  "Most sends waiting for a provider's answer at one time, over all channels." },
	{ "routing", "sla", CONF_DURATION, "15m", CONF_MIN, 7 * CONF_DAY, NULL, 0,
	  "An assigned conversation whose investor has waited this long for an answer goes "
	  "to the next free operator, and the manager sees it." },
	{ "routing", "ack_text_id", CONF_STRING,
	  "Terima kasih, pesan Anda sudah kami terima. Semua petugas sedang melayani "
	  "investor lain, kami akan segera membalas.", 0, 0, NULL, 0,
	  "Acknowledgement sent, in Indonesian, to an investor whose message waits because "
	  "no operator is free." },
	{ "routing", "ack_text_en", CONF_STRING,
	  "Thank you, we have received your message. All our officers are busy with other "
	  "investors, we will reply soon.", 0, 0, NULL, 0,
	  "The same acknowledgement, in English, for investors whose language is English." },
	{ "routing", "away_grace", CONF_DURATION, "60s", 0, CONF_HOUR, NULL, 0,
	  "An online operator whose last live connection to the inbox closed is set away "
	  "after this long, unless they connect again first." },
	{ "scheduler", "interval", CONF_DURATION, "60s", CONF_SEC, CONF_HOUR, NULL, 0,
	  "How often linbatd plans the LKPM reminders that are due (one process plans at a "
	  "time, through an advisory lock) and sweeps conversations past their SLA." },
	{ "auth", "session_ttl", CONF_DURATION, "12h", CONF_SEC, 30 * CONF_DAY, NULL, 0,
	  "How long a login to the inbox lasts; after it the operator logs in again." },
};

/* The keys every [channel NAME] accepts, whatever its type. */
static const struct conf_key conf_channel_keys[] = {
	{ NULL, "type", CONF_STRING, "", 0, 0, NULL, CONF_REQUIRED,
	  "The adapter that speaks for this instance; it decides which other keys the "
	  "section takes." },
	{ NULL, "enabled", CONF_BOOL, "yes", 0, 0, NULL, 0,
	  "A disabled instance is checked but not started." },
	{ NULL, "rate", CONF_INT, "0", 0, 100000, NULL, 0,
	  "Most messages sent per second through this instance; 0 means no limit." },
};

/* A key = value line as read, before its section's schema is known. */
struct conf_item {
	char *name;
	char *value;
	int line;
};

/* A schema key with its value: as set in the file, else its default. */
struct conf_entry {
	const struct conf_key *key;
	char *value;
	long long num;
	int line; /* 0 if the default is used */
};

struct conf_section {
	char *name;  /* "daemon", or the channel instance's NAME */
	char *label; /* "[daemon]", "[channel NAME]", for messages */
	int channel;
	int line; /* of the header; 0 if not in the file */
	const char *type;
	struct conf_item *items;
	size_t nitems;
	struct conf_entry *entries;
	size_t nentries;
};

struct conf {
	char *path;
	struct conf_section **daemon;
	size_t ndaemon;
	struct conf_section **channels;
	size_t nchannels;
};

/* The state of one conf_load(). */
struct conf_loader {
	struct conf *conf;
	conf_schema_fn schema_fn;
	FILE *f;
	char *buf;
	size_t bufsize;
	int lineno;
	struct conf_section *current;
	int skip; /* keys of a section already reported as bad are ignored */
	char *cause;
	int cause_line;
};

static void conf_error(struct conf_loader *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));

/* Record an error; of several, the one on the lowest line is kept. */
static void
conf_error(struct conf_loader *cl, int line, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int rank = line > 0 ? line : INT_MAX;

	if (cl->cause != NULL && rank >= cl->cause_line)
		return;
	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	free(cl->cause);
	if (line > 0)
		xasprintf(&cl->cause, "%s:%d: %s", cl->conf->path, line, msg);
	else
		xasprintf(&cl->cause, "%s: %s", cl->conf->path, msg);
	cl->cause_line = rank;
	free(msg);
}

/* Make a section; its entries are filled when it is bound. */
static struct conf_section *
conf_section_new(const char *name, int channel)
{
	struct conf_section *sec = xcalloc(1, sizeof *sec);

	sec->name = xstrdup(name);
	sec->channel = channel;
	if (channel)
		xasprintf(&sec->label, "[channel %s]", name);
	else
		xasprintf(&sec->label, "[%s]", name);
	return sec;
}

/* Free a section and what it holds. */
static void
conf_section_free(struct conf_section *sec)
{
	size_t i;

	for (i = 0; i < sec->nitems; i++) {
		free(sec->items[i].name);
		free(sec->items[i].value);
	}
	for (i = 0; i < sec->nentries; i++)
		free(sec->entries[i].value);
	free(sec->items);
	free(sec->entries);
	free(sec->name);
	free(sec->label);
	free(sec);
}

/* Append an entry for key unless a key of that name is already there. */
static void
conf_section_add_key(struct conf_section *sec, const struct conf_key *key)
{
	size_t i;

	for (i = 0; i < sec->nentries; i++) {
		if (strcmp(sec->entries[i].key->name, key->name) == 0)
			return;
	}
	sec->entries = xrealloc(sec->entries, (sec->nentries + 1) * sizeof *sec->entries);
	memset(&sec->entries[sec->nentries], 0, sizeof *sec->entries);
	sec->entries[sec->nentries++].key = key;
}

/* The section of that name in a list, or NULL. */
static struct conf_section *
conf_find_section(struct conf_section **list, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(list[i]->name, name) == 0)
			return list[i];
	}
	return NULL;
}

/* Make the conf with one section per section named in the daemon table. */
static struct conf *
conf_new(const char *path)
{
	struct conf *conf = xcalloc(1, sizeof *conf);
	struct conf_section *sec;
	size_t i;

	conf->path = xstrdup(path);
	for (i = 0; i < nitems(conf_keys); i++) {
		sec = conf_find_section(conf->daemon, conf->ndaemon, conf_keys[i].section);
		if (sec == NULL) {
			sec = conf_section_new(conf_keys[i].section, 0);
			conf->daemon = xrealloc(conf->daemon, (conf->ndaemon + 1) * sizeof sec);
			conf->daemon[conf->ndaemon++] = sec;
		}
		conf_section_add_key(sec, &conf_keys[i]);
	}
	return conf;
}

/* Free a conf. */
void
conf_free(struct conf *conf)
{
	size_t i;

	if (conf == NULL)
		return;
	for (i = 0; i < conf->ndaemon; i++)
		conf_section_free(conf->daemon[i]);
	for (i = 0; i < conf->nchannels; i++)
		conf_section_free(conf->channels[i]);
	free(conf->daemon);
	free(conf->channels);
	free(conf->path);
	free(conf);
}

/* Whether name is a valid channel instance name: [a-z0-9_-]{1,32}. */
static int
conf_channel_name_ok(const char *name)
{
	size_t len = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-");

	return len >= 1 && len <= CONF_CHANNEL_NAME_MAX && name[len] == '\0';
}

/* A "[daemon]"-style header: the section must exist and appear once. */
static struct conf_section *
conf_open_daemon(struct conf_loader *cl, const char *name)
{
	struct conf_section *sec = conf_find_section(cl->conf->daemon, cl->conf->ndaemon, name);

	if (sec == NULL) {
		conf_error(cl, cl->lineno, "unknown section [%s]", name);
		return NULL;
	}
	if (sec->line != 0) {
		conf_error(cl, cl->lineno, "duplicate section [%s] (first on line %d)", name,
		    sec->line);
		return NULL;
	}
	sec->line = cl->lineno;
	return sec;
}

/* A "[channel NAME]" header: a new, well-named, unique instance. */
static struct conf_section *
conf_open_channel(struct conf_loader *cl, const char *name)
{
	struct conf *conf = cl->conf;
	struct conf_section *sec;

	name += strspn(name, " \t");
	if (!conf_channel_name_ok(name)) {
		conf_error(cl, cl->lineno,
		    "bad channel name \"%s\": use 1 to %d of a-z, 0-9, _ and -", name,
		    CONF_CHANNEL_NAME_MAX);
		return NULL;
	}
	if ((sec = conf_find_section(conf->channels, conf->nchannels, name)) != NULL) {
		conf_error(cl, cl->lineno, "duplicate section [channel %s] (first on line %d)",
		    name, sec->line);
		return NULL;
	}
	sec = conf_section_new(name, 1);
	sec->line = cl->lineno;
	conf->channels = xrealloc(conf->channels, (conf->nchannels + 1) * sizeof sec);
	conf->channels[conf->nchannels++] = sec;
	return sec;
}

/*
 * Look at a line that starts with '[' the way inih will: the section name is
 * what lies between '[' and the first ']'. Without ']', inih reports the line.
 */
static void
conf_see_header(struct conf_loader *cl, const char *line)
{
	const char *end = strchr(line, ']');
	char *name;

	cl->current = NULL;
	cl->skip = 1;
	if (end == NULL)
		return;
	name = xstrndup(line + 1, end - line - 1);
	if (strncmp(name, "channel", 7) == 0 && (name[7] == '\0' || isblank((unsigned char)name[7])))
		cl->current = conf_open_channel(cl, name + 7);
	else
		cl->current = conf_open_daemon(cl, name);
	cl->skip = cl->current == NULL;
	free(name);
}

/*
 * inih's reader: one whole line per call, counted, without a BOM or leading
 * blanks. A line too long for inih's buffer is an error here, since inih
 * would read its tail as a line of its own.
 */
static char *
conf_read_line(char *str, int num, void *arg)
{
	struct conf_loader *cl = arg;
	ssize_t n;
	char *line;

	errno = 0;
	if ((n = getline(&cl->buf, &cl->bufsize, cl->f)) == -1) {
		if (errno != 0)
			conf_error(cl, cl->lineno + 1, "cannot read: %s", strerror(errno));
		return NULL;
	}
	line = cl->buf;
	if (++cl->lineno == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0)
		line += 3;
	line += strspn(line, " \t");
	if (strlen(cl->buf) != (size_t)n)
		conf_error(cl, cl->lineno, "line contains a NUL byte");
	else if (strlen(line) > (size_t)num - 1)
		conf_error(cl, cl->lineno, "line is longer than %d characters", num - 2);
	else {
		if (*line == '[')
			conf_see_header(cl, line);
		memcpy(str, line, strlen(line) + 1);
		return str;
	}
	str[0] = '\0';
	return str;
}

/* The raw item of that name in a section, or NULL. */
static struct conf_item *
conf_find_item(struct conf_section *sec, const char *name)
{
	size_t i;

	for (i = 0; i < sec->nitems; i++) {
		if (strcmp(sec->items[i].name, name) == 0)
			return &sec->items[i];
	}
	return NULL;
}

/* inih's handler: record key = value in the current section. */
static int
conf_handle(void *arg, const char *section, const char *name, const char *value)
{
	struct conf_loader *cl = arg;
	struct conf_section *sec = cl->current;
	struct conf_item *item;

	if (sec == NULL) {
		if (!cl->skip)
			conf_error(cl, cl->lineno, "key \"%s\" is outside any section", name);
		return 1;
	}
	if ((item = conf_find_item(sec, name)) != NULL) {
		conf_error(cl, cl->lineno, "duplicate key \"%s\" in section %s (first on line %d)",
		    name, sec->label, item->line);
		return 1;
	}
	sec->items = xrealloc(sec->items, (sec->nitems + 1) * sizeof *sec->items);
	item = &sec->items[sec->nitems++];
	item->name = xstrdup(name);
	item->value = xstrdup(value);
	item->line = cl->lineno;
	return 1;
}

/* The entry of that key name in a section, or NULL. */
static struct conf_entry *
conf_find_entry(const struct conf_section *sec, const char *name)
{
	size_t i;

	if (sec == NULL)
		return NULL;
	for (i = 0; i < sec->nentries; i++) {
		if (strcmp(sec->entries[i].key->name, name) == 0)
			return &sec->entries[i];
	}
	return NULL;
}

/* Give an entry its value (set or default), checked by its type. */
static void
conf_set_entry(struct conf_loader *cl, struct conf_section *sec,
    struct conf_entry *e, const char *value)
{
	const struct conf_key *key = e->key;
	const char *c = key->choices;
	char *why = NULL;

	if (conf_value_parse(key, value, &e->num, &why) != 0) {
		if (e->line == 0)
			conf_error(cl, 0, "bad default for \"%s\" in section %s: %s", key->name,
			    sec->label, why);
		else
			conf_error(cl, e->line, "bad value for \"%s\": %s", key->name, why);
		free(why);
		e->value = xstrdup(value);
		return;
	}
	if (key->type != CONF_ENUM) {
		e->value = xstrdup(value);
		return;
	}
	for (long long i = 0; i < e->num; i++)
		c += strcspn(c, "|") + 1;
	e->value = xstrndup(c, strcspn(c, "|"));
}

/* Match a section's items to its entries, then check every entry. */
static void
conf_bind(struct conf_loader *cl, struct conf_section *sec)
{
	struct conf_item *item;
	struct conf_entry *e;
	size_t i;

	for (i = 0; i < sec->nitems; i++) {
		item = &sec->items[i];
		if ((e = conf_find_entry(sec, item->name)) == NULL) {
			conf_error(cl, item->line, "unknown key \"%s\" in section %s%s%s%s",
			    item->name, sec->label, sec->channel ? " (type \"" : "",
			    sec->channel ? sec->type : "", sec->channel ? "\")" : "");
			continue;
		}
		e->line = item->line;
	}
	for (i = 0; i < sec->nentries; i++) {
		e = &sec->entries[i];
		item = e->line != 0 ? conf_find_item(sec, e->key->name) : NULL;
		conf_set_entry(cl, sec, e, item != NULL ? item->value : e->key->def);
		if ((e->key->flags & CONF_REQUIRED) && e->value[0] == '\0') {
			if (e->line == 0)
				conf_error(cl, 0, "missing required key \"%s\" in section %s",
				    e->key->name, sec->label);
			else
				conf_error(cl, e->line, "bad value for \"%s\": must not be empty",
				    e->key->name);
		}
	}
}

/* Find a channel's type and the type's schema, then bind the channel. */
static void
conf_bind_channel(struct conf_loader *cl, struct conf_section *sec)
{
	struct conf_item *type = conf_find_item(sec, "type");
	const struct conf_key *keys;
	size_t n = 0, i;

	if (type == NULL || type->value[0] == '\0') {
		conf_error(cl, type != NULL ? type->line : sec->line,
		    "section %s needs a \"type\" key", sec->label);
		return;
	}
	if ((keys = cl->schema_fn(type->value, &n)) == NULL) {
		conf_error(cl, type->line, "unknown channel type \"%s\" in section %s",
		    type->value, sec->label);
		return;
	}
	sec->type = type->value;
	for (i = 0; i < n; i++)
		conf_section_add_key(sec, &keys[i]);
	for (i = 0; i < nitems(conf_channel_keys); i++)
		conf_section_add_key(sec, &conf_channel_keys[i]);
	conf_bind(cl, sec);
	sec->type = conf_find_entry(sec, "type")->value;
}

/*
 * In a postgresql:// URI the password is also written percent-encoded
 * ("p%40ss"), and a logged URI shows that form: register it too.
 */
static void
conf_add_uri_password(const char *uri)
{
	const char *user, *at, *colon;
	char *raw;

	if ((user = strstr(uri, "://")) == NULL)
		return;
	user += 3;
	if ((at = strchr(user, '@')) == NULL || (size_t)(at - user) > strcspn(user, "/?"))
		return;
	if ((colon = memchr(user, ':', at - user)) == NULL)
		return;
	raw = xstrndup(colon + 1, at - colon - 1);
	log_add_secret(raw);
	free(raw);
}

/* Register the secret part of an entry's value with the log. */
static void
conf_add_secret(const struct conf_entry *e)
{
	PQconninfoOption *opts, *o;

	if (!(e->key->flags & CONF_SECRET) || e->value[0] == '\0')
		return;
	if (e->key->type != CONF_CONNINFO) {
		log_add_secret(e->value);
		return;
	}
	if (strncmp(e->value, "postgres", 8) == 0)
		conf_add_uri_password(e->value);
	if ((opts = PQconninfoParse(e->value, NULL)) == NULL)
		return;
	for (o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL && o->val[0] != '\0')
			log_add_secret(o->val);
	}
	PQconninfoFree(opts);
}

/* Register the secrets of every section. */
static void
conf_add_secrets(const struct conf *conf)
{
	size_t i, j;

	for (i = 0; i < conf->ndaemon; i++) {
		for (j = 0; j < conf->daemon[i]->nentries; j++)
			conf_add_secret(&conf->daemon[i]->entries[j]);
	}
	for (i = 0; i < conf->nchannels; i++) {
		for (j = 0; j < conf->channels[i]->nentries; j++)
			conf_add_secret(&conf->channels[i]->entries[j]);
	}
}

/* Read the file into raw items, then bind every section. */
static void
conf_parse(struct conf_loader *cl)
{
	size_t i;
	int r;

	r = ini_parse_stream(conf_read_line, cl, conf_handle, cl);
	if (r > 0)
		conf_error(cl, r, "syntax error: expected [section] or key = value");
	else if (r == -2)
		conf_error(cl, 0, "out of memory");
	for (i = 0; i < cl->conf->ndaemon; i++)
		conf_bind(cl, cl->conf->daemon[i]);
	for (i = 0; i < cl->conf->nchannels; i++)
		conf_bind_channel(cl, cl->conf->channels[i]);
}

/* Read and check a config file. */
struct conf *
conf_load(const char *path, conf_schema_fn schema_fn, char **cause)
{
	struct conf_loader cl = { .schema_fn = schema_fn };

	cl.conf = conf_new(path);
	if ((cl.f = fopen(path, "r")) == NULL) {
		xasprintf(cause, "%s: cannot open: %s", path, strerror(errno));
		conf_free(cl.conf);
		return NULL;
	}
	conf_parse(&cl);
	fclose(cl.f);
	free(cl.buf);
	if (cl.cause != NULL) {
		*cause = cl.cause;
		conf_free(cl.conf);
		return NULL;
	}
	conf_add_secrets(cl.conf);
	return cl.conf;
}

/* The path the conf was loaded from. */
const char *
conf_path(const struct conf *conf)
{
	return conf->path;
}

/* A daemon key's value, or NULL if it is not in the schema. */
const char *
conf_str(const struct conf *conf, const char *section, const char *key)
{
	const struct conf_entry *e = conf_find_entry(conf_find_section(conf->daemon, conf->ndaemon, section), key);

	return e != NULL ? e->value : NULL;
}

/* The number of an entry; asking for a missing or non-numeric key is fatal. */
static long long
conf_entry_int(const struct conf_entry *e, const char *label, const char *key)
{
	if (e == NULL)
		log_fatal("conf", "Asked for a key that is not in the schema. section=%s key=%s",
		    label, key);
	if (!conf_value_numeric(e->key->type))
		log_fatal("conf", "Asked for the number of a key that has none. section=%s key=%s "
		    "type=%s", label, key, conf_value_type_name(e->key->type));
	return e->num;
}

/* A numeric daemon key's value. */
long long
conf_int(const struct conf *conf, const char *section, const char *key)
{
	return conf_entry_int(conf_find_entry(conf_find_section(conf->daemon, conf->ndaemon, section), key), section, key);
}

/* How many channel instances the file has. */
size_t
conf_channel_count(const struct conf *conf)
{
	return conf->nchannels;
}

/* The i-th channel instance, or NULL past the end. */
const struct conf_section *
conf_channel(const struct conf *conf, size_t i)
{
	return i < conf->nchannels ? conf->channels[i] : NULL;
}

/* A channel instance's NAME. */
const char *
conf_channel_name(const struct conf_section *sec)
{
	return sec->name;
}

/* A channel instance's type. */
const char *
conf_channel_type(const struct conf_section *sec)
{
	return sec->type;
}

/* A channel key's value, or NULL if neither its type nor every channel has it. */
const char *
conf_channel_str(const struct conf_section *sec, const char *key)
{
	const struct conf_entry *e = conf_find_entry(sec, key);

	return e != NULL ? e->value : NULL;
}

/* A numeric channel key's value. */
long long
conf_channel_int(const struct conf_section *sec, const char *key)
{
	return conf_entry_int(conf_find_entry(sec, key), sec->label, key);
}

/* The daemon schema. */
const struct conf_key *
conf_schema(size_t *n)
{
	*n = nitems(conf_keys);
	return conf_keys;
}

/* The keys every channel accepts. */
const struct conf_key *
conf_channel_schema(size_t *n)
{
	*n = nitems(conf_channel_keys);
	return conf_channel_keys;
}

/* Whether two entries of one key hold the same value (1M is 1024k). */
static int
conf_entry_same(const struct conf_entry *a, const struct conf_entry *b)
{
	if (conf_value_numeric(a->key->type))
		return a->num == b->num;
	return strcmp(a->value, b->value) == 0;
}

/* Compare two sections of one schema; -1 at the first unreloadable change. */
static int
conf_check_section(const struct conf_section *old, const struct conf_section *new, char **cause)
{
	const struct conf_entry *a, *b;
	size_t i;

	for (i = 0; i < old->nentries; i++) {
		a = &old->entries[i];
		b = conf_find_entry(new, a->key->name);
		if (b == NULL || (!(a->key->flags & CONF_RELOADABLE) && !conf_entry_same(a, b))) {
			xasprintf(cause, "key \"%s\" in section %s changed: a restart is needed",
			    a->key->name, old->label);
			return -1;
		}
	}
	return 0;
}

/* Compare the channel instances: same names, same types, restart-only keys alike. */
static int
conf_check_channels(const struct conf *old, const struct conf *new, char **cause)
{
	const struct conf_section *a, *b;
	size_t i;

	for (i = 0; i < old->nchannels; i++) {
		a = old->channels[i];
		if ((b = conf_find_section(new->channels, new->nchannels, a->name)) == NULL) {
			xasprintf(cause, "section %s was removed: a restart is needed", a->label);
			return -1;
		}
		if (strcmp(a->type, b->type) != 0) {
			xasprintf(cause, "key \"type\" in section %s changed: a restart is needed",
			    a->label);
			return -1;
		}
		if (conf_check_section(a, b, cause) != 0)
			return -1;
	}
	for (i = 0; i < new->nchannels; i++) {
		if (conf_find_section(old->channels, old->nchannels, new->channels[i]->name) == NULL) {
			xasprintf(cause, "section %s was added: a restart is needed",
			    new->channels[i]->label);
			return -1;
		}
	}
	return 0;
}

/* Whether new may replace old on SIGHUP. */
int
conf_check_reload(const struct conf *old, const struct conf *new, char **cause)
{
	size_t i;

	for (i = 0; i < old->ndaemon; i++) {
		if (conf_check_section(old->daemon[i], new->daemon[i], cause) != 0)
			return -1;
	}
	return conf_check_channels(old, new, cause);
}
