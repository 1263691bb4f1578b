/*
 * dispatch.c: the outbound dispatcher. It claims due outbound messages from
 * the database in batches (linbat.claim_outbound: SKIP LOCKED, with a lease),
 * paces them per channel instance with a token bucket, hands them to their
 * adapter, and records each adapter's answer through
 * linbat.outbound_sent_batch or linbat.outbound_failed, which own retries,
 * backoff, templates and fallback.
 *
 * Every claimed message is a job with one explicit state, changed only by
 * dispatch_job_set_state: PACING (in its instance's FIFO, waiting for a
 * token), SENDING (the adapter has it; found again by id when it answers),
 * RECORDING (its answer waits for, or is in, a database round trip) and
 * STALLED (recording failed because the database is away; tried again every
 * tick). A job counts as in flight from its claim until its answer is
 * committed, so a restart never loses an answer the provider already gave.
 *
 * Answers are recorded in batches (dispatch-record.c). Only one claim runs
 * at a time; a full batch is followed by the next claim at once, and NOTIFY
 * linbat_outbox and a one-second tick (which also finds retries whose time
 * has come) start the others.
 */
#include "config.h"

#include <sys/queue.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "db.h"
#include "dispatch.h"
#include "dispatch-int.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "util.h"

static const char *const dispatch_state_names[] = {
	[DISPATCH_JOB_PACING] = "pacing",
	[DISPATCH_JOB_SENDING] = "sending",
	[DISPATCH_JOB_RECORDING] = "recording",
	[DISPATCH_JOB_STALLED] = "stalled",
	[DISPATCH_JOB_DONE] = "done",
};

static const struct db_stmt dispatch_stmt_claim = {
	"dispatch_claim",
	"select * from linbat.claim_outbound($1, $2::integer, $3::integer)",
};

static void dispatch_maybe_claim(struct dispatch *);
static void dispatch_pace_drain(struct dispatch_pace *);

/* The hash bucket of a message id. */
static struct dispatch_job **
dispatch_bucket(struct dispatch *d, long long id)
{
	uint64_t h = (uint64_t)id * 0x9e3779b97f4a7c15ULL;

	return &d->table[(h >> 32) & d->mask];
}

/* Index a live job by its message id. */
static void
dispatch_hash_add(struct dispatch *d, struct dispatch_job *job)
{
	struct dispatch_job **b = dispatch_bucket(d, job->msg.id);

	job->hnext = *b;
	*b = job;
}

/* Drop a job from the index. */
static void
dispatch_hash_remove(struct dispatch *d, struct dispatch_job *job)
{
	struct dispatch_job **jp;

	for (jp = dispatch_bucket(d, job->msg.id); *jp != NULL; jp = &(*jp)->hnext) {
		if (*jp == job) {
			*jp = job->hnext;
			job->hnext = NULL;
			return;
		}
	}
}

/* The next live job of a message id after job (from the start if job is NULL), or NULL. */
static struct dispatch_job *
dispatch_hash_next(struct dispatch *d, long long id, struct dispatch_job *job)
{
	for (job = job != NULL ? job->hnext : *dispatch_bucket(d, id); job != NULL; job = job->hnext) {
		if (job->msg.id == id)
			return job;
	}
	return NULL;
}

/* The job an adapter answers for: this instance's, and handed to it. NULL if none. */
static struct dispatch_job *
dispatch_answered(struct dispatch_pace *p, long long id)
{
	struct dispatch_job *job = NULL;

	while ((job = dispatch_hash_next(p->d, id, job)) != NULL) {
		if (job->pace == p && job->state == DISPATCH_JOB_SENDING) {
			p->d->sending--;
			metrics_observe("linbat_send_duration_seconds", p->ch->name,
			    (double)(util_mono_us() - job->since_us) / 1e6);
			return job;
		}
	}
	return NULL;
}

/* Move a job to another state; the one place that does. */
void
dispatch_job_set_state(struct dispatch_job *job, enum dispatch_job_state state)
{
	log_debug("dispatch", "Outbound message changed state. id=%lld instance=%s from=%s to=%s", job->msg.id,
	    job->instance, dispatch_state_names[job->state], dispatch_state_names[state]);
	job->state = state;
}

