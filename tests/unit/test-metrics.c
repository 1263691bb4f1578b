/*
 * test-metrics.c: unit tests of the in-process metrics (src/metrics.c):
 * counters per label, cumulative histogram buckets with +Inf, _sum and
 * _count, label values escaped as the text format wants, and a name that is
 * not in the table changing nothing.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

/* The local families in the text format, as a new string. */
static char *
test_format(void)
{
	struct buf b;

	buf_init(&b);
	metrics_format_local(&b);
	return buf_take(&b);
}

static void
test_counter_per_label(void **state)
{
	char *out;

	metrics_reset();
	metrics_count("linbat_webhook_signature_failures_total", "wa1");
	metrics_count("linbat_webhook_signature_failures_total", "wa1");
	metrics_count("linbat_webhook_signature_failures_total", "wa2");
	out = test_format();
	assert_non_null(strstr(out, "# TYPE linbat_webhook_signature_failures_total counter\n"));
	assert_non_null(strstr(out, "\nlinbat_webhook_signature_failures_total{instance=\"wa1\"} 2\n"));
	assert_non_null(strstr(out, "\nlinbat_webhook_signature_failures_total{instance=\"wa2\"} 1\n"));
	free(out);
	metrics_reset();
}

static void
test_histogram_buckets(void **state)
{
	char *out;

	metrics_reset();
	metrics_observe("linbat_send_duration_seconds", "t1", 0.003);
	metrics_observe("linbat_send_duration_seconds", "t1", 0.2);
	metrics_observe("linbat_send_duration_seconds", "t1", 20);
	out = test_format();
	assert_non_null(strstr(out, "linbat_send_duration_seconds_bucket{instance=\"t1\",le=\"0.005\"} 1\n"));
	assert_non_null(strstr(out, "linbat_send_duration_seconds_bucket{instance=\"t1\",le=\"0.1\"} 1\n"));
	assert_non_null(strstr(out, "linbat_send_duration_seconds_bucket{instance=\"t1\",le=\"0.25\"} 2\n"));
	assert_non_null(strstr(out, "linbat_send_duration_seconds_bucket{instance=\"t1\",le=\"10\"} 2\n"));
	assert_non_null(strstr(out, "linbat_send_duration_seconds_bucket{instance=\"t1\",le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(out, "linbat_send_duration_seconds_sum{instance=\"t1\"} 20.203\n"));
	assert_non_null(strstr(out, "linbat_send_duration_seconds_count{instance=\"t1\"} 3\n"));
	free(out);
	metrics_reset();
}

static void
test_label_escapes(void **state)
{
	char *out;

	metrics_reset();
	metrics_count("linbat_webhook_signature_failures_total", "a\"b\\c\nd");
	out = test_format();
	assert_non_null(strstr(out, "{instance=\"a\\\"b\\\\c\\nd\"} 1\n"));
	free(out);
	metrics_reset();
}

static void
test_unknown_name_changes_nothing(void **state)
{
	char *before, *after;

	metrics_reset();
	before = test_format();
	log_set_level(LOG_LEVEL_ERROR); /* the warning is expected */
	metrics_count("linbat_no_such_total", "x");
	metrics_observe("linbat_webhook_signature_failures_total", "x", 1); /* a counter, not a histogram */
	log_set_level(LOG_LEVEL_INFO);
	after = test_format();
	assert_string_equal(before, after);
	free(before);
	free(after);
	metrics_reset();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter_per_label),
		cmocka_unit_test(test_histogram_buckets),
		cmocka_unit_test(test_label_escapes),
		cmocka_unit_test(test_unknown_name_changes_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
