/*
 * dispatch-record.c: how the dispatcher records what adapters answered.
 * Answers queue up, sent ones and failed ones apart, and go to the database
 * in batches, so at thousands of messages a second the database sees dozens
 * of round trips, not thousands: sent ones through
 * linbat.outbound_sent_batch, which records the whole batch set-based (one
 * UPDATE, most of PostgreSQL's work per message); failed ones (rare, and
 * each may retry, fall back or template) by calling linbat.outbound_failed
 * for each row of unnested arrays.
 * At most DISPATCH_RECORD_PARALLEL round trips run at once; what arrives
 * meanwhile joins the next batch. A batch the database cannot take now (it
 * is away) stalls and is tried again every tick; a batch with a bad row is
 * tried row by row.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "dispatch-int.h"
#include "log.h"
#include "server.h"
#include "util.h"

/* One record round trip: answers of one kind (sent or failed), in order. */
struct dispatch_record {
	struct dispatch *d;
	int ok;
	int n;
	struct dispatch_job *jobs[];
};

static const struct db_stmt dispatch_stmt_sent = {
	"dispatch_sent",
	"select id from linbat.outbound_sent_batch($1::bigint[], $2::text[])",
};
static const struct db_stmt dispatch_stmt_failed = {
	"dispatch_failed",
	"select linbat.outbound_failed(t.id, t.kind, t.code, t.text, t.retry_after, $6::integer, $7::integer) "
	"from unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::integer[]) "
	"with ordinality as t (id, kind, code, text, retry_after, n) order by t.n",
};

static void dispatch_record_flush(struct dispatch *);
static void dispatch_recorded_cb(const PGresult *, const char *, const char *, void *);

/* Send one record round trip: the parameters are arrays, one element per job. */
static void
dispatch_record_send(struct dispatch_record *r)
{
	struct dispatch *d = r->d;
	struct buf a[5];
	const char *v[7];
	char num[24];
	int i, k, narr = r->ok ? 2 : 5;

	for (k = 0; k < narr; k++) {
		buf_init(&a[k]);
		buf_add(&a[k], "{", 1);
	}
	for (i = 0; i < r->n; i++) {
		struct dispatch_job *job = r->jobs[i];

		snprintf(num, sizeof num, "%lld", job->msg.id);
		buf_add_pgarray(&a[0], num);
		if (r->ok) {
			buf_add_pgarray(&a[1], job->provider_id[0] != '\0' ? job->provider_id : NULL);
			continue;
		}
		buf_add_pgarray(&a[1], channel_fail_name(job->fail));
		buf_add_pgarray(&a[2], job->code[0] != '\0' ? job->code : NULL);
		buf_add_pgarray(&a[3], job->text[0] != '\0' ? job->text : NULL);
		snprintf(num, sizeof num, "%d", job->retry_after);
		buf_add_pgarray(&a[4], num);
	}
	for (k = 0; k < narr; k++) {
		buf_add(&a[k], "}", 1);
		v[k] = a[k].data;
	}
	v[5] = d->max_attempts_s;
	v[6] = d->backoff_s;
	d->recording++;
	d->pending_db++;
	db_exec(d->srv->db, r->ok ? &dispatch_stmt_sent : &dispatch_stmt_failed, r->ok ? 2 : 7, v,
	    dispatch_recorded_cb, r);
	for (k = 0; k < narr; k++)
		buf_free(&a[k]);
}

/* The record queue whose oldest answer has waited longest; NULL if both are empty. */
static struct dispatch_jobs *
dispatch_record_next(struct dispatch *d)
{
	struct dispatch_job *s = TAILQ_FIRST(&d->sentq), *f = TAILQ_FIRST(&d->failq);

	if (s == NULL)
		return f != NULL ? &d->failq : NULL;
	if (f == NULL || s->since_us <= f->since_us)
		return &d->sentq;
	return &d->failq;
}

/* Take up to DISPATCH_RECORD_BATCH answers off a record queue. */
static struct dispatch_record *
dispatch_record_take(struct dispatch *d, struct dispatch_jobs *q)
{
	struct dispatch_record *r = xmalloc(sizeof *r + DISPATCH_RECORD_BATCH * sizeof r->jobs[0]);
	struct dispatch_job *job;

	r->d = d;
	r->ok = q == &d->sentq;
	r->n = 0;
	while (r->n < DISPATCH_RECORD_BATCH && (job = TAILQ_FIRST(q)) != NULL) {
		TAILQ_REMOVE(q, job, entry);
		r->jobs[r->n++] = job;
	}
	return r;
}

/* Start record round trips while fewer than DISPATCH_RECORD_PARALLEL are in flight. */
static void
dispatch_record_flush(struct dispatch *d)
{
	struct dispatch_jobs *q;

	while (!d->dying && d->recording < DISPATCH_RECORD_PARALLEL && (q = dispatch_record_next(d)) != NULL)
		dispatch_record_send(dispatch_record_take(d, q));
}

/* A record for one job alone: how a batch with one bad row finds it. */
static void
dispatch_record_single(struct dispatch_job *job)
{
	struct dispatch_record *r = xmalloc(sizeof *r + sizeof r->jobs[0]);

	r->d = job->d;
	r->ok = job->ok;
	r->n = 1;
	r->jobs[0] = job;
	dispatch_record_send(r);
}

