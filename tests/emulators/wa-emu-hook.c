/*
 * wa-emu-hook.c: the webhooks wa-emu posts to linbatd, signed with
 * X-Hub-Signature-256 over a worker's pool of keep-alive connections: the
 * statuses (sent, delivered, read) of each accepted send, one job per send,
 * and the inbound messages a test asks for with POST /_emu/inbound.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "wa-emu.h"

/* The webhook envelope around one change value (stolen). */
static json_t *
emu_envelope(json_t *value)
{
	return json_pack("{s:s, s:[{s:s, s:[{s:o, s:s}]}]}",
	    "object", "whatsapp_business_account", "entry", "id", emu.waba_id,
	    "changes", "value", value, "field", "messages");
}

/* A change value with metadata and one array under key (stolen). */
static json_t *
emu_value(const char *pnid, const char *key, json_t *items)
{
	json_t *v;

	v = json_pack("{s:s, s:{s:s, s:s}}", "messaging_product", "whatsapp",
	    "metadata", "display_phone_number", emu.display_phone,
	    "phone_number_id", pnid);
	json_object_set_new(v, key, items);
	return v;
}

/* Count a webhook answer: 2xx is posted, anything else failed. */
static int
emu_hook_count(struct evhttp_request *resp)
{
	int code = resp != NULL ? evhttp_request_get_response_code(resp) : 0;

	if (code >= 200 && code < 300)
		emu.hooks_posted++;
	else
		emu.hooks_failed++;
	return code;
}

/* POST a payload (borrowed) to the webhook, signed; cb gets the answer. */
static void
emu_hook_post(json_t *payload, void (*cb)(struct evhttp_request *, void *),
    void *arg)
{
	struct evhttp_connection *conn;
	struct evhttp_request *r;
	struct evkeyvalq *h;
	char sig[72], hex[65];
	char *body = emu_dumps(json_incref(payload));

	emu_hmac_hex(emu.app_secret, strlen(emu.app_secret), body, strlen(body),
	    hex);
	snprintf(sig, sizeof sig, "sha256=%s", hex);
	r = evhttp_request_new(cb, arg);
	h = evhttp_request_get_output_headers(r);
	evhttp_add_header(h, "Host", emu.hook_host);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "User-Agent", "facebookexternalua");
	evhttp_add_header(h, "X-Hub-Signature-256", sig);
	evbuffer_add(evhttp_request_get_output_buffer(r), body, strlen(body));
	free(body);
	conn = emu_self->hook_conns[emu_self->hook_next++ %
	    (unsigned)emu.hook_nconns];
	if (evhttp_make_request(conn, r, EVHTTP_REQ_POST, emu.hook_path) != 0) {
		/* libevent 2.1 leaves the request to us when it cannot connect. */
		evhttp_request_free(r);
		cb(NULL, arg);
	}
}

/* Free a status job and drop it from the list. */
void
emu_job_free(struct emu_job *job)
{
	TAILQ_REMOVE(&job->w->jobs, job, entry);
	job->w->njobs--;
	event_free(job->ev);
	free(job->wamid);
	free(job->wa_id);
	free(job->pnid);
	free(job->biz);
	free(job);
}

/* The conversation object of a status (sent and delivered, before v24.0). */
static json_t *
emu_job_conversation(const struct emu_job *job, const char *category)
{
	char hex[65], expiry[24];
	json_t *c;

	emu_hmac_hex(emu.key, sizeof emu.key, job->wa_id, strlen(job->wa_id), hex);
	hex[32] = '\0';
	c = json_pack("{s:s}", "id", hex);
	if (job->step == 0) {
		snprintf(expiry, sizeof expiry, "%lld",
		    (long long)job->accepted_at + 86400);
		json_object_set_new(c, "expiration_timestamp", json_string(expiry));
	}
	json_object_set_new(c, "origin", json_pack("{s:s}", "type", category));
	return c;
}

