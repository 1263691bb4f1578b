/*
 * dispatch-int.h: what the two files of the dispatcher share: dispatch.c
 * (claims, pacing, sends, upcalls, lifecycle) and dispatch-record.c (the
 * batched recording of answers). Nothing outside src/dispatch*.c includes it.
 */
#ifndef LINBAT_DISPATCH_INT_H
#define LINBAT_DISPATCH_INT_H

#include <sys/queue.h>

#include <stdint.h>

#include "channel.h"
#include "dispatch.h"

#define DISPATCH_TICK_MS 1000          /* backstop claim, retry of stalled records */
#define DISPATCH_SUMMARY_MS 10000      /* how often activity is summed up at INFO */
#define DISPATCH_RECORD_BATCH 200      /* answers recorded in one round trip, at most */
#define DISPATCH_RECORD_PARALLEL 2     /* record round trips in flight, at most */

enum dispatch_job_state {
	DISPATCH_JOB_PACING,
	DISPATCH_JOB_SENDING,
	DISPATCH_JOB_RECORDING,
	DISPATCH_JOB_STALLED,
	DISPATCH_JOB_DONE,
};

struct dispatch_pace;

/* One claimed outbound message, from its claim until its answer is committed. */
struct dispatch_job {
	struct dispatch *d;
	struct dispatch_pace *pace; /* NULL if its instance is not here */
	enum dispatch_job_state state;
	struct channel_msg msg;     /* what the adapter sees; strings below */
	char *instance, *to, *body, *language;
	uint64_t lease_end_ms;      /* monotonic time the claim's lease runs out */
	uint64_t since_us;          /* when it joined its current queue */
	/* The answer, once there is one. */
	int ok;
	char *provider_id;
	enum channel_fail fail;
	char *code, *text;
	int retry_after;
	TAILQ_ENTRY(dispatch_job) entry; /* a pace FIFO, a record queue or the stalled list */
	struct dispatch_job *hnext;      /* the chain of its bucket in the index */
};
TAILQ_HEAD(dispatch_jobs, dispatch_job);

/* The token bucket and FIFO of one channel instance. */
struct dispatch_pace {
	struct dispatch *d;
	struct channel *ch;
	double tokens;
	uint64_t refilled_us;
	struct dispatch_jobs fifo;
	struct event *timer;
};

/* The dispatcher of one linbatd process. */
struct dispatch {
	struct server *srv;
	int batch, in_flight, max_attempts;
	long long lease_ms, backoff_ms;
	char lease_s[24], max_attempts_s[24], backoff_s[24];
	int started, stopped, dying;
	int claiming, claim_limit, want;
	int inflight;                 /* jobs alive */
	int pending_db;               /* claims and records in the database */
	int recording;                /* record round trips in flight */
	int sending;                  /* jobs their adapters have */
	int low_water;                /* free room that makes a claim worth it */
	uint64_t claim_sent_ms;
	struct dispatch_pace *paces;
	size_t npaces;
	struct dispatch_job **table;  /* live jobs by message id */
	size_t mask;
	struct dispatch_jobs sentq, failq, stalled;
	struct event *tick;
	uint64_t summary_ms;
	int claim_warned, record_warned;
	struct dispatch_stats stats, reported;
};

/* dispatch.c */
void dispatch_job_set_state(struct dispatch_job *, enum dispatch_job_state);
void dispatch_job_free(struct dispatch_job *);
/* The job is over: no longer in flight; may make room for a claim. */
void dispatch_job_finish(struct dispatch_job *);
/* Free a destroyed dispatcher once nothing refers to it. */
void dispatch_reap(struct dispatch *);

/* dispatch-record.c */
/* Queue a job's answer (job->ok and its fields set) to be recorded. */
void dispatch_record_push(struct dispatch_job *);
/* Record again the answers a database outage stalled. */
void dispatch_record_retry(struct dispatch *);

#endif
