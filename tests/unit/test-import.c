/*
 * test-import.c: unit tests of the field checks of linbatctl's CSV imports
 * (src/ctl-import-check.c): each check's normal form and its refusals.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl-import.h"
#include "util.h"

/* One case: a check, its input, and the value it gives (NULL: none) or the reason it refuses. */
struct case_ {
	ctl_import_check_cb check;
	const char *in;
	int rc;
	const char *want; /* the value if rc == 0, the reason if rc == -1 */
};

static const struct case_ cases[] = {
	{ ctl_import_nib, " 1234567890123 ", 0, "1234567890123" },
	{ ctl_import_nib, "123456789012", -1, "must be 13 digits" },
	{ ctl_import_nib, "12345678901234", -1, "must be 13 digits" },
	{ ctl_import_nib, "", -1, "is required" },
	{ ctl_import_scale, "Besar", 0, "besar" },
	{ ctl_import_scale, "raksasa", -1, "must be mikro, kecil, menengah or besar" },
	{ ctl_import_kbli, "01111; 47111", 0, "{01111,47111}" },
	{ ctl_import_kbli, "", 0, "{}" },
	{ ctl_import_kbli, "0111", -1, "must be 5-digit KBLI codes separated by semicolons, each once" },
	{ ctl_import_kbli, "01111;01111", -1, "must be 5-digit KBLI codes separated by semicolons, each once" },
	{ ctl_import_phone, "0812-3456-7890", 0, "+6281234567890" },
	{ ctl_import_phone, "62 812 3456 7890", 0, "+6281234567890" },
	{ ctl_import_phone, "+62 (0)812 3456 7890", 0, "+6281234567890" },
	{ ctl_import_phone, "", 0, NULL },
	{ ctl_import_phone, "+1 202 555 0100", 0, "+12025550100" },
	{ ctl_import_phone, "0812", -1, "an Indonesian mobile number has 10 to 13 digits with its leading 0, this one has 4" },
	{ ctl_import_phone, "0812x34567890", -1, "unexpected character 'x' in a telephone number" },
	{ ctl_import_email, " Budi@Example.CO.ID ", 0, "budi@example.co.id" },
	{ ctl_import_email, "budi@", -1, "is not an email address" },
	{ ctl_import_email, "bu di@example.com", -1, "is not an email address" },
	{ ctl_import_channel, "WA", 0, "whatsapp" },
	{ ctl_import_channel, "", 0, NULL },
	{ ctl_import_channel, "fax", -1, "must be whatsapp, sms or email" },
	{ ctl_import_language, "EN", 0, "en" },
	{ ctl_import_language, "jv", -1, "must be id or en" },
	{ ctl_import_kbli_version, "2025", 0, "2025" },
	{ ctl_import_period, "2026-q1", 0, "2026-Q1" },
	{ ctl_import_period, "2026-S2", 0, "2026-S2" },
	{ ctl_import_period, "2026-S3", -1, "must be a period such as 2026-Q1 or 2026-S1" },
	{ ctl_import_period, "26-Q1", -1, "must be a period such as 2026-Q1 or 2026-S1" },
	{ ctl_import_status, "Perlu Perbaikan", 0, "perlu_perbaikan" },
	{ ctl_import_status, "Disetujui", 0, "disetujui" },
	{ ctl_import_status, "claimed", -1,
	  "must be an OSS status: Draf, Terkirim, Perlu Perbaikan, Sudah Diperbaiki, Disetujui" },
	{ ctl_import_date, "2026-02-28", 0, "2026-02-28" },
	{ ctl_import_date, "2026-02-29", -1, "must be a date YYYY-MM-DD" },
	{ ctl_import_date, "28/02/2026", -1, "must be a date YYYY-MM-DD" },
};

/* Every case gives its value or its reason. */
static void
test_checks(void **state)
{
	size_t i;

	for (i = 0; i < nitems(cases); i++) {
		char *out = (char *)"unset";
		const char *reason = NULL;
		int rc = cases[i].check(cases[i].in, &out, &reason);

		print_message("case %zu: \"%s\"\n", i, cases[i].in);
		assert_int_equal(rc, cases[i].rc);
		if (rc == 0 && cases[i].want == NULL)
			assert_null(out);
		else if (rc == 0) {
			assert_string_equal(out, cases[i].want);
			free(out);
		} else
			assert_string_equal(reason, cases[i].want);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
