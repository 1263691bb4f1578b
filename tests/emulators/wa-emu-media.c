/*
 * wa-emu-media.c: media the two-step way, as Cloud API serves it: a test
 * registers bytes (POST /_emu/media), GET /{version}/{media_id} answers with
 * a signed URL that expires, and that URL serves the bytes to the same token.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "wa-emu.h"

/* The media object with this id, or NULL. */
struct emu_media *
emu_media_find(const char *id)
{
	struct emu_media *m;

	TAILQ_FOREACH(m, &emu.media, entry) {
		if (strcmp(m->id, id) == 0)
			return m;
	}
	return NULL;
}

/* The signature of a media URL: HMAC of "id:expiry" under the run's key. */
static void
emu_media_sig(const char *id, long long expiry, char out[65])
{
	char data[64];
	int n = snprintf(data, sizeof data, "%s:%lld", id, expiry);

	emu_hmac_hex(emu.key, sizeof emu.key, data, (size_t)n, out);
	out[32] = '\0';
}

/* POST /_emu/media: register bytes (body) of the request's Content-Type. */
void
emu_media_add(struct evhttp_request *req, EMU_UNUSED char **seg)
{
	struct evbuffer *b = evhttp_request_get_input_buffer(req);
	struct emu_media *m = emu_calloc(1, sizeof *m);
	const char *ct;
	unsigned char md[32];

	ct = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Content-Type");
	m->mime = emu_strdup(ct != NULL ? ct : "application/octet-stream");
	m->len = evbuffer_get_length(b);
	m->data = emu_calloc(1, m->len + 1);
	evbuffer_remove(b, m->data, m->len);
	EVP_Digest(m->data, m->len, md, NULL, EVP_sha256(), NULL);
	emu_hex(md, sizeof md, m->sha256);
	snprintf(m->id, sizeof m->id, "%" PRIu64, (uint64_t)(1000000000000000ULL +
	    emu.salt % 100000000000000ULL + ++emu.seq));
	TAILQ_INSERT_TAIL(&emu.media, m, entry);
	emu.nmedia++;
	emu_reply_json(req, 200, json_pack("{s:s, s:s, s:s, s:I}", "id", m->id,
	    "mime_type", m->mime, "sha256", m->sha256, "file_size",
	    (json_int_t)m->len));
}

/* GET /{version}/{media_id}: the media URL and its metadata. */
void
emu_media_get(struct evhttp_request *req, char **seg)
{
	struct emu_media *m;
	char url[256], sig[65];
	long long expiry = (long long)time(NULL) + EMU_MEDIA_TTL;

	if (emu_version_major(seg[0]) < 0) {
		emu_reply_error(req, emu_error_fmt(2500, 0, NULL, "Unknown path "
		    "components: /%s", seg[0]));
		return;
	}
	if (!emu_authorized(req)) {
		emu_reply_error(req, &emu_bad_token);
		return;
	}
	if ((m = emu_media_find(seg[1])) == NULL) {
		emu_reply_error(req, emu_error_fmt(100, 33, NULL, "Unsupported get "
		    "request. Object with ID '%.64s' does not exist, cannot be loaded due to "
		    "missing permissions, or does not support this operation.",
		    seg[1]));
		return;
	}
	emu_media_sig(m->id, expiry, sig);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/_emu/media/%s?exp=%lld"
	    "&sig=%s", emu.port, m->id, expiry, sig);
	emu_reply_json(req, 200, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}",
	    "messaging_product", "whatsapp", "url", url, "mime_type", m->mime,
	    "sha256", m->sha256, "file_size", (json_int_t)m->len, "id", m->id));
}

/* GET /_emu/media/{id}?exp=..&sig=..: the bytes, with the same Bearer. */
void
emu_media_bytes(struct evhttp_request *req, char **seg)
{
	struct evkeyvalq q;
	struct emu_media *m = NULL;
	const char *qs, *expiry, *sig;
	char want[65];
	int ok = 0;

	if (!emu_authorized(req)) {
		emu_reply_error(req, &emu_bad_token);
		return;
	}
	qs = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	/* The dispatcher has already checked that the URI parsed. */
	TAILQ_INIT(&q);
	if (qs != NULL && evhttp_parse_query_str(qs, &q) == 0 &&
	    (m = emu_media_find(seg[2])) != NULL &&
	    (expiry = evhttp_find_header(&q, "exp")) != NULL &&
	    (sig = evhttp_find_header(&q, "sig")) != NULL &&
	    atoll(expiry) >= (long long)time(NULL)) {
		emu_media_sig(m->id, atoll(expiry), want);
		ok = emu_streq_ct(sig, want);
	}
	evhttp_clear_headers(&q);
	if (!ok) {
		emu_reply_control_error(req, 404, "unknown or expired media URL");
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    m->mime);
	evbuffer_add(evhttp_request_get_output_buffer(req), m->data, m->len);
	evhttp_send_reply(req, 200, "OK", NULL);
}
