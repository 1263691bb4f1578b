/*
 * metrics.c: the in-process metrics of linbatd and the pieces of the
 * Prometheus text format (version 0.0.4). Modules count events and time them
 * by family name (metrics_count, metrics_observe); the families are the
 * const table below, and their series start at zero with the process.
 * GET /metrics itself, which adds the pool, dispatcher and database figures,
 * is metrics-scrape.c: this file depends on nothing but the util and log
 * layers, so an adapter that counts does not pull the server into linbatctl.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "util.h"


/* The families modules feed through metrics_count and metrics_observe. */
static const struct metrics_family metrics_local[] = {
	{ "linbat_webhook_signature_failures_total", "counter", { "instance", NULL },
	  "Webhooks refused because their signature was missing or wrong, since this process started." },
	{ "linbat_webhook_duration_seconds", "histogram", { "code", NULL },
	  "Time this process took to answer a webhook, by status class, since it started." },
	{ "linbat_send_duration_seconds", "histogram", { "instance", NULL },
	  "Time from handing an outbound message to its adapter to the adapter's answer, since this "
	  "process started." },
};

/* Upper bounds of the histogram buckets, in seconds (+Inf is implied). */
static const double metrics_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };

/* One labelled series of a local family. */
struct metrics_series {
	const struct metrics_family *f;
	char *label; /* NULL: the family has no label */
	unsigned long long count;
	double sum;
	unsigned long long buckets[nitems(metrics_bounds)];
};

static struct metrics_series *metrics_series;
static size_t metrics_nseries;
static int metrics_warned;

/* The local family called name, or NULL (logged once: a caller's mistake). */
static const struct metrics_family *
metrics_family_find(const char *name, const char *type)
{
	size_t i;

	for (i = 0; i < nitems(metrics_local); i++) {
		if (strcmp(metrics_local[i].name, name) == 0 && strcmp(metrics_local[i].type, type) == 0)
			return &metrics_local[i];
	}
	if (!metrics_warned++)
		log_warn("metrics", "A module fed a metric that is not in the table. name=%s type=%s", name, type);
	return NULL;
}

/* The series of family f for label, made on first use. */
static struct metrics_series *
metrics_series_get(const struct metrics_family *f, const char *label)
{
	struct metrics_series *s;
	size_t i;

	for (i = 0; i < metrics_nseries; i++) {
		s = &metrics_series[i];
		if (s->f == f && (s->label == label || (s->label != NULL && label != NULL &&
		    strcmp(s->label, label) == 0)))
			return s;
	}
	metrics_series = xrealloc(metrics_series, (metrics_nseries + 1) * sizeof *metrics_series);
	s = &metrics_series[metrics_nseries++];
	memset(s, 0, sizeof *s);
	s->f = f;
	s->label = label != NULL ? xstrdup(label) : NULL;
	return s;
}

void
metrics_count(const char *name, const char *label)
{
	const struct metrics_family *f = metrics_family_find(name, "counter");

	if (f != NULL)
		metrics_series_get(f, label)->count++;
}

void
metrics_observe(const char *name, const char *label, double seconds)
{
	const struct metrics_family *f = metrics_family_find(name, "histogram");
	struct metrics_series *s;
	size_t i;

	if (f == NULL)
		return;
	s = metrics_series_get(f, label);
	s->count++;
	s->sum += seconds;
	for (i = 0; i < nitems(metrics_bounds); i++) {
		if (seconds <= metrics_bounds[i])
			s->buckets[i]++;
	}
}

void
metrics_reset(void)
{
	size_t i;

	for (i = 0; i < metrics_nseries; i++)
		free(metrics_series[i].label);
	free(metrics_series);
	metrics_series = NULL;
	metrics_nseries = 0;
	metrics_warned = 0;
}

/* Append a label value with the text format's escapes (backslash, quote, newline). */
static void
metrics_add_escaped(struct buf *out, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			buf_addf(out, "\\%c", *v);
		else if (*v == '\n')
			buf_adds(out, "\\n");
		else
			buf_add(out, v, 1);
	}
}

/* Append {name="value",...} for n labels (nothing if n is 0), plus le if given. */
void
metrics_add_labels(struct buf *out, const char *const *names, const char *const *values, size_t n,
    const char *le)
{
	size_t i;

	if (n == 0 && le == NULL)
		return;
	buf_adds(out, "{");
	for (i = 0; i < n; i++) {
		buf_addf(out, "%s%s=\"", i > 0 ? "," : "", names[i]);
		metrics_add_escaped(out, values[i]);
		buf_adds(out, "\"");
	}
	if (le != NULL)
		buf_addf(out, "%sle=\"%s\"", n > 0 ? "," : "", le);
	buf_adds(out, "}");
}

/* Append the HELP and TYPE lines of a family. */
void
metrics_add_header(struct buf *out, const char *name, const char *type, const char *help)
{
	buf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Append one histogram series: cumulative buckets, +Inf, sum and count. */
static void
metrics_add_histogram(struct buf *out, const struct metrics_series *s)
{
	const char *const *names = s->f->labels;
	const char *values[1] = { s->label };
	size_t n = s->label != NULL ? 1 : 0, i;
	char le[32];

	for (i = 0; i < nitems(metrics_bounds); i++) {
		snprintf(le, sizeof le, "%g", metrics_bounds[i]);
		buf_addf(out, "%s_bucket", s->f->name);
		metrics_add_labels(out, names, values, n, le);
		buf_addf(out, " %llu\n", s->buckets[i]);
	}
	buf_addf(out, "%s_bucket", s->f->name);
	metrics_add_labels(out, names, values, n, "+Inf");
	buf_addf(out, " %llu\n%s_sum", s->count, s->f->name);
	metrics_add_labels(out, names, values, n, NULL);
	buf_addf(out, " %.9g\n%s_count", s->sum, s->f->name);
	metrics_add_labels(out, names, values, n, NULL);
	buf_addf(out, " %llu\n", s->count);
}

void
metrics_format_local(struct buf *out)
{
	const struct metrics_family *f;
	const struct metrics_series *s;
	const char *values[1];
	size_t i, j;

	for (i = 0; i < nitems(metrics_local); i++) {
		f = &metrics_local[i];
		metrics_add_header(out, f->name, f->type, f->help);
		for (j = 0; j < metrics_nseries; j++) {
			s = &metrics_series[j];
			if (s->f != f)
				continue;
			if (strcmp(f->type, "histogram") == 0) {
				metrics_add_histogram(out, s);
				continue;
			}
			values[0] = s->label;
			buf_adds(out, f->name);
			metrics_add_labels(out, f->labels, values, s->label != NULL ? 1 : 0, NULL);
			buf_addf(out, " %llu\n", s->count);
		}
	}
}

