/*
 * dispatch.h: the outbound dispatcher. Outbound message rows are the outbox:
 * the dispatcher claims due rows in batches (FOR UPDATE SKIP LOCKED, with a
 * lease), paces them per channel instance with a token bucket, hands them to
 * the adapters, and records each upcall through the SQL functions that own
 * retries, backoff and fallback. It wakes on NOTIFY linbat_outbox, with a
 * timer as a backstop.
 */
#ifndef LINBAT_DISPATCH_H
#define LINBAT_DISPATCH_H

struct server;
struct dispatch;

struct dispatch_stats {
	unsigned long long claimed, sent, failed, retried, fallbacks;
	int inflight;
};

struct dispatch *dispatch_create(struct server *, char **cause);
void dispatch_start(struct dispatch *);
/* Stop claiming; sends in flight still finish and are recorded. */
void dispatch_stop(struct dispatch *);
/* Messages handed to adapters (or being recorded) and not yet finished. */
int dispatch_inflight(struct dispatch *);
void dispatch_get_stats(struct dispatch *, struct dispatch_stats *);
void dispatch_destroy(struct dispatch *);

#endif
