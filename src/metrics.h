/*
 * metrics.h: GET /metrics in the Prometheus text format (version 0.0.4).
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

struct server;
struct buf;

/* Register GET /metrics and time the webhooks served by srv->http. */
void metrics_init(struct server *);

/* Add one to the counter family name for label value label (copied; NULL: no label). */
void metrics_count(const char *name, const char *label);
/* Add one observation, in seconds, to the histogram family name for label (copied; NULL: no label). */
void metrics_observe(const char *name, const char *label, double seconds);

/* Append the in-process families, in the text format, to out. */
void metrics_format_local(struct buf *out);
/* Forget every series (at exit, and between unit tests). */
void metrics_reset(void);

#endif