/* Free a job and everything it owns. */
void
dispatch_job_free(struct dispatch_job *job)
{
	dispatch_hash_remove(job->d, job);
	json_decref(job->msg.template);
	json_decref(job->msg.meta);
	free(job->instance);
	free(job->to);
	free(job->body);
	free(job->language);
	free(job->provider_id);
	free(job->code);
	free(job->text);
	free(job);
}

/* Parse a jsonb column; NULL for SQL NULL (or, logged, for text that is not JSON). */
static json_t *
dispatch_json(const PGresult *res, int row, int col, long long id)
{
	json_error_t err;
	json_t *j;

	if (PQgetisnull(res, row, col))
		return NULL;
	if (strcmp(PQgetvalue(res, row, col), "{}") == 0)
		return json_object();
	if ((j = json_loads(PQgetvalue(res, row, col), 0, &err)) == NULL)
		log_warn("dispatch", "An outbound message has JSON that does not parse. id=%lld column=%s "
		    "reason=\"%s\"", id, PQfname(res, col), err.text);
	return j;
}

/* The column numbers of claim_outbound's result, found once per result. */
struct dispatch_cols {
	int id, instance, address, body, use_template, template, attempts, window_open, meta, language;
};

/* Find the columns of a claim result; -1 if one is missing. */
static int
dispatch_cols_find(const PGresult *res, struct dispatch_cols *c)
{
	c->id = PQfnumber(res, "id");
	c->instance = PQfnumber(res, "instance");
	c->address = PQfnumber(res, "address");
	c->body = PQfnumber(res, "body");
	c->use_template = PQfnumber(res, "use_template");
	c->template = PQfnumber(res, "template");
	c->attempts = PQfnumber(res, "attempts");
	c->window_open = PQfnumber(res, "window_open");
	c->meta = PQfnumber(res, "meta");
	c->language = PQfnumber(res, "language");
	return c->id < 0 || c->instance < 0 || c->address < 0 || c->body < 0 || c->use_template < 0 ||
	    c->template < 0 || c->attempts < 0 || c->window_open < 0 || c->meta < 0 || c->language < 0 ? -1 : 0;
}

/* Make a job from one claimed row; it counts as in flight from here. */
static struct dispatch_job *
dispatch_job_new(struct dispatch *d, const PGresult *res, int row, const struct dispatch_cols *c,
    uint64_t lease_end_ms)
{
	struct dispatch_job *job = xcalloc(1, sizeof *job);

	job->d = d;
	job->state = DISPATCH_JOB_PACING;
	job->lease_end_ms = lease_end_ms;
	job->instance = xstrdup(PQgetvalue(res, row, c->instance));
	job->to = xstrdup(PQgetvalue(res, row, c->address));
	job->body = xstrdup(PQgetvalue(res, row, c->body));
	job->language = xstrdup(PQgetisnull(res, row, c->language) ? "id" : PQgetvalue(res, row, c->language));
	job->msg.id = strtoll(PQgetvalue(res, row, c->id), NULL, 10);
	job->msg.to = job->to;
	job->msg.body = job->body;
	job->msg.language = job->language;
	job->msg.use_template = strcmp(PQgetvalue(res, row, c->use_template), "t") == 0;
	job->msg.window_open = strcmp(PQgetvalue(res, row, c->window_open), "t") == 0;
	job->msg.attempt = atoi(PQgetvalue(res, row, c->attempts));
	job->msg.template = dispatch_json(res, row, c->template, job->msg.id);
	job->msg.meta = dispatch_json(res, row, c->meta, job->msg.id);
	dispatch_hash_add(d, job);
	d->inflight++;
	return job;
}

/* The job is over: it no longer counts as in flight, which may make room for a claim. */
void
dispatch_job_finish(struct dispatch_job *job)
{
	struct dispatch *d = job->d;

	dispatch_job_set_state(job, DISPATCH_JOB_DONE);
	d->inflight--;
	dispatch_job_free(job);
	dispatch_maybe_claim(d);
}

/* The job failed without reaching a provider, or its adapter said so. */
static void
dispatch_job_fail(struct dispatch_job *job, enum channel_fail kind, const char *code, const char *text,
    int retry_after)
{
	job->ok = 0;
	job->fail = kind;
	job->code = xstrdup(code != NULL ? code : "");
	job->text = xstrdup(text != NULL ? text : "");
	job->retry_after = retry_after > 0 ? retry_after : 0;
	dispatch_record_push(job);
}