/*
 * Count what the database made of one answer (sent: accepted by a provider;
 * failed: every failed send, of which retried went back to the queue, as
 * such or as the template, and fallbacks moved to the investor's next
 * channel), and say so at INFO when it ends the message on its channel.
 */
static void
dispatch_outcome(struct dispatch *d, struct dispatch_job *job, const char *outcome)
{
	if (job->ok) {
		d->stats.sent++;
		return;
	}
	d->stats.failed++;
	if (strcmp(outcome, "retry") == 0 || strcmp(outcome, "template") == 0)
		d->stats.retried++;
	else if (strcmp(outcome, "fallback") == 0)
		d->stats.fallbacks++;
	if (strcmp(outcome, "retry") == 0 || strcmp(outcome, "ignored") == 0)
		log_debug("dispatch", "A failed send was recorded. id=%lld instance=%s code=%s outcome=%s",
		    job->msg.id, job->instance, job->code, outcome);
	else
		log_info("dispatch", "An outbound message failed on its channel. id=%lld instance=%s kind=%s "
		    "code=%s attempt=%d outcome=%s", job->msg.id, job->instance, channel_fail_name(job->fail),
		    job->code, job->msg.attempt, outcome);
}

/* A record round trip succeeded: every job in it is over. */
static void
dispatch_record_done(struct dispatch_record *r, const PGresult *res)
{
	struct dispatch *d = r->d;
	int i, rows = PQntuples(res);

	if (d->record_warned) {
		log_info("dispatch", "Answers are being recorded again.");
		d->record_warned = 0;
	}
	if (r->ok && rows < r->n)
		log_warn("dispatch", "Sends were accepted for messages that no longer exist; nothing was recorded for "
		    "them. count=%d", r->n - rows);
	for (i = 0; i < r->n; i++) {
		dispatch_outcome(d, r->jobs[i], i < rows && !r->ok ? PQgetvalue(res, i, 0) : "");
		dispatch_job_finish(r->jobs[i]);
	}
}

/* True for errors that pass: the database is away, busy, or a transaction lost a race. */
static int
dispatch_transient(const char *sqlstate)
{
	static const char *const classes[] = { "08", "40", "53", "55", "57", "58" };
	size_t i;

	if (sqlstate == NULL || sqlstate[0] == '\0')
		return 1;
	for (i = 0; i < nitems(classes); i++) {
		if (strncmp(sqlstate, classes[i], 2) == 0)
			return 1;
	}
	return 0;
}

/* Keep the answers of a failed record round trip for the next tick. */
static void
dispatch_record_stall(struct dispatch_record *r, const char *error)
{
	struct dispatch *d = r->d;
	int i;

	if (!d->record_warned) {
		log_warn("dispatch", "Could not record what the providers answered; the answers are kept and "
		    "recorded again every second. reason=\"%s\"", error);
		d->record_warned = 1;
	}
	for (i = 0; i < r->n; i++) {
		dispatch_job_set_state(r->jobs[i], DISPATCH_JOB_STALLED);
		TAILQ_INSERT_TAIL(&d->stalled, r->jobs[i], entry);
	}
}

/*
 * A record round trip failed. Transient errors keep the answers for later; a
 * batch with some other error is tried one job at a time, so that one bad
 * row (a message deleted meanwhile) does not hold the others back; a single
 * job with such an error is given up and left to its lease.
 */
static void
dispatch_record_error(struct dispatch_record *r, const char *error, const char *sqlstate)
{
	int i;

	if (strcmp(error, DB_ERROR_CLOSED) == 0) {
		for (i = 0; i < r->n; i++)
			dispatch_job_finish(r->jobs[i]);
	} else if (dispatch_transient(sqlstate)) {
		dispatch_record_stall(r, error);
	} else if (r->n > 1) {
		for (i = 0; i < r->n; i++)
			dispatch_record_single(r->jobs[i]);
	} else {
		log_warn("dispatch", "Could not record what a provider answered; the message is left to its "
		    "lease. id=%lld sent=%d reason=\"%s\" sqlstate=%s", r->jobs[0]->msg.id, r->ok, error, sqlstate);
		dispatch_job_finish(r->jobs[0]);
	}
}

/* A record round trip came back. */
static void
dispatch_recorded_cb(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct dispatch_record *r = arg;
	struct dispatch *d = r->d;
	int i;

	d->recording--;
	d->pending_db--;
	if (d->dying) {
		for (i = 0; i < r->n; i++)
			dispatch_job_free(r->jobs[i]);
		free(r);
		dispatch_reap(d);
		return;
	}
	if (error == NULL)
		dispatch_record_done(r, res);
	else
		dispatch_record_error(r, error, sqlstate);
	free(r);
	dispatch_record_flush(d);
}

/* Queue the job's answer for recording. */
void
dispatch_record_push(struct dispatch_job *job)
{
	struct dispatch *d = job->d;

	dispatch_job_set_state(job, DISPATCH_JOB_RECORDING);
	job->since_us = util_mono_us();
	TAILQ_INSERT_TAIL(job->ok ? &d->sentq : &d->failq, job, entry);
	dispatch_record_flush(d);
}

/* The tick: the stalled answers join the queues again. */
void
dispatch_record_retry(struct dispatch *d)
{
	struct dispatch_job *job;

	while ((job = TAILQ_FIRST(&d->stalled)) != NULL) {
		TAILQ_REMOVE(&d->stalled, job, entry);
		dispatch_record_push(job);
	}
}
