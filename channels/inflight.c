/*
 * inflight.c: the work in flight of an adapter instance (see inflight.h):
 * its list of ops, the stop that waits for it or lets go of it, the sends'
 * transfer errors, and the claim side of media fetching.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "curlev.h"
#include "inflight.h"
#include "log.h"
#include "util.h"

void
inflight_init(struct inflight *set, struct channel *ch, const char *tag, const char *title, const char *peer,
    inflight_answer_fn answer, inflight_fetch_fn fetch)
{
	set->ch = ch;
	set->tag = tag;
	set->title = title;
	set->peer = peer;
	set->answer = answer;
	set->fetch = fetch;
	TAILQ_INIT(&set->ops);
}

struct inflight_op *
inflight_op_new(struct inflight *set, enum inflight_kind kind)
{
	struct inflight_op *op = xcalloc(1, sizeof *op);

	op->set = set;
	op->kind = kind;
	TAILQ_INSERT_TAIL(&set->ops, op, entry);
	return op;
}

/* Whether a media claim or fetch is in flight. */
static int
inflight_media_busy(struct inflight *set)
{
	struct inflight_op *op;

	TAILQ_FOREACH(op, &set->ops, entry) {
		if (op->kind != INFLIGHT_SEND)
			return 1;
	}
	return 0;
}

/* Tell the core the instance stopped, once, when nothing is in flight. */
static void
inflight_check_stopped(struct inflight *set)
{
	if (!set->stopping || set->stopped || !TAILQ_EMPTY(&set->ops))
		return;
	set->stopped = 1;
	log_info(set->tag, "%s channel stopped. channel=%s", set->title, set->ch->name);
	channel_stopped(set->ch);
}

void
inflight_op_done(struct inflight_op *op)
{
	struct inflight *set = op->set;

	if (set != NULL)
		TAILQ_REMOVE(&set->ops, op, entry);
	free(op->media_id);
	free(op->mime_type);
	free(op->error);
	free(op);
	if (set == NULL)
		return;
	if (set->media_again && !inflight_media_busy(set))
		inflight_media_kick(set);
	inflight_check_stopped(set);
}

/*
 * Let go of ops in flight: media work always, sends too when sends is set;
 * with upcall, those sends are failed as temporary first.
 */
static void
inflight_detach(struct inflight *set, int sends, int upcall)
{
	struct inflight_op *op, *next;
	char text[160];

	snprintf(text, sizeof text, "The %s channel stopped before %s answered.", set->title, set->peer);
	for (op = TAILQ_FIRST(&set->ops); op != NULL; op = next) {
		next = TAILQ_NEXT(op, entry);
		if (op->kind == INFLIGHT_SEND && !sends)
			continue;
		TAILQ_REMOVE(&set->ops, op, entry);
		op->set = NULL;
		if (upcall && op->kind == INFLIGHT_SEND)
			channel_failed(set->ch, op->msg, CHANNEL_FAIL_TEMPORARY, "stopped", text, 0);
	}
}

/* The linbat_media listener: media of this instance was committed. */
static void
inflight_media_wake(void *arg)
{
	inflight_media_kick(arg);
}

/* The sweep timer: retries whose backoff ran out, and lost leases. */
static void
inflight_media_tick(evutil_socket_t fd, short what, void *arg)
{
	inflight_media_kick(arg);
}

/* Stop claiming and sweeping; inflight_detach lets go of the fetches in flight. */
static void
inflight_media_stop(struct inflight *set)
{
	media_waker_remove(&set->waker);
	if (set->media_timer != NULL) {
		event_free(set->media_timer);
		set->media_timer = NULL;
	}
}

void
inflight_start(struct inflight *set)
{
	struct timeval tv = { MEDIA_SWEEP_S, 0 };

	set->stopping = set->stopped = 0;
	if (set->fetch == NULL)
		return;
	set->waker.instance = set->ch->name;
	set->waker.kick = inflight_media_wake;
	set->waker.arg = set;
	media_waker_add(set->ch->env->db, &set->waker);
	if (set->media_timer == NULL)
		set->media_timer = event_new(set->ch->env->base, -1, EV_PERSIST, inflight_media_tick, set);
	event_add(set->media_timer, &tv);
	inflight_media_kick(set);
}

void
inflight_stop(struct inflight *set, int drain)
{
	set->stopping = 1;
	inflight_media_stop(set);
	inflight_detach(set, !drain, 1);
	inflight_check_stopped(set);
}

