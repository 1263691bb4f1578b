/*
 * whatsapp-media.c: fetching the media of inbound WhatsApp messages. A
 * webhook names only a media id. Storing the message makes a pending
 * linbat.attachment row in the same transaction (a trigger, see
 * migrations/0003_whatsapp_media.sql) and a NOTIFY on linbat_media, which
 * PostgreSQL delivers only after the commit: so the fetch starts once the
 * message is safely stored, and a fetch that fails never loses the message.
 *
 * A fetch is the Graph API's two steps, through curlev: GET {api_base}/{id}
 * with the Bearer token gives a short-lived URL, GET that URL with the same
 * token gives the bytes (at most media_max). The bytes, their SHA-256 and
 * MIME type go into the attachment row; a failure is recorded in it and
 * retried with backoff when it may pass. Rows are claimed with a lease, so
 * several linbatd processes share the work; a timer sweeps for retries. The
 * listener, claim and records are media.c's, shared with sms-twilio.c.
 */
#include "config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "media.h"
#include "util.h"
#include "whatsapp.h"

#define WHATSAPP_MEDIA_INFO_MAX (64 * 1024)

/* The linbat_media listener or the sweep timer: claim what waits. */
static void
whatsapp_media_wake(void *arg)
{
	whatsapp_media_kick(arg);
}

/* The sweep timer: pick up retries whose backoff ran out and lost leases. */
static void
whatsapp_media_tick(evutil_socket_t fd, short what, void *arg)
{
	whatsapp_media_kick(arg);
}

/* Listen for committed media and arm the sweep. */
void
whatsapp_media_start(struct whatsapp *wa)
{
	struct timeval tv = { MEDIA_SWEEP_S, 0 };

	wa->waker.instance = wa->ch->name;
	wa->waker.kick = whatsapp_media_wake;
	wa->waker.arg = wa;
	media_waker_add(wa->ch->env->db, &wa->waker);
	if (wa->media_timer == NULL)
		wa->media_timer = event_new(wa->ch->env->base, -1, EV_PERSIST, whatsapp_media_tick, wa);
	event_add(wa->media_timer, &tv);
	whatsapp_media_kick(wa);
}

/* Stop claiming and sweeping; whatsapp.c lets go of the fetches in flight. */
void
whatsapp_media_stop(struct whatsapp *wa)
{
	media_waker_remove(&wa->waker);
	if (wa->media_timer != NULL) {
		event_free(wa->media_timer);
		wa->media_timer = NULL;
	}
}

/* Record the end of a fetch: stored, or failed with op->error. */
static void
whatsapp_media_recorded(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct whatsapp_op *op = arg;
	struct whatsapp *wa = op->wa;
	const char *state;

	if (wa == NULL) {
		whatsapp_op_done(op);
		return;
	}
	if (error != NULL)
		log_warn("whatsapp", "A media fetch could not be recorded; it is tried again later. "
		    "channel=%s attachment=%lld reason=\"%s\"", wa->ch->name, op->attachment_id, error);
	else if (op->error != NULL) {
		state = PQgetvalue(res, 0, 0);
		log_warn("whatsapp", "A media fetch failed. channel=%s attachment=%lld media_id=%s "
		    "status=%s reason=\"%s\"", wa->ch->name, op->attachment_id, op->media_id,
		    state[0] != '\0' ? state : "-", op->error);
	} else
		log_info("whatsapp", "Media stored. channel=%s attachment=%lld media_id=%s bytes=%zu "
		    "mime_type=\"%s\"", wa->ch->name, op->attachment_id, op->media_id, op->size,
		    op->mime_type);
	whatsapp_op_done(op);
}

static void whatsapp_media_fail(struct whatsapp_op *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));

/* A fetch failed: record why, final unless temporary. */
static void
whatsapp_media_fail(struct whatsapp_op *op, int temporary, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	xvasprintf(&op->error, fmt, ap);
	va_end(ap);
	media_fail(op->wa->ch->env->db, op->attachment_id, op->error, temporary, whatsapp_media_recorded, op);
}

/* Step 2 done: the bytes, or why not. */
static void
whatsapp_media_fetched(CURL *easy, CURLcode rc, long status, const char *body, size_t len, void *arg)
{
	struct whatsapp_op *op = arg;

	if (op->wa == NULL)
		whatsapp_op_done(op);
	else if (rc == CURLE_WRITE_ERROR)
		whatsapp_media_fail(op, 0, "The media is larger than media_max (%zu bytes).", op->wa->media_max);
	else if (rc != CURLE_OK)
		whatsapp_media_fail(op, 1, "The media could not be downloaded: %s", curl_easy_strerror(rc));
	else if (status != 200)
		whatsapp_media_fail(op, media_temporary(status),
		    "The media download answered HTTP %ld.", status);
	else {
		op->size = len;
		media_store(op->wa->ch->env->db, op->attachment_id, op->mime_type, body, len,
		    whatsapp_media_recorded, op);
	}
}

