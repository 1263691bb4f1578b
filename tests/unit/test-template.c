/*
 * test-template.c: the placeholders of reminder texts: rendering in one
 * pass, Indonesian and English dates, and the check that refuses an
 * unknown placeholder by name.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "template.h"
#include "util.h"

static const struct template_values template_pt = {
	"PT Porang Jaya", "1234567890123", "2026-Q1", 2026, 4, 15, 14, "id",
};

/* Render text with v and compare. */
static void
check_render(const char *text, const struct template_values *v, const char *want)
{
	char *got = template_render(text, v);

	assert_string_equal(got, want);
	free(got);
}

static void
test_render_all(void **state)
{
	(void)state;
	check_render("Yth. {{company_name}} ({{nib}}), LKPM {{period}} paling lambat {{deadline}}, {{days_left}} hari.",
	    &template_pt,
	    "Yth. PT Porang Jaya (1234567890123), LKPM 2026-Q1 paling lambat 15 April 2026, 14 hari.");
	check_render("", &template_pt, "");
	check_render("tanpa placeholder", &template_pt, "tanpa placeholder");
}

static void
test_render_dates(void **state)
{
	struct template_values v = template_pt;
	char out[64];

	(void)state;
	v.deadline_month = 8;
	v.deadline_day = 17;
	check_render("{{deadline}}", &v, "17 Agustus 2026");
	v.language = "en";
	v.deadline_year = 2027;
	v.deadline_month = 1;
	v.deadline_day = 5;
	check_render("{{deadline}}", &v, "5 January 2027");
	template_date_text(2025, 12, 31, "id", out, sizeof out);
	assert_string_equal(out, "31 Desember 2025");
	template_date_text(2025, 0, 1, "id", out, sizeof out);
	assert_string_equal(out, "");
}

/* Values are put in as they are: never searched for placeholders again. */
static void
test_render_one_pass(void **state)
{
	struct template_values v = template_pt;

	(void)state;
	v.company_name = "PT \"{{nib}}\" {{period}} \\";
	check_render("{{company_name}}|{{nib}}", &v, "PT \"{{nib}}\" {{period}} \\|1234567890123");
	v.company_name = NULL;
	v.days_left = -3;
	check_render("[{{company_name}}] {{days_left}}", &v, "[] -3");
	check_render("{{{{nib}}}} {{x}} {{nib} {nib}} {{ nib }}", &template_pt,
	    "{{1234567890123}} {{x}} {{nib} {nib}} {{ nib }}");
}

static void
test_check(void **state)
{
	char *cause = NULL;

	(void)state;
	assert_int_equal(template_check("{{company_name}} {{nib}} {{period}} {{deadline}} {{days_left}}", &cause), 0);
	assert_int_equal(template_check("{ {nib} {{ x }} {{}} {{", &cause), 0);
	assert_int_equal(template_check("Batas {{deadlne}}.", &cause), -1);
	assert_non_null(strstr(cause, "unknown placeholder {{deadlne}}"));
	assert_non_null(strstr(cause, "{{days_left}}"));
	free(cause);
	assert_int_equal(template_check("{{{nib}} {{{Nama_1}}}", &cause), -1);
	assert_non_null(strstr(cause, "{{Nama_1}}"));
	free(cause);
}

static void
test_campaign_check(void **state)
{
	json_t *c;
	char *cause = NULL;

	(void)state;
	c = json_loads("{\"texts\": {\"default\": {\"id\": \"{{nib}}\", \"en\": \"{{nib}}\"}, "
	    "\"sms\": {\"id\": \"ok {{period}}\"}}, \"whatsapp_template\": {\"name\": \"x\", "
	    "\"params\": [\"{{company_name}}\", \"{{tenggat}}\"]}}", 0, NULL);
	assert_non_null(c);
	assert_int_equal(template_campaign_check(c, &cause), -1);
	assert_string_equal(cause, "whatsapp_template.params[1]: unknown placeholder {{tenggat}}; the placeholders are "
	    "{{company_name}} {{nib}} {{period}} {{deadline}} {{days_left}}");
	free(cause);
	json_decref(c);
	c = json_loads("{\"texts\": {\"email\": {\"en\": \"Dear {{company}}\"}}}", 0, NULL);
	assert_int_equal(template_campaign_check(c, &cause), -1);
	assert_non_null(strstr(cause, "texts.email.en: unknown placeholder {{company}}"));
	free(cause);
	json_decref(c);
	c = json_loads("{\"texts\": 3, \"whatsapp_template\": {\"params\": \"x\"}}", 0, NULL);
	assert_int_equal(template_campaign_check(c, &cause), 0);
	json_decref(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_all),
		cmocka_unit_test(test_render_dates),
		cmocka_unit_test(test_render_one_pass),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_campaign_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