void
inflight_destroy(struct inflight *set)
{
	inflight_media_stop(set);
	inflight_detach(set, 1, 0);
}

int
inflight_refuse(struct inflight *set, const struct channel_msg *msg)
{
	char text[80];

	if (!set->stopping)
		return 0;
	snprintf(text, sizeof text, "The %s channel is stopping.", set->title);
	channel_failed(set->ch, msg, CHANNEL_FAIL_TEMPORARY, "stopping", text, 0);
	return 1;
}

/* curlev callback of a send. */
static void
inflight_send_done(CURL *easy, CURLcode rc, long status, const char *body, size_t len, void *arg)
{
	struct inflight_op *op = arg;
	struct inflight *set = op->set;
	char code[32];

	if (set != NULL) {
		if (rc != CURLE_OK) {
			snprintf(code, sizeof code, "curl-%d", (int)rc);
			log_info(set->tag, "A message could not reach %s. channel=%s id=%lld error=\"%s\"",
			    set->peer, set->ch->name, op->msg->id, curl_easy_strerror(rc));
			channel_failed(set->ch, op->msg, CHANNEL_FAIL_TEMPORARY, code, curl_easy_strerror(rc), 0);
		} else
			set->answer(set->ch, op->msg, easy, status, body, len);
	}
	inflight_op_done(op);
}

void
inflight_send(struct inflight *set, const struct channel_msg *msg, CURL *easy, struct curl_slist *headers,
    size_t max_body)
{
	struct inflight_op *op = inflight_op_new(set, INFLIGHT_SEND);

	op->msg = msg;
	curlev_start(set->ch->env->curl, easy, headers, max_body, inflight_send_done, op);
}

/* The record of a fetch came back: log what became of it. */
static void
inflight_media_recorded(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct inflight_op *op = arg;
	struct inflight *set = op->set;
	const char *mid = op->media_id != NULL ? " media_id=" : "", *midv = op->media_id != NULL ? op->media_id : "";
	const char *state;

	if (set == NULL)
		;
	else if (error != NULL)
		log_warn(set->tag, "A media fetch could not be recorded; it is tried again later. "
		    "channel=%s attachment=%lld reason=\"%s\"", set->ch->name, op->attachment_id, error);
	else if (op->error != NULL) {
		state = PQgetvalue(res, 0, 0);
		log_warn(set->tag, "A media fetch failed. channel=%s attachment=%lld%s%s status=%s reason=\"%s\"",
		    set->ch->name, op->attachment_id, mid, midv, state[0] != '\0' ? state : "-", op->error);
	} else
		log_info(set->tag, "Media stored. channel=%s attachment=%lld%s%s bytes=%zu mime_type=\"%s\"",
		    set->ch->name, op->attachment_id, mid, midv, op->size, op->mime_type);
	inflight_op_done(op);
}

void
inflight_media_store(struct inflight_op *op, const char *body, size_t len)
{
	op->size = len;
	media_store(op->set->ch->env->db, op->attachment_id, op->mime_type, body, len, inflight_media_recorded, op);
}

void
inflight_media_fail(struct inflight_op *op, int temporary, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	xvasprintf(&op->error, fmt, ap);
	va_end(ap);
	media_fail(op->set->ch->env->db, op->attachment_id, op->error, temporary, inflight_media_recorded, op);
}

/* The claim came back: a MEDIA op per row for fetch; a full batch means more may wait. */
static void
inflight_media_claimed(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct inflight_op *claim = arg, *op;
	struct inflight *set = claim->set;
	int i, n;

	if (set == NULL || set->stopping) {
		inflight_op_done(claim);
		return;
	}
	if (error != NULL) {
		log_warn(set->tag, "Media to fetch could not be claimed. channel=%s reason=\"%s\"", set->ch->name,
		    error);
		inflight_op_done(claim);
		return;
	}
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		op = inflight_op_new(set, INFLIGHT_MEDIA);
		op->attachment_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		op->mime_type = xstrdup(PQgetvalue(res, i, 2));
		set->fetch(op, PQgetvalue(res, i, 1));
	}
	if (n >= MEDIA_CLAIM_N)
		set->media_again = 1;
	inflight_op_done(claim);
}

void
inflight_media_kick(struct inflight *set)
{
	if (set->stopping || set->fetch == NULL)
		return;
	if (inflight_media_busy(set)) {
		set->media_again = 1;
		return;
	}
	set->media_again = 0;
	media_claim(set->ch->env->db, set->ch->name, inflight_media_claimed, inflight_op_new(set, INFLIGHT_CLAIM));
}