/* One entry of statuses[] for the job's current step. */
static json_t *
emu_job_status(const struct emu_job *job)
{
	static const char *names[] = { "sent", "delivered", "read" };
	const char *category = job->is_template ? "utility" : "service";
	char ts[24];
	json_t *st;

	snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
	st = json_pack("{s:s, s:s, s:s, s:s}", "id", job->wamid,
	    "status", names[job->step], "timestamp", ts,
	    "recipient_id", job->wa_id);
	if (job->biz != NULL)
		json_object_set_new(st, "biz_opaque_callback_data",
		    json_string(job->biz));
	if (job->step < 2 && job->legacy)
		json_object_set_new(st, "conversation",
		    emu_job_conversation(job, category));
	if (job->step < 2)
		json_object_set_new(st, "pricing", json_pack(
		    "{s:b, s:s, s:s, s:s}", "billable", job->is_template,
		    "pricing_model", "PMP", "type", job->is_template ? "regular" :
		    "free_customer_service", "category", category));
	return st;
}

/* After a status webhook: schedule the next status or end the job. */
static void
emu_job_posted(struct evhttp_request *resp, void *arg)
{
	struct emu_job *job = arg;
	struct timeval tv = emu_tv(emu.status_delay_ms);

	if (emu.stopping)
		return;
	emu_lock();
	emu_hook_count(resp);
	if (++job->step == 3)
		emu_job_free(job);
	else
		evtimer_add(job->ev, &tv);
	emu_unlock();
}

/* Post the status webhook of the job's current step. */
static void
emu_job_fire(EMU_UNUSED evutil_socket_t fd, EMU_UNUSED short what, void *arg)
{
	struct emu_job *job = arg;
	json_t *payload;

	emu_lock();
	payload = emu_envelope(emu_value(job->pnid, "statuses",
	    json_pack("[o]", emu_job_status(job))));
	emu_hook_post(payload, emu_job_posted, job);
	json_decref(payload);
	emu_unlock();
}

/* A status job for an accepted send, or NULL when webhooks are off. */
struct emu_job *
emu_job_new(const struct emu_send *s, const char *wamid)
{
	struct emu_job *job;

	if (emu.hook_nconns == 0 || emu.status_delay_ms < 0)
		return NULL;
	job = emu_calloc(1, sizeof *job);
	job->w = emu_self;
	job->ev = evtimer_new(emu_self->base, emu_job_fire, job);
	job->is_template = s->is_template;
	job->legacy = emu_version_major(s->version) < 24;
	job->accepted_at = time(NULL);
	job->wamid = emu_strdup(wamid);
	job->wa_id = emu_strdup(s->wa_id);
	job->pnid = emu_strdup(s->pnid);
	job->biz = emu_strdup(s->biz);
	TAILQ_INSERT_TAIL(&emu_self->jobs, job, entry);
	emu_self->njobs++;
	return job;
}

/* Start a job's first status after status-delay-ms. */
void
emu_job_start(struct emu_job *job)
{
	struct timeval tv = emu_tv(emu.status_delay_ms);

	if (job != NULL)
		evtimer_add(job->ev, &tv);
}

/* The "type" and object of an inbound media message for a registered id. */
static json_t *
emu_inbound_media(json_t *msg, struct emu_media *m, json_t *in)
{
	const char *type = "document";
	json_t *o, *v;

	if (strncmp(m->mime, "image/", 6) == 0)
		type = "image";
	else if (strncmp(m->mime, "video/", 6) == 0)
		type = "video";
	else if (strncmp(m->mime, "audio/", 6) == 0)
		type = "audio";
	o = json_pack("{s:s, s:s, s:s}", "mime_type", m->mime, "sha256",
	    m->sha256, "id", m->id);
	if ((v = json_object_get(in, "caption")) != NULL &&
	    strcmp(type, "audio") != 0)
		json_object_set(o, "caption", v);
	if ((v = json_object_get(in, "filename")) != NULL &&
	    strcmp(type, "document") == 0)
		json_object_set(o, "filename", v);
	/* A voice note is OGG/Opus audio, and Meta says so. */
	if (strcmp(type, "audio") == 0)
		json_object_set_new(o, "voice",
		    json_boolean(strstr(m->mime, "opus") != NULL));
	json_object_set_new(msg, "type", json_string(type));
	json_object_set_new(msg, type, o);
	return msg;
}

