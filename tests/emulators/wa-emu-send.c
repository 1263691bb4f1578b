/*
 * wa-emu-send.c: the send endpoint, POST /{version}/{phone_number_id}/
 * messages. A send is checked as Cloud API checks it, may meet an injected
 * fault (an error, a reset, a delay or a timeout), and once accepted is
 * recorded, answered with a wamid and followed by its status webhooks.
 * Also here: the record file of accepted sends, the counts of failed ones,
 * and requests answered later (a delayed reply, an inbound in flight).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "wa-emu.h"

/* Count one failed send under its error code. */
static void
emu_count_code(int code)
{
	size_t i;

	emu.failed++;
	for (i = 0; i < emu.ncodes; i++) {
		if (emu.codes[i].code == code) {
			emu.codes[i].n++;
			return;
		}
	}
	if (emu.ncodes < EMU_MAX_CODES) {
		emu.codes[emu.ncodes].code = code;
		emu.codes[emu.ncodes++].n = 1;
	}
}

/* Record an accepted send as one JSON line (flushed by the timer). */
static void
emu_record(const struct emu_send *s, const char *wamid)
{
	json_t *r;

	if (emu.record == NULL)
		return;
	r = json_pack("{s:s, s:s, s:s, s:s, s:s}", "wamid", wamid,
	    "phone_number_id", s->pnid, "to", s->to, "wa_id", s->wa_id,
	    "type", s->type);
	if (r == NULL)
		return;
	if (strcmp(s->type, "text") == 0)
		json_object_set(r, "body", json_object_get(s->content, "body"));
	else
		json_object_set(r, s->type, s->content);
	json_object_set_new(r, "biz_opaque_callback_data",
	    s->biz != NULL ? json_string(s->biz) : json_null());
	json_object_set_new(r, "received_at_ms", json_integer(emu_now_ms()));
	json_object_set_new(r, "auth", json_string("ok"));
	json_dumpf(r, emu.record, JSON_COMPACT);
	fputc('\n', emu.record);
	emu.record_dirty = 1;
	json_decref(r);
}

/* Flush the record file every EMU_FLUSH_MS if it has new lines. */
void
emu_record_flush(EMU_UNUSED evutil_socket_t fd, EMU_UNUSED short what,
    EMU_UNUSED void *arg)
{
	emu_lock();
	if (emu.record != NULL && emu.record_dirty) {
		fflush(emu.record);
		emu.record_dirty = 0;
	}
	emu_unlock();
}

/* Empty the record file. */
void
emu_record_truncate(void)
{
	if (emu.record == NULL)
		return;
	fflush(emu.record);
	if (ftruncate(fileno(emu.record), 0) != 0)
		emu_log("Could not truncate the record file: %s.", strerror(errno));
	rewind(emu.record);
	emu.record_dirty = 0;
}

/* Free a held request's state (never the request: libevent owns it). */
void
emu_held_free(struct emu_held *h)
{
	TAILQ_REMOVE(&h->w->held, h, entry);
	if (h->ev != NULL)
		event_free(h->ev);
	free(h->body);
	free(h);
}

/* Answer a delayed send once its delay has passed. */
static void
emu_held_fire(EMU_UNUSED evutil_socket_t fd, EMU_UNUSED short what, void *arg)
{
	struct emu_held *h = arg;

	emu_lock();
	emu_reply(h->req, h->status, h->body, h->retry_after);
	emu_job_start(h->job);
	emu_held_free(h);
	emu_unlock();
}

/* A held request (in the held list) with an optional delay timer. */
struct emu_held *
emu_held_new(struct evhttp_request *req, char *body, int delay_ms)
{
	struct emu_held *h = emu_calloc(1, sizeof *h);
	struct timeval tv = emu_tv(delay_ms);

	h->w = emu_self;
	h->req = req;
	h->body = body;
	TAILQ_INSERT_TAIL(&emu_self->held, h, entry);
	if (delay_ms >= 0) {
		h->ev = evtimer_new(emu_self->base, emu_held_fire, h);
		evtimer_add(h->ev, &tv);
	}
	return h;
}

/* Answer a send now, or after delay_ms; body is taken. */
static void
emu_answer_after(struct evhttp_request *req, int status, char *body,
    int retry_after, struct emu_job *job, int delay_ms)
{
	struct emu_held *h;

	if (delay_ms <= 0) {
		emu_reply(req, status, body, retry_after);
		free(body);
		emu_job_start(job);
		return;
	}
	h = emu_held_new(req, body, delay_ms);
	h->status = status;
	h->retry_after = retry_after;
	h->job = job;
}

/* Answer a send now, or after the faults' delay_ms; body is taken. */
static void
emu_answer(struct evhttp_request *req, int status, char *body,
    int retry_after, struct emu_job *job)
{
	emu_answer_after(req, status, body, retry_after, job, emu.faults.delay_ms);
}