/*
 * Hand a job to its adapter, unless its lease is nearly over (another process
 * may claim it soon: sending now could send it twice, so it is left to the
 * lease) or the instance no longer takes work (retried later).
 */
static void
dispatch_job_send(struct dispatch_job *job)
{
	struct dispatch *d = job->d;
	struct channel *ch = job->pace->ch;

	if (util_mono_ms() + (uint64_t)d->lease_ms / 4 > job->lease_end_ms) {
		log_warn("dispatch", "An outbound message waited too long for its turn; it is left for the "
		    "next claim. id=%lld instance=%s", job->msg.id, job->instance);
		dispatch_job_finish(job);
		return;
	}
	if (ch->state != CHANNEL_RUNNING) {
		dispatch_job_fail(job, CHANNEL_FAIL_TEMPORARY, "not_running",
		    "The channel instance is not running.", 0);
		return;
	}
	dispatch_job_set_state(job, DISPATCH_JOB_SENDING);
	d->sending++;
	job->since_us = util_mono_us(); /* the send latency is timed from here */
	ch->type->send(ch, &job->msg);
}

/* The pace of a channel instance; NULL if the dispatcher does not know it. */
static struct dispatch_pace *
dispatch_pace_find(struct dispatch *d, const struct channel *ch)
{
	size_t i;

	for (i = 0; i < d->npaces; i++) {
		if (d->paces[i].ch == ch)
			return &d->paces[i];
	}
	return NULL;
}

/* Add the tokens earned since the last refill, up to the burst (max(1, rate)). */
static void
dispatch_pace_refill(struct dispatch_pace *p)
{
	uint64_t now = util_mono_us();
	double burst = p->ch->rate > 1 ? (double)p->ch->rate : 1.0;

	p->tokens += (double)(now - p->refilled_us) * (double)p->ch->rate / 1e6;
	if (p->tokens > burst)
		p->tokens = burst;
	p->refilled_us = now;
}

/* Send what the bucket allows from the FIFO; arm the timer for the next token. */
static void
dispatch_pace_drain(struct dispatch_pace *p)
{
	struct dispatch_job *job;
	struct timeval tv;
	long long rate = p->ch->rate;
	uint64_t wait_us;

	if (rate > 0)
		dispatch_pace_refill(p);
	while ((job = TAILQ_FIRST(&p->fifo)) != NULL && (rate <= 0 || p->tokens >= 1.0)) {
		TAILQ_REMOVE(&p->fifo, job, entry);
		if (rate > 0)
			p->tokens -= 1.0;
		dispatch_job_send(job);
	}
	if (job == NULL || evtimer_pending(p->timer, NULL))
		return;
	wait_us = (uint64_t)((1.0 - p->tokens) * 1e6 / (double)rate) + 1;
	tv.tv_sec = (time_t)(wait_us / 1000000);
	tv.tv_usec = (suseconds_t)(wait_us % 1000000);
	evtimer_add(p->timer, &tv);
}

/* The pace timer: a token is due. */
static void
dispatch_pace_timer(evutil_socket_t fd, short what, void *arg)
{
	dispatch_pace_drain(arg);
}

/* Route a claimed job to its instance's FIFO, or fail it if the instance is not here. */
static void
dispatch_route(struct dispatch *d, struct dispatch_job *job)
{
	struct channel *ch = server_channel(d->srv, job->instance);

	if (ch == NULL || !ch->enabled || (job->pace = dispatch_pace_find(d, ch)) == NULL) {
		job->pace = NULL;
		dispatch_job_fail(job, CHANNEL_FAIL_PERMANENT, "no_instance",
		    "No enabled channel instance of this name is configured.", 0);
		return;
	}
	TAILQ_INSERT_TAIL(&job->pace->fifo, job, entry);
}

/*
 * After dispatch_destroy, an answer only frees its job (its lease brings the
 * message back); the last one frees the dispatcher. True if it did so.
 */
static int
dispatch_dying_drop(struct dispatch_job *job)
{
	struct dispatch *d = job->d;

	if (!d->dying)
		return 0;
	dispatch_job_free(job);
	dispatch_reap(d);
	return 1;
}

