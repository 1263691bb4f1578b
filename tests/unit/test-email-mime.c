/*
 * test-email-mime.c: inputs of MIME intake that the fuzzer found wrong, kept
 * so they stay right. An empty part has no data pointer at all, and reading
 * it as a string passed NULL to strndup (UBSan in the --enable-asan build);
 * every empty kind of part must parse to empty text instead.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "email.h"

/* Parse a mail given as a string, asserting that it parses. */
static void
test_parse(const char *raw, struct email_parsed *p)
{
	char *cause = NULL;

	email_mime_init();
	assert_int_equal(email_mime_parse(raw, strlen(raw), 1024, p, &cause), 0);
	assert_null(cause);
}

/* A bounce whose returned headers and status parts are empty (fuzzer find). */
static void
test_dsn_empty_parts(void **state)
{
	struct email_parsed p;

	test_parse("Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
		   "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
		   "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
		   "--B--\r\n",
	    &p);
	assert_true(p.is_dsn);
	assert_null(p.dsn_original);
	assert_null(p.dsn_status);
	assert_null(p.dsn_text);
	email_parsed_free(&p);
}

/* A mail whose only text part is empty: an empty body, not a missing one. */
static void
test_empty_text_part(void **state)
{
	struct email_parsed p;

	test_parse("From: a@b.example\r\nSubject: kosong\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", &p);
	assert_non_null(p.body);
	assert_string_equal(p.body, "");
	assert_string_equal(p.subject, "kosong");
	email_parsed_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dsn_empty_parts),
		cmocka_unit_test(test_empty_text_part),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
