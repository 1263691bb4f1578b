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
 * listener, claim and records are media.c's and inflight.c's, shared with
 * sms-twilio.c.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "media.h"
#include "util.h"
#include "whatsapp.h"

#define WHATSAPP_MEDIA_INFO_MAX (64 * 1024)

/* The instance of an op not let go of. */
static struct whatsapp *
whatsapp_media_wa(struct inflight_op *op)
{
	return op->set->ch->priv;
}

/* Step 2 done: the bytes, or why not. */
static void
whatsapp_media_fetched(CURL *easy, CURLcode rc, long status, const char *body, size_t len, void *arg)
{
	struct inflight_op *op = arg;

	if (op->set == NULL)
		inflight_op_done(op);
	else if (rc == CURLE_WRITE_ERROR)
		inflight_media_fail(op, 0, "The media is larger than media_max (%zu bytes).",
		    whatsapp_media_wa(op)->media_max);
	else if (rc != CURLE_OK)
		inflight_media_fail(op, 1, "The media could not be downloaded: %s", curl_easy_strerror(rc));
	else if (status != 200)
		inflight_media_fail(op, media_temporary(status), "The media download answered HTTP %ld.", status);
	else
		inflight_media_store(op, body, len);
}

/* Start step 2: GET the media URL with the Bearer token. */
static void
whatsapp_media_download(struct inflight_op *op, const char *url)
{
	struct whatsapp *wa = whatsapp_media_wa(op);
	struct curl_slist *headers;
	CURL *easy = whatsapp_easy(wa, url, &headers);

	curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)wa->media_max);
	curlev_start(wa->ch->env->curl, easy, headers, wa->media_max, whatsapp_media_fetched, op);
}

/* Why step 1 failed, from the Graph API's error object. */
static void
whatsapp_media_refused(struct inflight_op *op, long status, const char *body, size_t len)
{
	struct whatsapp_answer a;

	whatsapp_proto_answer(status, body, len, &a);
	inflight_media_fail(op, media_temporary(status), "The Graph API refused the media "
	    "id: HTTP %ld, code %s: %s", status, a.code, a.text);
	whatsapp_proto_answer_free(&a);
}

/* Read step 1's answer {url, mime_type, file_size} and go on to step 2. */
static void
whatsapp_media_info(struct inflight_op *op, const char *body, size_t len)
{
	json_t *root = json_loadb(body, len, 0, NULL);
	const char *url = json_string_value(json_object_get(root, "url"));
	const char *mime = json_string_value(json_object_get(root, "mime_type"));
	json_int_t size = json_integer_value(json_object_get(root, "file_size"));
	size_t max = whatsapp_media_wa(op)->media_max;

	if (url == NULL || (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0))
		inflight_media_fail(op, 1, "The Graph API gave no media URL.");
	else if (size > 0 && (size_t)size > max)
		inflight_media_fail(op, 0, "The media is larger than media_max (%" JSON_INTEGER_FORMAT
		    " > %zu bytes).", size, max);
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
	struct inflight_op *op = arg;

	if (op->set == NULL)
		inflight_op_done(op);
	else if (rc != CURLE_OK)
		inflight_media_fail(op, 1, "The Graph API could not be reached for the media URL: %s",
		    curl_easy_strerror(rc));
	else if (status != 200)
		whatsapp_media_refused(op, status, body, len);
	else
		whatsapp_media_info(op, body, len);
}

/* Start step 1 for a claimed attachment: GET {api_base}/{media_id}. */
void
whatsapp_media_fetch(struct inflight_op *op, const char *media_id)
{
	struct whatsapp *wa = whatsapp_media_wa(op);
	struct curl_slist *headers;
	char *url, *escaped;
	CURL *easy;

	op->media_id = xstrdup(media_id);
	escaped = curl_easy_escape(NULL, media_id, 0);
	xasprintf(&url, "%s/%s", wa->api_base, escaped);
	curl_free(escaped);
	easy = whatsapp_easy(wa, url, &headers);
	free(url);
	curlev_start(wa->ch->env->curl, easy, headers, WHATSAPP_MEDIA_INFO_MAX, whatsapp_media_located, op);
}