/* Upcall: the adapter's provider accepted a message. */
static void
dispatch_on_sent(struct channel *ch, long long id, const char *provider_id, void *arg)
{
	struct dispatch_pace *p = arg;
	struct dispatch_job *job = dispatch_answered(p, id);

	if (job == NULL) {
		log_warn("dispatch", "An adapter reported a send the dispatcher is not waiting for. "
		    "instance=%s id=%lld", ch->name, id);
		return;
	}
	if (dispatch_dying_drop(job))
		return;
	job->ok = 1;
	job->provider_id = xstrdup(provider_id != NULL ? provider_id : "");
	dispatch_record_push(job);
}

/* Upcall: a send failed; the database decides what follows. */
static void
dispatch_on_failed(struct channel *ch, long long id, enum channel_fail kind, const char *code, const char *text,
    int retry_after_s, void *arg)
{
	struct dispatch_pace *p = arg;
	struct dispatch_job *job = dispatch_answered(p, id);

	if (job == NULL) {
		log_warn("dispatch", "An adapter reported a failure the dispatcher is not waiting for. "
		    "instance=%s id=%lld", ch->name, id);
		return;
	}
	if (dispatch_dying_drop(job))
		return;
	log_debug("dispatch", "A send failed. id=%lld instance=%s kind=%s code=%s", id, ch->name,
	    channel_fail_name(kind), code != NULL ? code : "");
	dispatch_job_fail(job, kind, code, text, retry_after_s);
}

/* Free the dispatcher once it is destroyed and nothing refers to it any more. */
void
dispatch_reap(struct dispatch *d)
{
	if (!d->dying || d->pending_db > 0 || d->sending > 0)
		return;
	free(d->table);
	free(d->paces);
	free(d);
}

/*
 * True if a claimed message is one this process still sends, or whose
 * success it still records: its lease ran out while it waited for a token,
 * or while the database was away. Sending it again would send it twice; the
 * job in hand takes the new lease. A failure still being recorded is no such
 * case: its record may have committed (and requeued the message) before its
 * callback came, and a retry is what it asked for.
 */
static int
dispatch_claimed_twice(struct dispatch *d, const PGresult *res, int row, const struct dispatch_cols *c,
    uint64_t lease_end_ms)
{
	long long id = strtoll(PQgetvalue(res, row, c->id), NULL, 10);
	struct dispatch_job *job = NULL;

	while ((job = dispatch_hash_next(d, id, job)) != NULL) {
		if (job->ok || job->state == DISPATCH_JOB_PACING || job->state == DISPATCH_JOB_SENDING)
			break;
	}
	if (job == NULL)
		return 0;
	job->lease_end_ms = lease_end_ms;
	log_warn("dispatch", "Claimed a message this process still handles; it is not sent again. id=%lld "
	    "state=%s", id, dispatch_state_names[job->state]);
	return 1;
}

/* Make jobs of the claimed rows, route them, and start the sends the buckets allow. */
static int
dispatch_claim_take(struct dispatch *d, const PGresult *res)
{
	struct dispatch_cols cols;
	struct dispatch_job *job;
	uint64_t lease_end = d->claim_sent_ms + (uint64_t)d->lease_ms;
	int i, n = PQntuples(res);
	size_t k;

	if (n > 0 && dispatch_cols_find(res, &cols) != 0) {
		log_error("dispatch", "The claim's result lacks a column; its rows are left to their lease. rows=%d", n);
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (dispatch_claimed_twice(d, res, i, &cols, lease_end))
			continue;
		job = dispatch_job_new(d, res, i, &cols, lease_end);
		if (d->stopped)
			dispatch_job_fail(job, CHANNEL_FAIL_TEMPORARY, "stopping", "linbatd stopped before sending it.", 0);
		else
			dispatch_route(d, job);
	}
	for (k = 0; k < d->npaces; k++) {
		if (!TAILQ_EMPTY(&d->paces[k].fifo))
			dispatch_pace_drain(&d->paces[k]);
	}
	d->stats.claimed += (unsigned long long)n;
	if (n > 0)
		log_debug("dispatch", "Claimed outbound messages. count=%d limit=%d inflight=%d", n, d->claim_limit,
		    d->inflight);
	return n;
}