/*
 * Reset the connection of a send without answering: SO_LINGER 0 makes the
 * close send an RST. libevent frees the request with its connection; the
 * request callback returns straight after, touching neither.
 */
static void
emu_send_reset(struct evhttp_request *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
	struct linger lg = { 1, 0 };
	evutil_socket_t fd = bev != NULL ? bufferevent_getfd(bev) : -1;

	emu.failed++;
	emu.resets++;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	evhttp_connection_free(conn);
}

/* Fail a send with a Graph API error, counted under its code. */
static void
emu_send_fail(struct evhttp_request *req, const struct emu_error *e)
{
	int retry_after = e->code == 130429 ? emu.faults.retry_after : 0;

	emu_count_code(e->code);
	emu_answer(req, e->http, emu_error_body(e), retry_after, NULL);
}

/* Copy the digits of a phone number (wa_id drops "+", spaces, dashes). */
int
emu_wa_id(const char *to, char *out, size_t outlen)
{
	size_t n = 0;

	for (; *to != '\0'; to++) {
		if (*to >= '0' && *to <= '9') {
			if (n + 1 >= outlen)
				return -1;
			out[n++] = *to;
		} else if (strchr("+ -()", *to) == NULL)
			return -1;
	}
	out[n] = '\0';
	return n >= 5 ? 0 : -1;
}

/* The number of characters (code points) of a UTF-8 string. */
static size_t
emu_utf8_len(const char *p)
{
	size_t n = 0;

	for (; *p != '\0'; p++)
		n += ((unsigned char)*p & 0xc0) != 0x80;
	return n;
}

/* Check the object of a send's type; the error names what is missing. */
static const struct emu_error *
emu_send_check_content(const char *type, json_t *c)
{
	json_t *lang, *v;

	if (!json_is_object(c))
		return emu_error_fmt(100, 0, NULL, "(#100) The parameter %s is required.",
		    type);
	if (strcmp(type, "text") == 0) {
		v = json_object_get(c, "body");
		if (!json_is_string(v) || json_string_length(v) == 0)
			return emu_error_fmt(100, 0, NULL, "(#100) The parameter "
			    "text['body'] is required.");
		if (emu_utf8_len(json_string_value(v)) > EMU_BODY_MAX_CHARS)
			return emu_error_fmt(100, 0, NULL, "(#100) Param text['body'] "
			    "must be at most 4096 characters long.");
		return NULL;
	}
	if (strcmp(type, "template") == 0) {
		if (!json_is_string(json_object_get(c, "name")))
			return emu_error_fmt(100, 0, NULL, "(#100) The parameter "
			    "template['name'] is required.");
		lang = json_object_get(c, "language");
		if (!json_is_string(json_object_get(lang, "code")))
			return emu_error_fmt(100, 0, NULL, "(#100) The parameter "
			    "template['language']['code'] is required.");
		return NULL;
	}
	if (json_object_get(c, "id") == NULL && json_object_get(c, "link") == NULL)
		return emu_error_fmt(100, 0, NULL, "(#100) The parameter %s['id'] or "
		    "%s['link'] is required.", type, type);
	return NULL;
}

/* Whether the send type is one Cloud API documents for this endpoint. */
static int
emu_send_type_known(const char *type)
{
	static const char *types[] = { "text", "template", "image", "document",
	    "audio", "video", "sticker", "location", "contacts", "interactive",
	    "reaction" };
	size_t i;

	for (i = 0; i < sizeof types / sizeof types[0]; i++) {
		if (strcmp(type, types[i]) == 0)
			return 1;
	}
	return 0;
}

/* Validate a send body as Cloud API does; NULL when it is acceptable. */
static const struct emu_error *
emu_send_parse(json_t *msg, struct emu_send *s)
{
	json_t *v;

	if (!json_is_object(msg))
		return emu_error_fmt(100, 0, "Request body must be a JSON object.",
		    "(#100) Invalid parameter");
	v = json_object_get(msg, "messaging_product");
	if (!json_is_string(v))
		return emu_error_fmt(100, 0, NULL, "(#100) The parameter "
		    "messaging_product is required.");
	if (strcmp(json_string_value(v), "whatsapp") != 0)
		return emu_error_fmt(100, 0, "Parameter messaging_product must be "
		    "whatsapp.", "(#100) Invalid parameter");
	v = json_object_get(msg, "to");
	if (!json_is_string(v))
		return emu_error_fmt(100, 0, NULL, "(#100) The parameter to is required.");
	s->to = json_string_value(v);
	if (emu_wa_id(s->to, s->wa_id, sizeof s->wa_id) != 0)
		return emu_error_fmt(100, 0, "Parameter to is not a valid phone number.",
		    "(#100) Invalid parameter");
	v = json_object_get(msg, "type");
	s->type = v == NULL ? "text" : json_string_value(v);
	if (s->type == NULL || !emu_send_type_known(s->type))
		return emu_error_fmt(100, 0, "Parameter type must be one of audio, "
		    "contacts, document, image, interactive, location, reaction, "
		    "sticker, template, text, video.", "(#100) Invalid parameter");
	s->is_template = strcmp(s->type, "template") == 0;
	s->content = json_object_get(msg, s->type);
	v = json_object_get(msg, "biz_opaque_callback_data");
	if (v != NULL && (!json_is_string(v) ||
	    json_string_length(v) > EMU_OPAQUE_MAX_CHARS))
		return emu_error_fmt(100, 0, "Parameter biz_opaque_callback_data must be "
		    "a string of at most 512 characters.", "(#100) Invalid parameter");
	s->biz = json_string_value(v);
	if (strcmp(s->type, "location") == 0 || strcmp(s->type, "contacts") == 0 ||
	    strcmp(s->type, "interactive") == 0 || strcmp(s->type, "reaction") == 0)
		return s->content != NULL ? NULL : emu_error_fmt(100, 0, NULL,
		    "(#100) The parameter %s is required.", s->type);
	return emu_send_check_content(s->type, s->content);
}

