/*
 * test-conf.c: the configuration file. Loads the sample config; checks that
 * every kind of mistake is an error naming the line and the key, that values
 * and defaults come back in their units, that channel sections are checked
 * against their type's schema, that secrets stay out of the log, what a
 * SIGHUP may change, and that every key of the schema is in the sample
 * config and the man page (with a check that this docs test can fail).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "channel.h"
#include "conf.h"
#include "log.h"
#include "util.h"

/* A file rewritten by each test; error messages start with its path. */
static char test_path[] = "/tmp/test-conf-XXXXXX";

/* A second file, for tests that compare two configs. */
static char test_path2[] = "/tmp/test-conf2-XXXXXX";

/* The smallest valid file's database section. */
#define DB "[database]\nurl = dbname=linbat\n"

static const struct conf_key test_sms_keys[] = {
	{ NULL, "url", CONF_URL, "http://127.0.0.1:13013", 0, 0, NULL, 0, "Where to send." },
	{ NULL, "token", CONF_STRING, "", 0, 0, NULL, CONF_REQUIRED | CONF_SECRET, "A token." },
	{ NULL, "timeout", CONF_DURATION, "10s", 1000, 60000, NULL, CONF_RELOADABLE, "A timeout." },
};

static const struct conf_key test_mail_keys[] = {
	{ NULL, "imap_url", CONF_URL, "imaps://127.0.0.1:993", 0, 0, "imap|imaps", 0, "Mailbox." },
	{ NULL, "rate", CONF_INT, "5", 0, 100000, NULL, 0, "A type's own default for rate." },
};

/* The channel types of these tests, as a conf_schema_fn. */
static const struct conf_key *
test_schema(const char *type, size_t *n)
{
	if (strcmp(type, "fake-sms") == 0) {
		*n = nitems(test_sms_keys);
		return test_sms_keys;
	}
	if (strcmp(type, "fake-mail") == 0) {
		*n = nitems(test_mail_keys);
		return test_mail_keys;
	}
	return NULL;
}