/* A claim came back: take its rows, and claim again at once if it was full. */
static void
dispatch_claimed_cb(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct dispatch *d = arg;

	d->claiming = 0;
	d->pending_db--;
	if (d->dying) {
		dispatch_reap(d);
		return;
	}
	if (error != NULL) {
		if (!d->claim_warned)
			log_warn("dispatch", "Could not claim outbound messages; trying again every second. "
			    "reason=\"%s\"", error);
		d->claim_warned = 1;
		return;
	}
	if (d->claim_warned) {
		log_info("dispatch", "Outbound messages are being claimed again.");
		d->claim_warned = 0;
	}
	if (dispatch_claim_take(d, res) >= d->claim_limit)
		d->want = 1;
	dispatch_maybe_claim(d);
}

/* Claim if a claim is wanted, none runs, and there is room for enough messages. */
static void
dispatch_maybe_claim(struct dispatch *d)
{
	int room = d->in_flight - d->inflight;
	char limit[16];
	const char *v[3];

	if (!d->started || d->stopped || d->dying || d->claiming || !d->want || room < d->low_water)
		return;
	d->want = 0;
	d->claiming = 1;
	d->claim_limit = room < d->batch ? room : d->batch;
	d->claim_sent_ms = util_mono_ms();
	snprintf(limit, sizeof limit, "%d", d->claim_limit);
	v[0] = d->srv->owner;
	v[1] = limit;
	v[2] = d->lease_s;
	d->pending_db++;
	db_exec(d->srv->db, &dispatch_stmt_claim, 3, v, dispatch_claimed_cb, d);
}

/* NOTIFY linbat_outbox (payload NULL: the listen connection is new, so look anyway). */
static void
dispatch_notified(const char *channel, const char *payload, void *arg)
{
	struct dispatch *d = arg;

	d->want = 1;
	dispatch_maybe_claim(d);
}

/* Sum up the last period at INFO, if anything happened in it. */
static void
dispatch_summary(struct dispatch *d)
{
	struct dispatch_stats *s = &d->stats, *r = &d->reported;
	uint64_t now = util_mono_ms();

	if (now - d->summary_ms < DISPATCH_SUMMARY_MS)
		return;
	if (s->claimed != r->claimed || s->sent != r->sent || s->failed != r->failed || s->retried != r->retried)
		log_info("dispatch", "Outbound messages dispatched. seconds=%llu claimed=%llu sent=%llu "
		    "retried=%llu failed=%llu fallbacks=%llu inflight=%d",
		    (unsigned long long)(now - d->summary_ms) / 1000, s->claimed - r->claimed, s->sent - r->sent,
		    s->retried - r->retried, s->failed - r->failed, s->fallbacks - r->fallbacks, d->inflight);
	*r = *s;
	d->summary_ms = now;
}

/* Every second: record stalled answers again, claim what came due, sum up now and then. */
static void
dispatch_tick(evutil_socket_t fd, short what, void *arg)
{
	struct dispatch *d = arg;

	dispatch_record_retry(d);
	dispatch_summary(d);
	d->want = 1;
	dispatch_maybe_claim(d);
}

/* Read the [dispatch] keys. */
static void
dispatch_configure(struct dispatch *d, const struct conf *conf)
{
	long long lease_s;

	d->batch = (int)conf_int(conf, "dispatch", "batch");
	d->in_flight = (int)conf_int(conf, "dispatch", "in_flight");
	d->max_attempts = (int)conf_int(conf, "dispatch", "max_attempts");
	d->lease_ms = conf_int(conf, "dispatch", "lease");
	d->backoff_ms = conf_int(conf, "dispatch", "backoff_base");
	lease_s = d->lease_ms / 1000 > 0 ? d->lease_ms / 1000 : 1;
	d->lease_ms = lease_s * 1000;
	snprintf(d->lease_s, sizeof d->lease_s, "%lld", lease_s);
	snprintf(d->max_attempts_s, sizeof d->max_attempts_s, "%d", d->max_attempts);
	snprintf(d->backoff_s, sizeof d->backoff_s, "%lld", d->backoff_ms);
	d->low_water = (d->batch < d->in_flight ? d->batch : d->in_flight) / 2;
	if (d->low_water < 1)
		d->low_water = 1;
}