/* The messages[] entry of POST /_emu/inbound, or NULL with a reason. */
static json_t *
emu_inbound_message(json_t *in, const char *id, const char **why)
{
	const char *from = json_string_value(json_object_get(in, "from"));
	const char *text = json_string_value(json_object_get(in, "text"));
	json_t *mid = json_object_get(in, "media_id");
	struct emu_media *m = NULL;
	char ts[24];
	json_t *msg;

	*why = "from (digits) and text or a registered media_id are required";
	if (from == NULL || (text == NULL && mid == NULL))
		return NULL;
	if (mid != NULL && (!json_is_string(mid) ||
	    (m = emu_media_find(json_string_value(mid))) == NULL))
		return NULL;
	snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
	msg = json_pack("{s:s, s:s, s:s}", "from", from, "id", id,
	    "timestamp", ts);
	if (m != NULL)
		return emu_inbound_media(msg, m, in);
	json_object_set_new(msg, "type", json_string("text"));
	json_object_set_new(msg, "text", json_pack("{s:s}", "body", text));
	return msg;
}

/* After linbatd answered an inbound webhook, answer the caller in kind. */
static void
emu_inbound_done(struct evhttp_request *resp, void *arg)
{
	struct emu_held *h = arg;
	int code;
	char *body;

	if (emu.stopping)
		return;
	emu_lock();
	code = emu_hook_count(resp);
	body = emu_dumps(json_pack("{s:s, s:i}", "id", h->body,
	    "webhook_status", code));
	emu_reply(h->req, code != 0 ? code : 502, body, 0);
	free(body);
	emu_held_free(h);
	emu_unlock();
}

/* Build the inbound webhook for an /_emu/inbound request, or NULL. */
static json_t *
emu_inbound_payload(json_t *in, char *id, size_t idlen, const char **why)
{
	static const char *keys[] = { "from", "name", "text", "id",
	    "phone_number_id", "media_id", "caption", "filename" };
	const char *from = json_string_value(json_object_get(in, "from"));
	const char *name = json_string_value(json_object_get(in, "name"));
	const char *pnid = json_string_value(json_object_get(in,
	    "phone_number_id"));
	json_t *msg, *v;
	char wa_id[24];

	*why = "unknown key: use from, name, text, id, phone_number_id, "
	    "media_id, caption, filename";
	if (emu_json_unknown_key(in, keys, sizeof keys / sizeof keys[0]) != NULL)
		return NULL;
	*why = "from must be a phone number";
	if (from == NULL || emu_wa_id(from, wa_id, sizeof wa_id) != 0)
		return NULL;
	if ((v = json_object_get(in, "id")) != NULL && json_is_string(v))
		snprintf(id, idlen, "%s", json_string_value(v));
	else
		emu_wamid(wa_id, id, idlen);
	if ((msg = emu_inbound_message(in, id, why)) == NULL)
		return NULL;
	v = emu_value(pnid != NULL ? pnid : emu.phone_number_id, "contacts",
	    json_pack("[{s:{s:s}, s:s}]", "profile", "name",
	    name != NULL ? name : "", "wa_id", wa_id));
	json_object_set_new(v, "messages", json_pack("[o]", msg));
	return emu_envelope(v);
}

/* POST /_emu/inbound: post a signed inbound message webhook to linbatd. */
void
emu_inbound(struct evhttp_request *req, EMU_UNUSED char **seg)
{
	json_t *in = emu_body_json(req), *payload = NULL;
	const char *why = "no --webhook is configured";
	struct emu_held *h;
	char id[128];

	if (emu.hook_nconns > 0 && json_is_object(in))
		payload = emu_inbound_payload(in, id, sizeof id, &why);
	else if (emu.hook_nconns > 0)
		why = "the body must be a JSON object";
	if (payload == NULL) {
		emu_reply_control_error(req, emu.hook_nconns > 0 ? 400 : 409, why);
		json_decref(in);
		return;
	}
	h = emu_held_new(req, emu_strdup(id), -1);
	emu_hook_post(payload, emu_inbound_done, h);
	json_decref(payload);
	json_decref(in);
}
