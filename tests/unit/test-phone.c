/*
 * test-phone.c: the phone normaliser against a table of numbers as people
 * write them, each with the E.164 it must become or the words its
 * rejection must contain.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "phone.h"
#include "util.h"

/* One case: what is written, and the E.164 (or NULL and words of the reason). */
struct phone_case {
	const char *in;
	const char *want;
	const char *reason;
};

static const struct phone_case phone_cases[] = {
	/* Indonesian mobiles as people write them */
	{ "081234567890", "+6281234567890", NULL },
	{ "0812-3456-7890", "+6281234567890", NULL },
	{ "0812 3456 7890", "+6281234567890", NULL },
	{ "0812.3456.7890", "+6281234567890", NULL },
	{ "6281234567890", "+6281234567890", NULL },
	{ "+6281234567890", "+6281234567890", NULL },
	{ "+62 812 3456 7890", "+6281234567890", NULL },
	{ "+62-812-3456-7890", "+6281234567890", NULL },
	{ "+62 (0)812 3456 7890", "+6281234567890", NULL },
	{ "620812 3456 7890", "+6281234567890", NULL },
	{ "006281234567890", "+6281234567890", NULL },
	{ "  0813 5000 1234  ", "+6281350001234", NULL },
	{ "812-3456-7890", "+6281234567890", NULL },
	{ "0811 500 123", "+62811500123", NULL },
	{ "0852 1234 5678 9", "+62852123456789", NULL },
	/* landlines: Balangan (0526), Banjarmasin (0511), Jakarta (021) */
	{ "(0526) 2028123", "+625262028123", NULL },
	{ "(0511) 4772 123", "+625114772123", NULL },
	{ "021-5252008", "+62215252008", NULL },
	{ "+62 21 5252 0080", "+622152520080", NULL },
	/* other countries */
	{ "+1 415 867 5309", "+14158675309", NULL },
	{ "+65 6123 4567", "+6561234567", NULL },
	{ "0060 12 345 6789", "+60123456789", NULL },
	{ "+44 (20) 7946 0958", "+442079460958", NULL },
	/* impossible numbers */
	{ "", NULL, "no digits" },
	{ "   ", NULL, "no digits" },
	{ "+", NULL, "no digits" },
	{ "0812-3456", NULL, "mobile number has 10 to 13 digits" },
	{ "0812 3456 7890 1234", NULL, "mobile number has 10 to 13 digits" },
	{ "0912 3456 789", NULL, "no Indonesian area code" },
	{ "0112345678", NULL, "no Indonesian area code" },
	{ "021-123", NULL, "landline has 8 to 12 digits" },
	{ "+0812345678", NULL, "cannot start with 0" },
	{ "+1 234", NULL, "8 to 15 digits" },
	{ "+1234567890123456", NULL, "8 to 15 digits" },
	{ "1234567890", NULL, "no country code" },
	{ "0812-3456-789O", NULL, "unexpected character 'O'" },
	{ "+62 812 3456 7890 ext 2", NULL, "unexpected character 'e'" },
	{ "08123456789012345678901234567890123", NULL, "too many digits" },
	{ "+62+812345678", NULL, "unexpected character '+'" },
	{ "tel:+6281234567890", NULL, "unexpected character 't'" },
};

/* Every case of the table gives its E.164 or its reason. */
static void
test_phone_table(void **state)
{
	char out[PHONE_E164_MAX], *cause;
	size_t i;
	int rc;

	(void)state;
	assert_true(nitems(phone_cases) >= 25);
	for (i = 0; i < nitems(phone_cases); i++) {
		const struct phone_case *c = &phone_cases[i];

		cause = NULL;
		memset(out, 0, sizeof out);
		rc = phone_normalise(c->in, out, sizeof out, &cause);
		if (c->want != NULL) {
			if (rc != 0)
				fail_msg("\"%s\": rejected (%s), want %s", c->in, cause, c->want);
			assert_string_equal(out, c->want);
		} else {
			if (rc == 0)
				fail_msg("\"%s\": accepted as %s, want a rejection", c->in, out);
			if (strstr(cause, c->reason) == NULL)
				fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", c->in, cause, c->reason);
		}
		free(cause);
	}
}

/* A buffer too small for the number is a rejection, not an overflow. */
static void
test_phone_small_buffer(void **state)
{
	char out[8], *cause = NULL;

	(void)state;
	assert_int_equal(phone_normalise("081234567890", out, sizeof out, &cause), -1);
	assert_non_null(cause);
	free(cause);
	assert_int_equal(phone_normalise(NULL, out, sizeof out, &cause), -1);
	free(cause);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_phone_table),
		cmocka_unit_test(test_phone_small_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