/* One pace per channel instance; its adapter's upcalls come here from now on. */
static void
dispatch_paces_init(struct dispatch *d)
{
	struct dispatch_pace *p;
	size_t i;

	d->npaces = d->srv->nchannels;
	d->paces = xcalloc(d->npaces + 1, sizeof *d->paces);
	for (i = 0; i < d->npaces; i++) {
		p = &d->paces[i];
		p->d = d;
		p->ch = d->srv->channels[i];
		p->tokens = p->ch->rate > 1 ? (double)p->ch->rate : 1.0;
		p->refilled_us = util_mono_us();
		TAILQ_INIT(&p->fifo);
		p->timer = evtimer_new(d->srv->base, dispatch_pace_timer, p);
		p->ch->on_sent = dispatch_on_sent;
		p->ch->on_failed = dispatch_on_failed;
		p->ch->upcall_arg = p;
	}
}

struct dispatch *
dispatch_create(struct server *srv, char **cause)
{
	struct dispatch *d = xcalloc(1, sizeof *d);
	size_t buckets = 64;

	d->srv = srv;
	dispatch_configure(d, srv->conf);
	while (buckets < 2 * (size_t)d->in_flight)
		buckets *= 2;
	d->table = xcalloc(buckets, sizeof *d->table);
	d->mask = buckets - 1;
	TAILQ_INIT(&d->sentq);
	TAILQ_INIT(&d->failq);
	TAILQ_INIT(&d->stalled);
	dispatch_paces_init(d);
	d->tick = event_new(srv->base, -1, EV_PERSIST, dispatch_tick, d);
	d->summary_ms = util_mono_ms();
	return d;
}

void
dispatch_start(struct dispatch *d)
{
	struct timeval tv = { DISPATCH_TICK_MS / 1000, (DISPATCH_TICK_MS % 1000) * 1000 };

	d->started = 1;
	if (db_listen(d->srv->db, "linbat_outbox", dispatch_notified, d) != 0)
		log_fatal("dispatch", "Could not listen on linbat_outbox.");
	event_add(d->tick, &tv);
	log_info("dispatch", "Dispatching outbound messages. instances=%zu batch=%d in_flight=%d lease_s=%s "
	    "max_attempts=%d", d->npaces, d->batch, d->in_flight, d->lease_s, d->max_attempts);
	d->want = 1;
	dispatch_maybe_claim(d);
}

/*
 * Stop claiming. Messages still waiting for a token go back to the database
 * as a temporary failure (another process, or the next start, sends them);
 * sends under way finish and are recorded.
 */
void
dispatch_stop(struct dispatch *d)
{
	struct dispatch_job *job;
	size_t i;

	if (d == NULL || d->stopped)
		return;
	d->stopped = 1;
	for (i = 0; i < d->npaces; i++) {
		while ((job = TAILQ_FIRST(&d->paces[i].fifo)) != NULL) {
			TAILQ_REMOVE(&d->paces[i].fifo, job, entry);
			dispatch_job_fail(job, CHANNEL_FAIL_TEMPORARY, "stopping", "linbatd stopped before sending it.", 0);
		}
	}
	log_info("dispatch", "Stopped claiming outbound messages. inflight=%d", d->inflight);
}

/* Jobs not finished, and a claim under way counts as one: its rows are ours already. */
int
dispatch_inflight(struct dispatch *d)
{
	return d != NULL ? d->inflight + d->claiming : 0;
}

void
dispatch_get_stats(struct dispatch *d, struct dispatch_stats *st)
{
	*st = d->stats;
	st->inflight = d->inflight;
}

/* Free every job on a list. */
static void
dispatch_free_list(struct dispatch_jobs *q)
{
	struct dispatch_job *job;

	while ((job = TAILQ_FIRST(q)) != NULL) {
		TAILQ_REMOVE(q, job, entry);
		dispatch_job_free(job);
	}
}

/*
 * Free the dispatcher. Jobs that wait in a queue are dropped (their lease
 * brings them back). What the database or an adapter still holds (a claim, a
 * record round trip, a send) keeps the dispatcher alive until its callback
 * or upcall, which then only frees: so destroy it before the channels and the
 * database pool, whose teardown gives those answers.
 */
void
dispatch_destroy(struct dispatch *d)
{
	size_t i;

	if (d == NULL)
		return;
	d->dying = 1;
	event_free(d->tick);
	for (i = 0; i < d->npaces; i++) {
		event_free(d->paces[i].timer);
		dispatch_free_list(&d->paces[i].fifo);
	}
	dispatch_free_list(&d->sentq);
	dispatch_free_list(&d->failq);
	dispatch_free_list(&d->stalled);
	dispatch_reap(d);
}