/* Write text to path. */
static void
test_write(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

/* Load text as a config file; NULL with *cause on error. */
static struct conf *
test_load(const char *text, char **cause)
{
	test_write(test_path, text);
	*cause = NULL;
	return conf_load(test_path, test_schema, cause);
}

/* Load text, which must be valid. */
static struct conf *
test_load_ok(const char *text)
{
	char *cause;
	struct conf *conf = test_load(text, &cause);

	if (conf == NULL)
		fail_msg("unexpected error: %s\nin:\n%s", cause, text);
	return conf;
}

/* Load text, which must fail with "PATH:" followed by want. */
static void
test_expect_error(const char *text, const char *want)
{
	char *cause, *full;
	struct conf *conf = test_load(text, &cause);

	xasprintf(&full, "%s:%s", test_path, want);
	if (conf != NULL)
		fail_msg("loaded, expected %s\nin:\n%s", full, text);
	if (strcmp(cause, full) != 0)
		fail_msg("error:    %s\nexpected: %s\nin:\n%s", cause, full, text);
	free(cause);
	free(full);
}

/* Read a whole file under $top_srcdir (caller frees). */
static char *
test_read_srcfile(const char *name)
{
	const char *top = getenv("top_srcdir");
	struct buf b;
	char *path, chunk[4096];
	size_t n;
	FILE *f;

	xasprintf(&path, "%s/%s", top != NULL ? top : ".", name);
	if ((f = fopen(path, "r")) == NULL)
		fail_msg("cannot open %s", path);
	buf_init(&b);
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_add(&b, chunk, n);
	fclose(f);
	free(path);
	return buf_take(&b);
}

/* Make the temporary files. */
static int
test_setup(void **state)
{
	int fd1 = mkstemp(test_path), fd2 = mkstemp(test_path2);

	if (fd1 == -1 || fd2 == -1)
		return -1;
	close(fd1);
	close(fd2);
	return 0;
}

/* Remove the temporary files. */
static int
test_teardown(void **state)
{
	unlink(test_path);
	unlink(test_path2);
	log_clear_secrets();
	return 0;
}

/* The sample config, as installed, loads. */
static void
test_sample_loads(void **state)
{
	const char *top = getenv("top_srcdir");
	char *path, *cause = NULL;
	struct conf *conf;

	xasprintf(&path, "%s/etc/linbat.conf.sample", top != NULL ? top : ".");
	conf = conf_load(path, test_schema, &cause);
	if (conf == NULL)
		fail_msg("%s", cause);
	assert_string_equal(conf_str(conf, "database", "url"),
	    "host=127.0.0.1 port=5432 dbname=linbat user=linbat");
	assert_int_equal(conf_channel_count(conf), 0);
	assert_string_equal(conf_path(conf), path);
	conf_free(conf);
	free(path);
}

/* Keys not set take their defaults, in their units. */
static void
test_defaults(void **state)
{
	struct conf *conf = test_load_ok(DB);

	assert_string_equal(conf_str(conf, "daemon", "listen"), "127.0.0.1:8080");
	assert_string_equal(conf_str(conf, "daemon", "public_url"), "http://127.0.0.1:8080");
	assert_int_equal(conf_int(conf, "daemon", "max_body"), 1024 * 1024);
	assert_string_equal(conf_str(conf, "daemon", "log_level"), "info");
	assert_int_equal(conf_int(conf, "daemon", "log_level"), LOG_LEVEL_INFO);
	assert_int_equal(conf_int(conf, "daemon", "log_format"), LOG_FORMAT_TEXT);
	assert_string_equal(conf_str(conf, "daemon", "migrations_dir"), LINBAT_DATADIR "/migrations");
	assert_string_equal(conf_str(conf, "daemon", "web_dir"), LINBAT_DATADIR "/web");
	assert_int_equal(conf_int(conf, "daemon", "shutdown_timeout"), 5000);
	assert_string_equal(conf_str(conf, "daemon", "metrics_token"), "");
	assert_int_equal(conf_int(conf, "database", "pool_size"), 4);
	assert_int_equal(conf_int(conf, "database", "query_timeout"), 30000);
	assert_int_equal(conf_int(conf, "dispatch", "batch"), 100);
	assert_int_equal(conf_int(conf, "dispatch", "lease"), 60000);
	assert_int_equal(conf_int(conf, "dispatch", "max_attempts"), 8);
	assert_int_equal(conf_int(conf, "dispatch", "backoff_base"), 1000);
	assert_int_equal(conf_int(conf, "dispatch", "in_flight"), 200);
	assert_int_equal(conf_int(conf, "routing", "sla"), 15 * 60 * 1000);
	assert_non_null(strstr(conf_str(conf, "routing", "ack_text_id"), "Terima kasih"));
	assert_non_null(strstr(conf_str(conf, "routing", "ack_text_en"), "Thank you"));
	assert_null(conf_str(conf, "daemon", "no_such_key"));
	assert_null(conf_str(conf, "no_such_section", "listen"));
	conf_free(conf);
}

/* Every default in the schema passes its own type check and range. */
static void
test_schema_defaults_valid(void **state)
{
	size_t n, i;
	const struct conf_key *keys = conf_schema(&n);
	struct conf *conf = test_load_ok(DB);

	for (i = 0; i < n; i++) {
		assert_non_null(keys[i].section);
		assert_non_null(keys[i].help);
		assert_non_null(conf_str(conf, keys[i].section, keys[i].name));
	}
	conf_free(conf);
}

/* Values written in every accepted form come back in their units. */
static void
test_values(void **state)
{
	struct conf *conf = test_load_ok("[daemon]\n"
					 "listen = [::1]:9000\n"
					 "public_url = HTTPS://linbat.example.go.id/inbox\n"
					 "max_body = 512k\n"
					 "log_level = WARN\n"
					 "log_format = json\n"
					 "shutdown_timeout = 250ms\n"
					 "[database]\n"
					 "url = postgresql://linbat@db.example:5432/linbat\n"
					 "query_timeout = 45\n"
					 "[dispatch]\n"
					 "lease = 2m\n"
					 "backoff_base = 100ms\n"
					 "[routing]\n"
					 "sla = 2h\n");

	assert_string_equal(conf_str(conf, "daemon", "listen"), "[::1]:9000");
	assert_int_equal(conf_int(conf, "daemon", "max_body"), 512 * 1024);
	assert_string_equal(conf_str(conf, "daemon", "log_level"), "warn");
	assert_int_equal(conf_int(conf, "daemon", "log_level"), LOG_LEVEL_WARN);
	assert_int_equal(conf_int(conf, "daemon", "log_format"), LOG_FORMAT_JSON);
	assert_int_equal(conf_int(conf, "daemon", "shutdown_timeout"), 250);
	assert_int_equal(conf_int(conf, "database", "query_timeout"), 45000);
	assert_int_equal(conf_int(conf, "dispatch", "lease"), 120000);
	assert_int_equal(conf_int(conf, "dispatch", "backoff_base"), 100);
	assert_int_equal(conf_int(conf, "routing", "sla"), 2 * 3600 * 1000);
	conf_free(conf);

	conf = test_load_ok("[daemon]\nmax_body = 64M\nshutdown_timeout = 0\n" DB);
	assert_int_equal(conf_int(conf, "daemon", "max_body"), 64 * 1024 * 1024);
	assert_int_equal(conf_int(conf, "daemon", "shutdown_timeout"), 0);
	conf_free(conf);
}

/* Comments, indentation, blank lines, a BOM and CRLF endings are fine. */
static void
test_layout(void **state)
{
	struct conf *conf = test_load_ok("\xEF\xBB\xBF# comment\r\n"
					 "; another\r\n"
					 "\r\n"
					 "  [database]  \r\n"
					 "\turl = dbname=linbat\r\n"
					 "    pool_size = 9 ; inline comment\r\n"
					 "[routing]\n"
					 "ack_text_en = Hello;there\n");

	assert_string_equal(conf_str(conf, "database", "url"), "dbname=linbat");
	assert_int_equal(conf_int(conf, "database", "pool_size"), 9);
	assert_string_equal(conf_str(conf, "routing", "ack_text_en"), "Hello;there");
	conf_free(conf);
}

/* An unknown key is named with its line and section. */
static void
test_unknown_key(void **state)
{
	test_expect_error(DB "\n[daemon]\nlisten_port = 8080\n",
	    "5: unknown key \"listen_port\" in section [daemon]");
	test_expect_error("[dispatch]\nbatch = 5\nurl = dbname=x\n",
	    "3: unknown key \"url\" in section [dispatch]");
}

/* The wrong values of every type, each with its reason. */
static const struct {
	const char *section, *key, *value, *why;
} test_bad[] = {
	{ "database", "pool_size", "0", "must be between 1 and 64" },
	{ "database", "pool_size", "65", "must be between 1 and 64" },
	{ "database", "pool_size", "four", "must be a whole number" },
	{ "database", "pool_size", "4x", "must be a whole number" },
	{ "database", "pool_size", "99999999999999999999", "must be a whole number" },
	{ "dispatch", "batch", "", "must be a whole number" },
	{ "dispatch", "max_attempts", "-1", "must be between 1 and 100" },
	{ "daemon", "log_level", "verbose", "must be one of debug, info, warn or error" },
	{ "daemon", "log_format", "xml", "must be one of text or json" },
	{ "daemon", "listen", "127.0.0.1", "must be host:port or [IPv6]:port, with a port from 1 to 65535" },
	{ "daemon", "listen", "127.0.0.1:0", "must be host:port or [IPv6]:port, with a port from 1 to 65535" },
	{ "daemon", "listen", "127.0.0.1:65536", "must be host:port or [IPv6]:port, with a port from 1 to 65535" },
	{ "daemon", "listen", ":8080", "must be host:port or [IPv6]:port, with a port from 1 to 65535" },
	{ "daemon", "listen", "localhost:http", "must be host:port or [IPv6]:port, with a port from 1 to 65535" },
	{ "daemon", "listen", "::1:8080", "must be host:port or [IPv6]:port, with a port from 1 to 65535" },
	{ "daemon", "public_url", "ftp://linbat.example", "must be a URL starting with http:// or https://, with a host and no blanks" },
	{ "daemon", "public_url", "linbat.example", "must be a URL starting with http:// or https://, with a host and no blanks" },
	{ "daemon", "public_url", "http://", "must be a URL starting with http:// or https://, with a host and no blanks" },
	{ "daemon", "public_url", "http:///inbox", "must be a URL starting with http:// or https://, with a host and no blanks" },
	{ "daemon", "public_url", "http://linbat example", "must be a URL starting with http:// or https://, with a host and no blanks" },
	{ "daemon", "max_body", "1023", "must be between 1K and 64M" },
	{ "daemon", "max_body", "65M", "must be between 1K and 64M" },
	{ "daemon", "max_body", "1T", "must be a size such as 4096, 512k, 1M or 2G" },
	{ "daemon", "max_body", "1.5M", "must be a size such as 4096, 512k, 1M or 2G" },
	{ "daemon", "max_body", "-1k", "must be a size such as 4096, 512k, 1M or 2G" },
	{ "daemon", "max_body", "1 M", "must be a size such as 4096, 512k, 1M or 2G" },
	{ "daemon", "max_body", "99999999999G", "must be a size such as 4096, 512k, 1M or 2G" },
	{ "daemon", "shutdown_timeout", "11m", "must be between 0 and 10m" },
	{ "daemon", "shutdown_timeout", "1d", "must be a duration such as 250ms, 30s, 15m or 2h" },
	{ "daemon", "shutdown_timeout", "s", "must be a duration such as 250ms, 30s, 15m or 2h" },
	{ "daemon", "shutdown_timeout", "-5s", "must be a duration such as 250ms, 30s, 15m or 2h" },
	{ "database", "query_timeout", "500ms", "must be between 1s and 1h" },
	{ "dispatch", "backoff_base", "50ms", "must be between 100ms and 1h" },
	{ "routing", "sla", "30s", "must be between 1m and 168h" },
	{ "database", "url", "hots=127.0.0.1", "must be a PostgreSQL connection string: key=value words or a postgresql:// URI" },
	{ "database", "url", "host=x password", "must be a PostgreSQL connection string: key=value words or a postgresql:// URI" },
	{ "database", "url", "", "must not be empty" },
};

/* Every wrong value is an error that names its line, key and reason. */
static void
test_bad_values(void **state)
{
	char *text, *want;
	size_t i;

	for (i = 0; i < nitems(test_bad); i++) {
		int db = strcmp(test_bad[i].section, "database") == 0;
		int url = strcmp(test_bad[i].key, "url") == 0;

		xasprintf(&text, "[%s]\n%s = %s\n%s%s", test_bad[i].section, test_bad[i].key,
		    test_bad[i].value, db ? "" : "[database]\n", url ? "" : "url = dbname=linbat\n");
		xasprintf(&want, "2: bad value for \"%s\": %s", test_bad[i].key, test_bad[i].why);
		test_expect_error(text, want);
		free(text);
		free(want);
	}
}

/* Mistakes in the shape of the file. */
static void
test_structure_errors(void **state)
{
	test_expect_error(DB "[daemon]\nlisten = 127.0.0.1:1\nlisten = 127.0.0.1:2\n",
	    "5: duplicate key \"listen\" in section [daemon] (first on line 4)");
	test_expect_error(DB "[daemon]\n[daemon]\n", "4: duplicate section [daemon] (first on line 3)");
	test_expect_error(DB "\n[foo]\n", "4: unknown section [foo]");
	test_expect_error(DB "[foo]\nbar = 1\n", "3: unknown section [foo]");
	test_expect_error("listen = 127.0.0.1:8080\n" DB, "1: key \"listen\" is outside any section");
	test_expect_error(DB "[daemon]\nlisten\n", "4: syntax error: expected [section] or key = value");
	test_expect_error(DB "[daemon\nlisten = x\n", "3: syntax error: expected [section] or key = value");
}

/* A line too long for inih is an error, not two lines; 198 characters fit. */
static void
test_long_line(void **state)
{
	char text[512];

	/* "ack_text_en = " is 14 characters. */
	snprintf(text, sizeof text, DB "[routing]\nack_text_en = %0*d\n", 199 - 14, 0);
	test_expect_error(text, "4: line is longer than 198 characters");
	snprintf(text, sizeof text, DB "[routing]\n    ack_text_en = %0*d\n", 198 - 14, 0);
	conf_free(test_load_ok(text));
}

/* NUL bytes need a writer of their own: test_write stops at the first. */
static void
test_nul_byte(void **state)
{
	static const char text[] = "[database]\nurl = db\0name=x\n";
	char *cause, *want;
	FILE *f = fopen(test_path, "w");

	assert_non_null(f);
	fwrite(text, 1, sizeof text - 1, f);
	fclose(f);
	assert_null(conf_load(test_path, test_schema, &cause));
	xasprintf(&want, "%s:2: line contains a NUL byte", test_path);
	assert_string_equal(cause, want);
	free(cause);
	free(want);
}

/* Missing required keys, and files that cannot be read. */
static void
test_file_errors(void **state)
{
	char *cause = NULL;

	test_expect_error("[daemon]\n", " missing required key \"url\" in section [database]");
	test_expect_error("", " missing required key \"url\" in section [database]");
	assert_null(conf_load("/nonexistent/linbat.conf", test_schema, &cause));
	assert_string_equal(cause, "/nonexistent/linbat.conf: cannot open: No such file or directory");
	free(cause);
	assert_null(conf_load("/", test_schema, &cause));
	assert_string_equal(cause, "/:1: cannot read: Is a directory");
	free(cause);
}

/* Of several errors the one on the lowest line wins, wherever it was found. */
static void
test_first_error_wins(void **state)
{
	test_expect_error("[channel a]\ntype = telegram\n" DB "[daemon]\nbogus = 1\n",
	    "2: unknown channel type \"telegram\" in section [channel a]");
	test_expect_error("[daemon]\nbogus = 1\n[channel a]\ntype = telegram\n",
	    "2: unknown key \"bogus\" in section [daemon]");
	test_expect_error("[daemon]\nlisten = x\n[database]\n",
	    "2: bad value for \"listen\": must be host:port or [IPv6]:port, with a port from 1 to 65535");
}

/* Channel sections: keys before type, per-type keys, defaults, two of a type. */
static void
test_channels(void **state)
{
	const struct conf_section *a, *b, *m;
	struct conf *conf = test_load_ok(DB "[channel sms-1]\n"
					    "token = abcd1234\n"
					    "url = http://127.0.0.1:13013/cgi-bin\n"
					    "type = fake-sms\n"
					    "[channel sms_2]\n"
					    "type = fake-sms\n"
					    "token = efgh5678\n"
					    "timeout = 2s\n"
					    "enabled = Off\n"
					    "rate = 30\n"
					    "[channel mail]\n"
					    "type = fake-mail\n");

	assert_int_equal(conf_channel_count(conf), 3);
	a = conf_channel(conf, 0);
	b = conf_channel(conf, 1);
	m = conf_channel(conf, 2);
	assert_null(conf_channel(conf, 3));
	assert_string_equal(conf_channel_name(a), "sms-1");
	assert_string_equal(conf_channel_type(a), "fake-sms");
	assert_string_equal(conf_channel_str(a, "url"), "http://127.0.0.1:13013/cgi-bin");
	assert_int_equal(conf_channel_int(a, "timeout"), 10000);
	assert_int_equal(conf_channel_int(a, "enabled"), 1);
	assert_int_equal(conf_channel_int(a, "rate"), 0);
	assert_string_equal(conf_channel_name(b), "sms_2");
	assert_string_equal(conf_channel_type(b), "fake-sms");
	assert_string_equal(conf_channel_str(b, "url"), "http://127.0.0.1:13013");
	assert_string_equal(conf_channel_str(b, "token"), "efgh5678");
	assert_int_equal(conf_channel_int(b, "timeout"), 2000);
	assert_int_equal(conf_channel_int(b, "enabled"), 0);
	assert_int_equal(conf_channel_int(b, "rate"), 30);
	assert_string_equal(conf_channel_type(m), "fake-mail");
	assert_string_equal(conf_channel_str(m, "imap_url"), "imaps://127.0.0.1:993");
	assert_int_equal(conf_channel_int(m, "rate"), 5);
	assert_null(conf_channel_str(m, "token"));
	conf_free(conf);
}

/* Channel sections: every way to get one wrong. */
static void
test_channel_errors(void **state)
{
	test_expect_error(DB "[channel tg]\nenabled = yes\ntype = telegram\n",
	    "5: unknown channel type \"telegram\" in section [channel tg]");
	test_expect_error(DB "[channel s]\ntoken = abcd\n", "3: section [channel s] needs a \"type\" key");
	test_expect_error(DB "[channel s]\ntype =\n", "4: section [channel s] needs a \"type\" key");
	test_expect_error(DB "[channel s]\ntokn = abcd\ntype = fake-sms\n",
	    "4: unknown key \"tokn\" in section [channel s] (type \"fake-sms\")");
	test_expect_error(DB "[channel s]\ntype = fake-sms\ntoken = abcd\ntimeout = 2m\n",
	    "6: bad value for \"timeout\": must be between 1s and 1m");
	test_expect_error(DB "[channel s]\nurl = ftp://x\ntype = fake-sms\ntoken = abcd\n",
	    "4: bad value for \"url\": must be a URL starting with http:// or https://, with a host "
	    "and no blanks");
	test_expect_error(DB "[channel m]\ntype = fake-mail\nimap_url = https://mail.example\n",
	    "5: bad value for \"imap_url\": must be a URL starting with imap:// or imaps://, with a "
	    "host and no blanks");
	test_expect_error(DB "[channel s]\ntype = fake-sms\ntoken = abcd\nenabled = maybe\n",
	    "6: bad value for \"enabled\": must be yes or no (or true/false, on/off, 1/0)");
	test_expect_error(DB "[channel s]\ntype = fake-sms\ntoken = abcd\nrate = -1\n",
	    "6: bad value for \"rate\": must be between 0 and 100000");
	test_expect_error(DB "[channel s]\ntype = fake-sms\n",
	    " missing required key \"token\" in section [channel s]");
	test_expect_error(DB "[channel s]\ntype = fake-mail\n[channel s]\ntype = fake-mail\n",
	    "5: duplicate section [channel s] (first on line 3)");
	test_expect_error(DB "[channel WA1]\ntype = fake-mail\n",
	    "3: bad channel name \"WA1\": use 1 to 32 of a-z, 0-9, _ and -");
	test_expect_error(DB "[channel]\ntype = fake-mail\n",
	    "3: bad channel name \"\": use 1 to 32 of a-z, 0-9, _ and -");
	test_expect_error(DB "[channel abcdefghijklmnopqrstuvwxyz0123456]\ntype = fake-mail\n",
	    "3: bad channel name \"abcdefghijklmnopqrstuvwxyz0123456\": use 1 to 32 of a-z, 0-9, _ "
	    "and -");
	conf_free(test_load_ok(DB "[channel abcdefghijklmnopqrstuvwxyz012345]\ntype = fake-mail\n"));
}

/* Read what log lines written by fn reach stderr. */
static char *
test_capture_log(void (*fn)(void))
{
	FILE *tmp = tmpfile();
	int saved = dup(STDERR_FILENO);
	char *out = xcalloc(1, 4096);

	assert_non_null(tmp);
	dup2(fileno(tmp), STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(tmp);
	assert_true(fread(out, 1, 4095, tmp) > 0);
	fclose(tmp);
	return out;
}

/* A log line with every secret of test_secrets in it. */
static void
test_log_secrets(void)
{
	log_info("test", "Connecting. conninfo=\"dbname=linbat password=pw-s3cret\" "
			 "metrics=mt-t0ken sms=sms-t0ken");
}

/* A log line with a URI's password in both its forms. */
static void
test_log_uri(void)
{
	log_info("test", "Connecting. url=postgresql://linbat:p%%40ss-w0rd@db.example/linbat "
			 "password=p@ss-w0rd");
}

/* Secret values, and only the password of the database URL, are kept out of the log. */
static void
test_secrets(void **state)
{
	struct conf *conf;
	char *out;

	log_clear_secrets();
	conf = test_load_ok("[daemon]\nmetrics_token = mt-t0ken\n"
			    "[database]\nurl = dbname=linbat password=pw-s3cret\n"
			    "[channel s]\ntype = fake-sms\ntoken = sms-t0ken\n");
	out = test_capture_log(test_log_secrets);
	assert_null(strstr(out, "pw-s3cret"));
	assert_null(strstr(out, "mt-t0ken"));
	assert_null(strstr(out, "sms-t0ken"));
	assert_non_null(strstr(out, "dbname=linbat password=***"));
	free(out);
	conf_free(conf);
	log_clear_secrets();

	conf = test_load_ok("[database]\nurl = postgresql://linbat:p%40ss-w0rd@db.example/linbat\n");
	out = test_capture_log(test_log_uri);
	assert_null(strstr(out, "p%40ss-w0rd"));
	assert_null(strstr(out, "p@ss-w0rd"));
	assert_non_null(strstr(out, "postgresql://linbat:***@db.example/linbat"));
	free(out);
	conf_free(conf);
	log_clear_secrets();
}

/* Load a file of the given [daemon] lines and channel sections, for the reload tests. */
static struct conf *
test_load_reload(const char *path, const char *daemon, const char *channels)
{
	char *text, *cause = NULL;
	struct conf *conf;

	xasprintf(&text, "[daemon]\n%s\n" DB "%s", daemon, channels);
	test_write(path, text);
	conf = conf_load(path, test_schema, &cause);
	if (conf == NULL)
		fail_msg("%s", cause);
	free(text);
	return conf;
}

/* Check one reload: want is NULL if it may be applied, else the cause. */
static void
test_reload_case(const char *old_daemon, const char *old_channels, const char *new_daemon,
    const char *new_channels, const char *want)
{
	struct conf *old = test_load_reload(test_path, old_daemon, old_channels);
	struct conf *new = test_load_reload(test_path2, new_daemon, new_channels);
	char *cause = NULL;
	int rc = conf_check_reload(old, new, &cause);

	if (want == NULL && rc != 0)
		fail_msg("reload refused: %s", cause);
	if (want != NULL) {
		assert_int_equal(rc, -1);
		assert_string_equal(cause, want);
	}
	free(cause);
	conf_free(old);
	conf_free(new);
}

/* SIGHUP applies reloadable keys and refuses everything else, naming the key. */
static void
test_reload(void **state)
{
	static const char sms[] = "[channel s]\ntype = fake-sms\ntoken = abcd\n";
	static const char mail[] = "[channel s]\ntype = fake-mail\n";

	test_reload_case("log_level = info", "", "log_level = debug\nmax_body = 2M\nlog_format = json",
	    "", NULL);
	/* The SLA reaches PostgreSQL sessions as they connect: changing it needs a restart. */
	test_reload_case("", "", "", "[routing]\nsla = 1h\n",
	    "key \"sla\" in section [routing] changed: a restart is needed");
	test_reload_case("max_body = 1M", "", "max_body = 1024k", "", NULL);
	test_reload_case("listen = 127.0.0.1:8080", "", "listen = 127.0.0.1:8081", "",
	    "key \"listen\" in section [daemon] changed: a restart is needed");
	test_reload_case("", "", "shutdown_timeout = 5000ms", "", NULL);
	test_reload_case("", "", "shutdown_timeout = 6s", "",
	    "key \"shutdown_timeout\" in section [daemon] changed: a restart is needed");
	test_reload_case("", "[dispatch]\nbatch = 5\n", "", "",
	    "key \"batch\" in section [dispatch] changed: a restart is needed");
	test_reload_case("", sms, "", "[channel s]\ntype = fake-sms\ntoken = abcd\ntimeout = 3s\n",
	    NULL);
	test_reload_case("", sms, "", "[channel s]\ntype = fake-sms\ntoken = efgh\n",
	    "key \"token\" in section [channel s] changed: a restart is needed");
	test_reload_case("", sms, "", mail,
	    "key \"type\" in section [channel s] changed: a restart is needed");
	test_reload_case("", sms, "", "",
	    "section [channel s] was removed: a restart is needed");
	test_reload_case("", "", "", mail, "section [channel s] was added: a restart is needed");
}

/*
 * The value of key in section of the sample config, commented out or not,
 * or NULL: a line "[section]" (or "#[section]") opens a section, a line
 * "key = value" (or "#key = value") sets a key. Caller frees.
 */
static char *
test_sample_value(const char *text, const char *section, const char *key)
{
	char *copy = xstrdup(text), *line, *next, *found = NULL, *current = xstrdup("");
	size_t keylen = strlen(key);

	for (line = copy; line != NULL && found == NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		line += strspn(line, "#; \t");
		if (*line == '[' && strchr(line, ']') != NULL) {
			free(current);
			current = xstrndup(line + 1, strchr(line, ']') - line - 1);
		} else if (strcmp(current, section) == 0 && strncmp(line, key, keylen) == 0) {
			line += keylen;
			line += strspn(line, " \t");
			if (*line == '=')
				found = xstrdup(line + 1 + strspn(line + 1, " \t"));
		}
	}
	free(current);
	free(copy);
	return found;
}

/*
 * The man page paragraph of key under ".SS HEADING" (such as "[daemon]" or
 * "\"Type whatsapp\""): from its ".B key" line to the next .TP, .PP, .SS or .SH;
 * NULL if there is none. Caller frees.
 */
static char *
test_man_entry(const char *text, const char *man_heading, const char *key)
{
	char *heading, *item, *start, *end, *p;

	xasprintf(&heading, "\n.SS %s\n", man_heading);
	xasprintf(&item, "\n.TP\n.B %s\n", key);
	start = strstr(text, heading);
	end = start != NULL ? strstr(start + 1, "\n.S") : NULL;
	p = start != NULL ? strstr(start, item) : NULL;
	free(heading);
	if (p == NULL || (end != NULL && p > end)) {
		free(item);
		return NULL;
	}
	p += strlen(item);
	free(item);
	for (end = p; *end != '\0' && strncmp(end, "\n.TP", 4) != 0 && strncmp(end, "\n.S", 3) != 0 &&
	    strncmp(end, "\n.PP", 4) != 0;)
		end++;
	return xstrndup(p, end - p);
}

/* What the docs must say is the default of key; NULL if nothing. */
static char *
test_doc_default(const struct conf_key *key, int man)
{
	char *s;
	size_t dlen = strlen(LINBAT_DATADIR);

	if (key->flags & CONF_REQUIRED)
		return NULL;
	if (strncmp(key->def, LINBAT_DATADIR "/", dlen + 1) == 0)
		xasprintf(&s, "%s%s", man ? "Default: DATADIR" : "", key->def + dlen);
	else if (man)
		xasprintf(&s, "Default: %s", key->def[0] != '\0' ? key->def : "empty");
	else
		s = xstrdup(key->def);
	return s;
}

/*
 * Whether the sample (in its section) and the man page (under man_heading)
 * document key; if not, *why says how.
 */
static int
test_documented(const char *sample, const char *man, const struct conf_key *key,
    const char *section, const char *man_heading, char **why)
{
	char *value = test_sample_value(sample, section, key->name);
	char *entry = test_man_entry(man, man_heading, key->name);
	char *sdef = test_doc_default(key, 0), *mdef = test_doc_default(key, 1);
	size_t vlen = value != NULL ? strlen(value) : 0, dlen = sdef != NULL ? strlen(sdef) : 0;

	*why = NULL;
	if (value == NULL)
		xasprintf(why, "key \"%s\" of [%s] is not in the sample config", key->name, section);
	else if (sdef != NULL && (vlen < dlen || strcmp(value + vlen - dlen, sdef) != 0))
		xasprintf(why, "the sample config gives \"%s\" the default \"%s\"", key->name, value);
	else if (entry == NULL)
		xasprintf(why, "key \"%s\" of [%s] is not in the man page", key->name, section);
	else if (mdef != NULL && strstr(entry, mdef) == NULL)
		xasprintf(why, "the man page does not say \"%s\" for \"%s\"", mdef, key->name);
	else if ((strstr(entry, "Reloadable.") != NULL) != ((key->flags & CONF_RELOADABLE) != 0))
		xasprintf(why, "the man page is wrong about whether \"%s\" is reloadable", key->name);
	else if ((strstr(entry, "secret") != NULL) != ((key->flags & CONF_SECRET) != 0))
		xasprintf(why, "the man page is wrong about whether \"%s\" is secret", key->name);
	free(value);
	free(entry);
	free(sdef);
	free(mdef);
	return *why == NULL;
}

/*
 * The sample's example section ("channel wa1") whose type line names type,
 * the generic "[channel NAME]" aside; NULL if none. Caller frees.
 */
static char *
test_sample_section_of_type(const char *sample, const char *type)
{
	char *copy = xstrdup(sample), *line, *next, *current = NULL, *found = NULL, *want;

	xasprintf(&want, "type = %s", type);
	for (line = copy; line != NULL && found == NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		line += strspn(line, "#; \t");
		if (*line == '[' && strchr(line, ']') != NULL) {
			free(current);
			current = xstrndup(line + 1, strchr(line, ']') - line - 1);
		} else if (current != NULL && strcmp(current, "channel NAME") != 0 && strcmp(line, want) == 0)
			found = xstrdup(current); /* the generic section is not an example of one type */
	}
	free(current);
	free(want);
	free(copy);
	return found;
}

/* Every key of every channel adapter is in an example section of its type and under "Type NAME". */
static void
test_docs_adapters(const char *sample, const char *man)
{
	const struct channel_type *const *types;
	char heading[64], *section, *why;
	size_t ntypes, t, i;

	types = channel_types(&ntypes);
	for (t = 0; t < ntypes; t++) {
		if ((section = test_sample_section_of_type(sample, types[t]->name)) == NULL)
			fail_msg("the sample config has no example section of type %s", types[t]->name);
		snprintf(heading, sizeof heading, "\"Type %s\"", types[t]->name);
		for (i = 0; i < types[t]->nkeys; i++) {
			if (!test_documented(sample, man, &types[t]->keys[i], section, heading, &why))
				fail_msg("type %s: %s", types[t]->name, why);
		}
		free(section);
	}
}

/* Every key of the schema is in the sample config and the man page. */
static void
test_docs(void **state)
{
	char *sample = test_read_srcfile("etc/linbat.conf.sample");
	char *man = test_read_srcfile("doc/linbat.conf.5");
	const struct conf_key *keys;
	size_t n, i;
	char *why;

	char heading[64];

	keys = conf_schema(&n);
	for (i = 0; i < n; i++) {
		snprintf(heading, sizeof heading, "[%s]", keys[i].section);
		if (!test_documented(sample, man, &keys[i], keys[i].section, heading, &why))
			fail_msg("%s", why);
	}
	keys = conf_channel_schema(&n);
	for (i = 0; i < n; i++) {
		if (!test_documented(sample, man, &keys[i], "channel NAME", "[channel NAME]", &why))
			fail_msg("%s", why);
	}
	test_docs_adapters(sample, man);
	free(sample);
	free(man);
}

/* The docs test can fail: a key missing, in the wrong section, or misdescribed. */
static void
test_docs_can_fail(void **state)
{
	char *sample = test_read_srcfile("etc/linbat.conf.sample");
	char *man = test_read_srcfile("doc/linbat.conf.5");
	const struct conf_key missing = { "daemon", "no_such_key", CONF_INT, "1", 0, 9, NULL, 0, "" };
	const struct conf_key moved = { "database", "listen", CONF_ADDR, "127.0.0.1:8080", 0, 0, NULL, 0,
		"" };
	const struct conf_key redef = { "database", "pool_size", CONF_INT, "5", 1, 64, NULL, 0, "" };
	const struct conf_key reload = { "database", "pool_size", CONF_INT, "4", 1, 64, NULL,
		CONF_RELOADABLE, "" };
	const struct conf_key *bad[] = { &missing, &moved, &redef, &reload };
	size_t i;
	char *why;

	const struct conf_key wa_rate = { NULL, "rate", CONF_INT, "81", 0, 100000, NULL, 0, "" };
	char heading[64];

	for (i = 0; i < nitems(bad); i++) {
		snprintf(heading, sizeof heading, "[%s]", bad[i]->section);
		assert_false(test_documented(sample, man, bad[i], bad[i]->section, heading, &why));
		free(why);
	}
	/* An adapter's key with another default than its docs say. */
	assert_false(test_documented(sample, man, &wa_rate, "channel wa1", "\"Type whatsapp\"", &why));
	free(why);
	assert_null(test_sample_section_of_type(sample, "no-such-type"));
	free(sample);
	free(man);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sample_loads),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_schema_defaults_valid),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_structure_errors),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_first_error_wins),
		cmocka_unit_test(test_channels),
		cmocka_unit_test(test_channel_errors),
		cmocka_unit_test(test_secrets),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_docs),
		cmocka_unit_test(test_docs_can_fail),
	};

	return cmocka_run_group_tests(tests, test_setup, test_teardown);
}