/* Start step 2: GET the media URL with the Bearer token. */
static void
whatsapp_media_download(struct whatsapp_op *op, const char *url)
{
	struct whatsapp *wa = op->wa;
	struct curl_slist *headers;
	CURL *easy = whatsapp_easy(wa, url, &headers);

	curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)wa->media_max);
	curlev_start(wa->ch->env->curl, easy, headers, wa->media_max, whatsapp_media_fetched, op);
}

/* Why step 1 failed, from the Graph API's error object. */
static void
whatsapp_media_refused(struct whatsapp_op *op, long status, const char *body, size_t len)
{
	struct whatsapp_answer a;

	whatsapp_proto_answer(status, body, len, &a);
	whatsapp_media_fail(op, media_temporary(status), "The Graph API refused the media "
	    "id: HTTP %ld, code %s: %s", status, a.code, a.text);
	whatsapp_proto_answer_free(&a);
}

/* Read step 1's answer {url, mime_type, file_size} and go on to step 2. */
static void
whatsapp_media_info(struct whatsapp_op *op, const char *body, size_t len)
{
	json_t *root = json_loadb(body, len, 0, NULL);
	const char *url = json_string_value(json_object_get(root, "url"));
	const char *mime = json_string_value(json_object_get(root, "mime_type"));
	json_int_t size = json_integer_value(json_object_get(root, "file_size"));

	if (url == NULL || (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0))
		whatsapp_media_fail(op, 1, "The Graph API gave no media URL.");
	else if (size > 0 && (size_t)size > op->wa->media_max)
		whatsapp_media_fail(op, 0, "The media is larger than media_max (%" JSON_INTEGER_FORMAT
		    " > %zu bytes).", size, op->wa->media_max);
	else {
		if (mime != NULL && *mime != '\0') {
			free(op->mime_type);
			op->mime_type = xstrdup(mime);
		}
		whatsapp_media_download(op, url);
	}
	json_decref(root);
}

/* Step 1 done: the media's URL, or why not. */
static void
whatsapp_media_located(CURL *easy, CURLcode rc, long status, const char *body, size_t len, void *arg)
{
	struct whatsapp_op *op = arg;

	if (op->wa == NULL)
		whatsapp_op_done(op);
	else if (rc != CURLE_OK)
		whatsapp_media_fail(op, 1, "The Graph API could not be reached for the media URL: %s",
		    curl_easy_strerror(rc));
	else if (status != 200)
		whatsapp_media_refused(op, status, body, len);
	else
		whatsapp_media_info(op, body, len);
}

/* Start step 1 for a claimed attachment: GET {api_base}/{media_id}. */
static void
whatsapp_media_fetch(struct whatsapp *wa, const char *id, const char *media_id, const char *mime)
{
	struct whatsapp_op *op = whatsapp_op_new(wa, WHATSAPP_OP_MEDIA);
	struct curl_slist *headers;
	char *url, *escaped;
	CURL *easy;

	op->attachment_id = strtoll(id, NULL, 10);
	op->media_id = xstrdup(media_id);
	op->mime_type = xstrdup(mime);
	escaped = curl_easy_escape(NULL, media_id, 0);
	xasprintf(&url, "%s/%s", wa->api_base, escaped);
	curl_free(escaped);
	easy = whatsapp_easy(wa, url, &headers);
	free(url);
	curlev_start(wa->ch->env->curl, easy, headers, WHATSAPP_MEDIA_INFO_MAX, whatsapp_media_located, op);
}

/* The claim came back: start a fetch per row; a full batch means more may wait. */
static void
whatsapp_media_claimed(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct whatsapp_op *op = arg;
	struct whatsapp *wa = op->wa;
	int i, n;

	if (wa == NULL || wa->stopping) {
		whatsapp_op_done(op);
		return;
	}
	if (error != NULL) {
		log_warn("whatsapp", "Media to fetch could not be claimed. channel=%s reason=\"%s\"",
		    wa->ch->name, error);
		whatsapp_op_done(op);
		return;
	}
	n = PQntuples(res);
	for (i = 0; i < n; i++)
		whatsapp_media_fetch(wa, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
	if (n >= MEDIA_CLAIM_N)
		wa->media_again = 1;
	whatsapp_op_done(op);
}

/* Claim pending media of this instance, unless a claim or fetch is in flight. */
void
whatsapp_media_kick(struct whatsapp *wa)
{
	struct whatsapp_op *op;

	if (wa->stopping)
		return;
	if (whatsapp_media_busy(wa)) {
		wa->media_again = 1;
		return;
	}
	wa->media_again = 0;
	op = whatsapp_op_new(wa, WHATSAPP_OP_CLAIM);
	media_claim(wa->ch->env->db, wa->ch->name, whatsapp_media_claimed, op);
}