/* The injected error code for this send, or 0 to accept it. */
static int
emu_fault_pick(const struct emu_send *s)
{
	struct emu_faults *f = &emu.faults;
	json_t *v = NULL;
	int code;

	if (f->per_recipient != NULL) {
		v = json_object_get(f->per_recipient, s->to);
		if (v == NULL)
			v = json_object_get(f->per_recipient, s->wa_id);
	}
	if (v != NULL) {
		code = (int)json_integer_value(v);
		/* The 24-hour window closes to free-form messages only. */
		if (code != 131047 || !s->is_template)
			return code;
	}
	if (f->fail_rate <= 0 || emu_rand01() >= f->fail_rate)
		return 0;
	code = f->nkinds > 0 ? f->kinds[emu_rand() % f->nkinds] : EMU_KIND_5XX;
	if (code == EMU_KIND_5XX)
		code = (emu_rand() & 1) ? 1 : 2;
	return code;	/* may be EMU_KIND_RESET or EMU_KIND_TIMEOUT */
}

/*
 * Accept a send: record it, answer with a wamid, start its statuses. With
 * hold_ms > 0 (the "timeout" fault) the answer waits that long instead.
 */
static void
emu_send_accept(struct evhttp_request *req, const struct emu_send *s, int hold_ms)
{
	char wamid[96], *body;

	emu_wamid(s->wa_id, wamid, sizeof wamid);
	emu.accepted++;
	emu_record(s, wamid);
	/*
	 * Formatted, not built with Jansson: it is the hot path of benchmarks,
	 * and "to" needs no escaping (emu_wa_id allowed only digits and "+ -()").
	 */
	if (asprintf(&body, "{\"messaging_product\":\"whatsapp\",\"contacts\":"
	    "[{\"input\":\"%s\",\"wa_id\":\"%s\"}],\"messages\":[{\"id\":\"%s\"%s}]}",
	    s->to, s->wa_id, wamid, s->is_template ?
	    ",\"message_status\":\"accepted\"" : "") < 0)
		abort();
	if (hold_ms > 0) {
		emu.timeouts++;
		emu_answer_after(req, 200, body, 0, emu_job_new(s, wamid), hold_ms);
	} else
		emu_answer(req, 200, body, 0, emu_job_new(s, wamid));
}

/* POST /{version}/{phone_number_id}/messages: the send endpoint. */
void
emu_send(struct evhttp_request *req, char **seg)
{
	struct emu_send s;
	const struct emu_error *e;
	json_t *msg;
	int code;

	emu.received++;
	memset(&s, 0, sizeof s);
	s.version = seg[0];
	s.pnid = seg[1];
	if (emu_version_major(s.version) < 0) {
		emu_send_fail(req, emu_error_fmt(2500, 0, NULL, "Unknown path "
		    "components: /%s", s.version));
		return;
	}
	if (!emu_authorized(req)) {
		emu_send_fail(req, &emu_bad_token);
		return;
	}
	if (strspn(s.pnid, "0123456789") != strlen(s.pnid)) {
		emu_send_fail(req, emu_error_fmt(100, 33, NULL, "Unsupported post "
		    "request. Object with ID '%.64s' does not exist, cannot be "
		    "loaded due to missing permissions, or does not support this "
		    "operation.", s.pnid));
		return;
	}
	msg = emu_body_json(req);
	if ((e = emu_send_parse(msg, &s)) != NULL)
		emu_send_fail(req, e);
	else if ((code = emu_fault_pick(&s)) == EMU_KIND_RESET)
		emu_send_reset(req);
	else if (code == EMU_KIND_TIMEOUT)
		emu_send_accept(req, &s, emu.faults.hold_ms);
	else if (code != 0)
		emu_send_fail(req, emu_error_get(code));
	else
		emu_send_accept(req, &s, 0);
	json_decref(msg);
}
