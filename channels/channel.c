/*
 * channel.c: the core side of the adapter contract. It holds the table of
 * adapters, makes instances from their config sections, routes the upcalls
 * to whoever the core set, and stores what webhooks carry (channel_batch_*)
 * so that every adapter answers its provider only after the commit.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "db.h"
#include "log.h"
#include "statuses.h"
#include "util.h"

/* The adapters; each lives in its own file of channels/. */
extern const struct channel_type channel_whatsapp;
extern const struct channel_type channel_test;
extern const struct channel_type channel_email;
extern const struct channel_type channel_sms_kannel, channel_sms_twilio;

static const struct channel_type *const channel_table[] = {
	&channel_whatsapp,
	&channel_test,
	&channel_sms_kannel,
	&channel_sms_twilio,
	&channel_email,
};

static const char *const channel_fail_names[] = {
	[CHANNEL_FAIL_TEMPORARY] = "temporary",
	[CHANNEL_FAIL_PERMANENT] = "permanent",
	[CHANNEL_FAIL_WINDOW_CLOSED] = "window_closed",
	[CHANNEL_FAIL_RATE_LIMITED] = "rate_limited",
};

static const char *const channel_state_names[] = {
	[CHANNEL_CREATED] = "created",
	[CHANNEL_RUNNING] = "running",
	[CHANNEL_DRAINING] = "draining",
	[CHANNEL_STOPPED] = "stopped",
};

static const struct db_stmt channel_stmt_ingest = {
	"channel_ingest",
	"select message_id, conversation_id, investor_id, duplicate, events from linbat.ingest_inbound_deferred("
	"$1, $2, $3, $4, $5, $6, $7::jsonb, to_timestamp($8::float8), $9)",
};
static const struct db_stmt channel_stmt_status = {
	"channel_status",
	"select linbat.status_update($1, $2, $3, to_timestamp($4::float8), $5, $6)",
};

const struct channel_type *const *
channel_types(size_t *n)
{
	*n = nitems(channel_table);
	return channel_table;
}

const struct channel_type *
channel_type_find(const char *name)
{
	size_t i;

	for (i = 0; i < nitems(channel_table); i++) {
		if (strcmp(channel_table[i]->name, name) == 0)
			return channel_table[i];
	}
	return NULL;
}

const struct conf_key *
channel_schema(const char *type, size_t *nkeys)
{
	const struct channel_type *t = channel_type_find(type);

	*nkeys = t != NULL ? t->nkeys : 0;
	return t != NULL ? t->keys : NULL;
}

int
channel_fail_parse(const char *s)
{
	size_t i;

	for (i = 0; i < nitems(channel_fail_names); i++) {
		if (strcmp(s, channel_fail_names[i]) == 0)
			return (int)i;
	}
	return -1;
}

const char *
channel_fail_name(enum channel_fail f)
{
	return channel_fail_names[f];
}

void
channel_set_state(struct channel *ch, enum channel_state state)
{
	if (ch->state == state)
		return;
	log_info("channel", "Channel instance changed state. instance=%s type=%s from=%s to=%s", ch->name,
	    ch->type->name, channel_state_names[ch->state], channel_state_names[state]);
	ch->state = state;
}

struct channel *
channel_create(const struct conf_section *sec, const struct channel_env *env, char **cause)
{
	const struct channel_type *type = channel_type_find(conf_channel_type(sec));
	struct channel *ch;

	if (type == NULL) {
		xasprintf(cause, "Unknown channel type \"%s\".", conf_channel_type(sec));
		return NULL;
	}
	ch = xcalloc(1, sizeof *ch);
	ch->type = type;
	ch->name = xstrdup(conf_channel_name(sec));
	ch->env = env;
	ch->state = CHANNEL_CREATED;
	ch->rate = conf_channel_int(sec, "rate");
	ch->enabled = (int)conf_channel_int(sec, "enabled");
	if (type->create(ch, sec, cause) != 0) {
		free(ch->name);
		free(ch);
		return NULL;
	}
	return ch;
}

int
channel_start(struct channel *ch, char **cause)
{
	if (ch->type->start != NULL && ch->type->start(ch, cause) != 0)
		return -1;
	channel_set_state(ch, CHANNEL_RUNNING);
	return 0;
}

void
channel_stop(struct channel *ch, int drain)
{
	if (ch->state != CHANNEL_RUNNING)
		return;
	channel_set_state(ch, CHANNEL_DRAINING);
	if (ch->type->stop != NULL)
		ch->type->stop(ch, drain);
	else
		channel_stopped(ch);
}

void
channel_destroy(struct channel *ch)
{
	if (ch == NULL)
		return;
	if (ch->type->destroy != NULL)
		ch->type->destroy(ch);
	free(ch->name);
	free(ch);
}

void
channel_sent(struct channel *ch, const struct channel_msg *msg, const char *provider_id)
{
	if (ch->on_sent != NULL)
		ch->on_sent(ch, msg->id, provider_id, ch->upcall_arg);
}

void
channel_failed(struct channel *ch, const struct channel_msg *msg, enum channel_fail kind, const char *code,
    const char *text, int retry_after_s)
{
	if (ch->on_failed != NULL)
		ch->on_failed(ch, msg->id, kind, code, text, retry_after_s, ch->upcall_arg);
}

void
channel_stopped(struct channel *ch)
{
	channel_set_state(ch, CHANNEL_STOPPED);
	if (ch->on_stopped != NULL)
		ch->on_stopped(ch, ch->upcall_arg);
}

