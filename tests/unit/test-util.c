/*
 * test-util.c: unit tests of the domain-free layer and the log module:
 * buffers, hex/base64, HMAC test vectors, host:port parsing, URL decoding,
 * WITA time, and that registered secrets never reach a log line.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "util.h"

static void
test_buf(void **state)
{
	struct buf b;
	char *s;
	int i;

	buf_init(&b);
	for (i = 0; i < 1000; i++)
		buf_addf(&b, "%d,", i);
	assert_int_equal(b.len, strlen(b.data));
	assert_memory_equal(b.data, "0,1,2,", 6);
	s = buf_take(&b);
	assert_null(b.data);
	assert_int_equal(strncmp(s + strlen(s) - 4, "999,", 4), 0);
	free(s);
	s = buf_take(&b);
	assert_string_equal(s, "");
	free(s);
}

static void
test_hex_base64(void **state)
{
	char hex[9], *b64;

	util_hex((const unsigned char *)"\x00\xff\x10\xab", 4, hex);
	assert_string_equal(hex, "00ff10ab");
	b64 = util_base64((const unsigned char *)"foobar", 6);
	assert_string_equal(b64, "Zm9vYmFy");
	free(b64);
	b64 = util_base64((const unsigned char *)"fo", 2);
	assert_string_equal(b64, "Zm8=");
	free(b64);
}

/* RFC 4231 test case 2 and RFC 2202 test case 2. */
static void
test_hmac(void **state)
{
	unsigned char mac[32];
	char hex[65];

	util_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac);
	util_hex(mac, 32, hex);
	assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	util_hmac_sha1("Jefe", 4, "what do ya want for nothing?", 28, mac);
	util_hex(mac, 20, hex);
	assert_string_equal(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
}

static void
test_ct_streq(void **state)
{
	assert_true(util_ct_streq("abc", "abc"));
	assert_false(util_ct_streq("abc", "abd"));
	assert_false(util_ct_streq("abc", "abcd"));
	assert_true(util_ct_streq("", ""));
}

static void
test_hostport(void **state)
{
	char host[64];
	int port;

	assert_int_equal(util_parse_hostport("127.0.0.1:8080", host, sizeof host, &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 8080);
	assert_int_equal(util_parse_hostport("[::1]:443", host, sizeof host, &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 443);
	assert_int_equal(util_parse_hostport("localhost", host, sizeof host, &port), -1);
	assert_int_equal(util_parse_hostport(":80", host, sizeof host, &port), -1);
	assert_int_equal(util_parse_hostport("h:99999", host, sizeof host, &port), -1);
	assert_int_equal(util_parse_hostport("h:8x", host, sizeof host, &port), -1);
	assert_int_equal(util_parse_hostport("::1:80", host, sizeof host, &port), -1);
}

static void
test_urldecode(void **state)
{
	char s[] = "a+b%20c%2Bd%zz%4";

	util_urldecode(s);
	assert_string_equal(s, "a b c+d%zz%4");
}

static void
test_time_wita(void **state)
{
	struct timespec ts = { 1767196799, 123000000 }; /* 2025-12-31T15:59:59.123Z */
	char out[40];

	util_time_wita(&ts, out, sizeof out);
	assert_string_equal(out, "2025-12-31T23:59:59.123+08:00");
	ts.tv_sec += 1;
	util_time_wita(&ts, out, sizeof out);
	assert_string_equal(out, "2026-01-01T00:00:00.123+08:00");
}

static void
test_random_hex(void **state)
{
	char *a = util_random_hex(16), *b = util_random_hex(16);

	assert_int_equal(strlen(a), 32);
	assert_string_not_equal(a, b);
	free(a);
	free(b);
}

/* Capture what the log writes to stderr while fn runs. */
static char *
capture_log(void (*fn)(void))
{
	char path[] = "/tmp/linbat-test-log-XXXXXX", *out;
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	FILE *f;
	long n;

	assert_true(fd >= 0);
	dup2(fd, STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	f = fdopen(fd, "r");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	out = xcalloc(1, (size_t)n + 1);
	assert_int_equal(fread(out, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	unlink(path);
	return out;
}

static void
log_with_secret(void)
{
	log_add_secret("s3cr3t-token-value");
	log_info("test", "Calling the provider. url=https://x/?access_token=s3cr3t-token-value&b=s3cr3t-token-value");
	log_error("test", "Two\nlines");
	log_clear_secrets();
}

static void
test_log_scrubs_secrets(void **state)
{
	char *out = capture_log(log_with_secret);

	assert_null(strstr(out, "s3cr3t"));
	assert_non_null(strstr(out, "access_token=***&b=***"));
	assert_non_null(strstr(out, " INFO test: Calling the provider."));
	/* A newline in a message must not forge a second event line. */
	assert_non_null(strstr(out, " ERROR test: Two lines\n"));
	free(out);
}

static void
log_json_line(void)
{
	log_set_format(LOG_FORMAT_JSON);
	log_warn("db", "Lost \"connection\".");
	log_set_format(LOG_FORMAT_TEXT);
}

static void
test_log_json(void **state)
{
	char *out = capture_log(log_json_line);

	assert_non_null(strstr(out, "\"level\":\"warn\""));
	assert_non_null(strstr(out, "\"msg\":\"Lost \\\"connection\\\".\""));
	assert_non_null(strstr(out, "+08:00\""));
	free(out);
}

static void
test_log_level_parse(void **state)
{
	assert_int_equal(log_level_parse("debug"), LOG_LEVEL_DEBUG);
	assert_int_equal(log_level_parse("ERROR"), LOG_LEVEL_ERROR);
	assert_int_equal(log_level_parse("loud"), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_hex_base64),
		cmocka_unit_test(test_hmac),
		cmocka_unit_test(test_ct_streq),
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_urldecode),
		cmocka_unit_test(test_time_wita),
		cmocka_unit_test(test_random_hex),
		cmocka_unit_test(test_log_scrubs_secrets),
		cmocka_unit_test(test_log_json),
		cmocka_unit_test(test_log_level_parse),
	};

	unsetenv("JOURNAL_STREAM");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
