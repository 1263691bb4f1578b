/*
 * metrics.h: GET /metrics in the Prometheus text format (version 0.0.4);
 * metrics.c keeps the in-process series, metrics-scrape.c serves the route.
 *
 * Two sources: what this process measured since it started (counters and
 * latency histograms kept in memory, reset by a restart) and what the
 * database says for all processes at once (message counts, outbox depth,
 * operators, queue), read with one query per scrape through the pool.
 * Any module may count or time an event by the family name; the families are
 * a const table in metrics.c, and a name not in it is a programming error
 * that is logged once and otherwise ignored.
 */
#ifndef LINBAT_METRICS_H
#define LINBAT_METRICS_H

#include <stddef.h>

struct server;
struct buf;

/* Register GET /metrics and time the webhooks served by srv->http (metrics-scrape.c). */
void metrics_init(struct server *);

/* Add one to the counter family name for label value label (copied; NULL: no label). */
void metrics_count(const char *name, const char *label);
/* Add one observation, in seconds, to the histogram family name for label (copied; NULL: no label). */
void metrics_observe(const char *name, const char *label, double seconds);

/* A family of series: its name, type, label names (NULL-terminated) and help. */
struct metrics_family {
	const char *name;
	const char *type;
	const char *labels[4];
	const char *help;
};

/* Pieces of the text format: HELP and TYPE lines; {name="value",...} for n labels, plus le if not NULL. */
void metrics_add_header(struct buf *, const char *name, const char *type, const char *help);
void metrics_add_labels(struct buf *, const char *const *names, const char *const *values, size_t n,
    const char *le);

/* Append the in-process families, in the text format, to out. */
void metrics_format_local(struct buf *out);
/* Forget every series (at exit, and between unit tests). */
void metrics_reset(void);

#endif