/* A webhook's database work in progress. */
struct channel_batch {
	struct channel *ch;
	struct http_req *hr;
	int pending;
	int ended;
	int failed;
	int stored, duplicates, statuses, rejected;
	char *reply_type;
	char *reply_body;
};

struct channel_batch *
channel_batch_new(struct channel *ch, struct http_req *hr)
{
	struct channel_batch *b = xcalloc(1, sizeof *b);

	b->ch = ch;
	b->hr = hr;
	return b;
}

void
channel_batch_set_reply(struct channel_batch *b, const char *content_type, const char *body)
{
	free(b->reply_type);
	free(b->reply_body);
	b->reply_type = xstrdup(content_type);
	b->reply_body = xstrdup(body);
}

/* Answer once everything is in and done, then free the batch. */
static void
channel_batch_finish(struct channel_batch *b)
{
	if (!b->ended || b->pending > 0)
		return;
	if (b->failed)
		http_reply_error(b->hr, HTTP_ERR_UNAVAILABLE, "Not stored; deliver this webhook again.");
	else if (b->reply_body != NULL)
		http_reply(b->hr, 200, b->reply_type, b->reply_body, strlen(b->reply_body));
	else
		http_reply_json(b->hr, 200, json_pack("{s:s,s:i,s:i,s:i}", "status", "ok", "stored", b->stored,
		    "duplicates", b->duplicates, "statuses", b->statuses));
	log_debug("channel", "Webhook stored. instance=%s stored=%d duplicates=%d statuses=%d rejected=%d",
	    b->ch->name, b->stored, b->duplicates, b->statuses, b->rejected);
	free(b->reply_type);
	free(b->reply_body);
	free(b);
}

/*
 * Count one finished query. Data errors (SQLSTATE classes 22 and 23) are the
 * provider's bad input: delivering it again cannot help, so it is logged and
 * not retried. Anything else (the database is down) makes the answer a 503.
 */
static int
channel_batch_done(struct channel_batch *b, const char *error, const char *sqlstate)
{
	int ok = error == NULL;

	b->pending--;
	if (!ok && (strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0)) {
		log_warn("channel", "Rejected what a webhook carried. instance=%s reason=\"%s\"", b->ch->name, error);
		b->rejected++;
	} else if (!ok) {
		log_warn("channel", "Could not store what a webhook carried; asking the provider to retry. "
		    "instance=%s reason=\"%s\"", b->ch->name, error);
		b->failed = 1;
	}
	return ok;
}

/*
 * linbat.ingest_inbound_deferred came back, committed. Its events (the
 * message, an assignment, an acknowledgement queued) were kept out of the
 * transaction, so that ingests do not commit one at a time behind
 * PostgreSQL's NOTIFY lock: they go out now, batched with the others of this
 * pass of the loop. Should linbatd die before they do, only those live
 * updates are lost, never the message.
 */
static void
channel_batch_ingested(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct channel_batch *b = arg;

	if (channel_batch_done(b, error, sqlstate)) {
		if (PQntuples(res) > 0 && strcmp(PQgetvalue(res, 0, 3), "t") == 0)
			b->duplicates++;
		else
			b->stored++;
		if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 4))
			db_notify_later(b->ch->env->db, PQgetvalue(res, 0, 4));
	}
	channel_batch_finish(b);
}

/* A status function came back. */
static void
channel_batch_status_done(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct channel_batch *b = arg;

	if (channel_batch_done(b, error, sqlstate))
		b->statuses++;
	channel_batch_finish(b);
}

/* Seconds since the epoch as a parameter, or NULL for "now". */
static const char *
channel_epoch(long long ts, char *buf, size_t len)
{
	if (ts <= 0)
		return NULL;
	snprintf(buf, len, "%lld", ts);
	return buf;
}

void
channel_batch_message(struct channel_batch *b, const struct channel_inbound *in)
{
	char ts[32], *meta = in->meta != NULL ? json_dumps(in->meta, JSON_COMPACT) : NULL;
	const char *params[9] = {
		b->ch->name, b->ch->type->kind, in->address, in->provider_id, in->body != NULL ? in->body : "",
		in->content_type != NULL ? in->content_type : "text", meta != NULL ? meta : "{}",
		channel_epoch(in->timestamp, ts, sizeof ts), in->profile_name,
	};

	b->pending++;
	db_exec(b->ch->env->db, &channel_stmt_ingest, 9, params, channel_batch_ingested, b);
	free(meta);
}

void
channel_batch_status(struct channel_batch *b, const char *provider_id, const char *status, long long timestamp,
    const char *error_code, const char *error_text)
{
	char ts[32];
	const char *params[6] = { b->ch->name, provider_id, status, channel_epoch(timestamp, ts, sizeof ts),
		error_code, error_text };

	b->pending++;
	db_exec(b->ch->env->db, &channel_stmt_status, 6, params, channel_batch_status_done, b);
}

void
channel_batch_status_by_id(struct channel_batch *b, long long id, const char *status, long long timestamp,
    const char *error_code, const char *error_text)
{
	char ts[32];

	b->pending++;
	statuses_by_id(b->ch->env->db, id, status, channel_epoch(timestamp, ts, sizeof ts), error_code, error_text,
	    channel_batch_status_done, b);
}

void
channel_batch_end(struct channel_batch *b)
{
	b->ended = 1;
	channel_batch_finish(b);
}
