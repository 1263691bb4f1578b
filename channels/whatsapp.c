/*
 * whatsapp.c: the WhatsApp Business Cloud API adapter (type "whatsapp").
 * Webhooks: the GET subscription handshake, and POSTs whose
 * X-Hub-Signature-256 is checked over the raw bytes before anything is
 * parsed; their messages and statuses are stored through a channel batch,
 * which answers Meta only after the commit. Sends: free text inside the
 * 24-hour window, a template outside it, POSTed to the Graph API through
 * curlev; the answer becomes exactly one sent or failed upcall, classified by
 * the table in whatsapp-proto.c. Media of inbound messages are fetched by
 * whatsapp-media.c once the messages are committed.
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "util.h"
#include "whatsapp.h"

/* The largest answer to a send we read (they are a few hundred bytes). */
#define WHATSAPP_ANSWER_MAX (64 * 1024)

/* What a webhook's walk needs to store what it finds. */
struct whatsapp_hook {
	struct whatsapp *wa;
	struct http_req *hr;
	struct channel_batch *batch;
	int messages;
	int statuses;
};

static const struct conf_key whatsapp_keys[] = {
	{ NULL, "phone_number_id", CONF_STRING, "", 0, 0, NULL, CONF_REQUIRED,
	  "The Cloud API id of the business phone number (digits, not the number itself); "
	  "webhook changes for other numbers are ignored." },
	{ NULL, "access_token", CONF_STRING, "", 0, 0, NULL, CONF_REQUIRED | CONF_SECRET,
	  "The system user access token sent as a Bearer token with every Graph API call." },
	{ NULL, "app_secret", CONF_STRING, "", 0, 0, NULL, CONF_REQUIRED | CONF_SECRET,
	  "The Meta app secret: every webhook must carry X-Hub-Signature-256, its "
	  "HMAC-SHA256 of the body." },
	{ NULL, "verify_token", CONF_STRING, "", 0, 0, NULL, CONF_REQUIRED | CONF_SECRET,
	  "The token Meta sends as hub.verify_token when the webhook is subscribed." },
	{ NULL, "api_base", CONF_URL, "https://graph.facebook.com/v21.0", 0, 0, NULL, 0,
	  "The Graph API with its version; sends go to API_BASE/PHONE_NUMBER_ID/messages." },
	{ NULL, "rate", CONF_INT, "80", 0, 100000, NULL, 0,
	  "Most messages sent per second through this number (Meta allows 80 by default)." },
	{ NULL, "template_name", CONF_STRING, "", 0, 0, NULL, 0,
	  "The approved template (e.g. a UTILITY template with one body parameter) that "
	  "carries a reply when the 24-hour window is closed and the message names no "
	  "template of its own; empty: such sends fail over to the next channel." },
	{ NULL, "template_language", CONF_STRING, "id", 0, 0, NULL, 0,
	  "The language code of template_name." },
	{ NULL, "media_max", CONF_SIZE, "16M", 1, 100LL * 1024 * 1024, NULL, 0,
	  "The largest inbound media fetched; a larger one is recorded as failed." },
	{ NULL, "cafile", CONF_STRING, "", 0, 0, NULL, 0,
	  "CA certificates for the Graph API's TLS; empty: the system store." },
	{ NULL, "send_timeout", CONF_DURATION, "30s", 1000, 600 * 1000, NULL, 0,
	  "Longest a send may wait for the Graph API's answer; after it the send is a "
	  "temporary failure and is retried, so Meta may get it twice. Keep it well under "
	  "[dispatch] lease." },
};

static void whatsapp_send_answer(struct channel *, const struct channel_msg *, CURL *, long, const char *,
    size_t);

/* Whether s is a non-empty string of digits. */
static int
whatsapp_digits(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return 0;
	}
	return 1;
}

/* Check the config and keep a copy of it; no I/O. */
static int
whatsapp_create(struct channel *ch, const struct conf_section *sec, char **cause)
{
	struct whatsapp *wa;
	const char *pnid = conf_channel_str(sec, "phone_number_id");
	const char *lang = conf_channel_str(sec, "template_language");

	if (!whatsapp_digits(pnid)) {
		xasprintf(cause, "phone_number_id must be the digits of the Cloud API phone number id");
		return -1;
	}
	if (lang[0] == '\0' || strspn(lang, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_") != strlen(lang)) {
		xasprintf(cause, "template_language must be a language code such as id or en_US");
		return -1;
	}
	wa = xcalloc(1, sizeof *wa);
	wa->ch = ch;
	wa->phone_number_id = xstrdup(pnid);
	wa->app_secret = xstrdup(conf_channel_str(sec, "app_secret"));
	wa->verify_token = xstrdup(conf_channel_str(sec, "verify_token"));
	wa->api_base = xstrdup(conf_channel_str(sec, "api_base"));
	wa->api_base[strcspn(wa->api_base, "?#")] = '\0';
	while (strlen(wa->api_base) > 0 && wa->api_base[strlen(wa->api_base) - 1] == '/')
		wa->api_base[strlen(wa->api_base) - 1] = '\0';
	wa->template_name = xstrdup(conf_channel_str(sec, "template_name"));
	wa->template_language = xstrdup(lang);
	wa->cafile = xstrdup(conf_channel_str(sec, "cafile"));
	xasprintf(&wa->auth_header, "Authorization: Bearer %s", conf_channel_str(sec, "access_token"));
	wa->media_max = (size_t)conf_channel_int(sec, "media_max");
	wa->send_timeout_ms = (long)conf_channel_int(sec, "send_timeout");
	inflight_init(&wa->fl, ch, "whatsapp", "WhatsApp", "the Graph API", whatsapp_send_answer,
	    whatsapp_media_fetch);
	ch->priv = wa;
	return 0;
}

/* Start the media fetcher; sends need nothing opened in advance. */
static int
whatsapp_start(struct channel *ch, char **cause)
{
	struct whatsapp *wa = ch->priv;

	if (ch->env == NULL || ch->env->curl == NULL || ch->env->db == NULL) {
		xasprintf(cause, "the WhatsApp channel needs the HTTP client and the database");
		return -1;
	}
	inflight_start(&wa->fl);
	log_info("whatsapp", "WhatsApp channel started. channel=%s phone_number_id=%s api_base=%s",
	    ch->name, wa->phone_number_id, wa->api_base);
	return 0;
}

/* Take no new work; with drain, let the sends in flight finish. */
static void
whatsapp_stop(struct channel *ch, int drain)
{
	struct whatsapp *wa = ch->priv;

	inflight_stop(&wa->fl, drain);
}

/* Free the instance; ops still in flight are dropped when their callbacks come. */
static void
whatsapp_destroy(struct channel *ch)
{
	struct whatsapp *wa = ch->priv;

	if (wa == NULL)
		return;
	inflight_destroy(&wa->fl);
	free(wa->phone_number_id);
	free(wa->app_secret);
	free(wa->verify_token);
	free(wa->api_base);
	free(wa->template_name);
	free(wa->template_language);
	free(wa->cafile);
	free(wa->auth_header);
	free(wa);
	ch->priv = NULL;
}

/* A new easy handle for a Graph API call (see whatsapp.h). */
CURL *
whatsapp_easy(struct whatsapp *wa, const char *url, struct curl_slist **headers)
{
	CURL *easy = curlev_easy(wa->ch->env->curl);

	curl_easy_setopt(easy, CURLOPT_URL, url);
	curlev_http_only(easy);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "linbat");
	if (wa->cafile[0] != '\0')
		curl_easy_setopt(easy, CURLOPT_CAINFO, wa->cafile);
	*headers = curl_slist_append(NULL, wa->auth_header);
	*headers = curl_slist_append(*headers, "Accept: application/json");
	return easy;
}

/* Tell the admin, once until a send succeeds again, that the token is no longer valid. */
static void
whatsapp_token_alert(struct whatsapp *wa, const struct whatsapp_answer *a)
{
	if (wa->token_alerted)
		return;
	wa->token_alerted = 1;
	log_error("whatsapp", "The Graph API rejected the access token (expired or revoked): no "
	    "WhatsApp message can be sent until an admin sets a new access_token and restarts linbatd. "
	    "channel=%s code=%s error=\"%s\"", wa->ch->name, a->code, a->text);
}

/* Turn the Graph API's answer to a send into the one upcall (an inflight_answer_fn). */
static void
whatsapp_send_answer(struct channel *ch, const struct channel_msg *msg, CURL *easy, long status,
    const char *body, size_t len)
{
	struct whatsapp *wa = ch->priv;
	struct whatsapp_answer a;

	whatsapp_proto_answer(status, body, len, &a);
	if (a.ok) {
		wa->token_alerted = 0;
		log_debug("whatsapp", "Message accepted. channel=%s id=%lld wamid=%s", wa->ch->name,
		    msg->id, a.wamid);
		channel_sent(wa->ch, msg, a.wamid);
	} else {
		if (a.token_expired)
			whatsapp_token_alert(wa, &a);
		log_info("whatsapp", "The Graph API refused a message. channel=%s id=%lld status=%ld "
		    "kind=%s code=%s error=\"%s\"", wa->ch->name, msg->id, status,
		    channel_fail_name(a.kind), a.code, a.text);
		channel_failed(wa->ch, msg, a.kind, a.code, a.text, curlev_retry_after(easy));
	}
	whatsapp_proto_answer_free(&a);
}

/* Send one message: POST its payload to {api_base}/{phone_number_id}/messages. */
static void
whatsapp_send(struct channel *ch, const struct channel_msg *msg)
{
	struct whatsapp *wa = ch->priv;
	struct curl_slist *headers;
	char *cause = NULL, *url, *json;
	json_t *payload;
	CURL *easy;

	if (inflight_refuse(&wa->fl, msg))
		return;
	if ((payload = whatsapp_proto_payload(msg, wa->template_name, wa->template_language, &cause)) == NULL) {
		log_info("whatsapp", "A message cannot be sent on WhatsApp. channel=%s id=%lld reason=\"%s\"",
		    ch->name, msg->id, cause);
		channel_failed(ch, msg, CHANNEL_FAIL_PERMANENT, "invalid", cause, 0);
		free(cause);
		return;
	}
	json = json_dumps(payload, JSON_COMPACT);
	json_decref(payload);
	xasprintf(&url, "%s/%s/messages", wa->api_base, wa->phone_number_id);
	easy = whatsapp_easy(wa, url, &headers);
	headers = curl_slist_append(headers, "Content-Type: application/json");
	curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, json);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, wa->send_timeout_ms);
	free(url);
	free(json);
	inflight_send(&wa->fl, msg, easy, headers, WHATSAPP_ANSWER_MAX);
}

/* GET: answer Meta's subscription handshake with the challenge, or 403. */
static void
whatsapp_handshake(struct whatsapp *wa, struct http_req *hr)
{
	const char *mode = http_req_query(hr, "hub.mode");
	const char *token = http_req_query(hr, "hub.verify_token");
	const char *challenge = http_req_query(hr, "hub.challenge");

	if (mode != NULL && strcmp(mode, "subscribe") == 0 && token != NULL && challenge != NULL &&
	    util_ct_streq(token, wa->verify_token)) {
		log_info("whatsapp", "Webhook subscription verified. channel=%s", wa->ch->name);
		http_reply(hr, 200, "text/plain", challenge, strlen(challenge));
		return;
	}
	log_warn("whatsapp", "A webhook subscription handshake was refused. channel=%s peer=%s",
	    wa->ch->name, http_req_peer(hr));
	http_reply_error(hr, HTTP_ERR_FORBIDDEN, "hub.mode or hub.verify_token is wrong.");
}

/* Whether X-Hub-Signature-256 is sha256=HMAC-SHA256(app_secret, raw body), in constant time. */
static int
whatsapp_signature_ok(struct whatsapp *wa, struct http_req *hr)
{
	const char *sig = http_req_header(hr, "X-Hub-Signature-256");
	const unsigned char *body;
	unsigned char mac[32];
	char want[65], got[65];
	size_t len, i;

	if (sig == NULL || strncmp(sig, "sha256=", 7) != 0 || strlen(sig + 7) != 64)
		return 0;
	for (i = 0; i < 64; i++)
		got[i] = (char)tolower((unsigned char)sig[7 + i]);
	got[64] = '\0';
	body = http_req_body(hr, &len);
	util_hmac_sha256(wa->app_secret, strlen(wa->app_secret), body, len, mac);
	util_hex(mac, sizeof mac, want);
	return util_ct_streq(want, got);
}

/* The batch of this webhook, made on the first item. */
static struct channel_batch *
whatsapp_hook_batch(struct whatsapp_hook *h)
{
	if (h->batch == NULL)
		h->batch = channel_batch_new(h->wa->ch, h->hr);
	return h->batch;
}

/* Sink: store an inbound message. */
static void
whatsapp_hook_message(const struct channel_inbound *in, void *arg)
{
	struct whatsapp_hook *h = arg;

	channel_batch_message(whatsapp_hook_batch(h), in);
	h->messages++;
}

/* Sink: store a delivery status. */
static void
whatsapp_hook_status(const struct whatsapp_status *s, void *arg)
{
	struct whatsapp_hook *h = arg;

	channel_batch_status(whatsapp_hook_batch(h), s->id, s->status, s->timestamp, s->error_code,
	    s->error_text);
	h->statuses++;
}

/* POST: check the signature, then parse and store; the batch answers after the commit. */
static void
whatsapp_webhook(struct whatsapp *wa, struct http_req *hr)
{
	static const struct whatsapp_sink sink = { whatsapp_hook_message, whatsapp_hook_status };
	struct whatsapp_hook h = { wa, hr, NULL, 0, 0 };
	char *cause = NULL;
	json_t *root;

	if (!whatsapp_signature_ok(wa, hr)) {
		log_warn("whatsapp", "A webhook was refused: its signature is missing or wrong. channel=%s peer=%s",
		    wa->ch->name, http_req_peer(hr));
		metrics_count("linbat_webhook_signature_failures_total", wa->ch->name);
		http_reply_error(hr, HTTP_ERR_BAD_SIGNATURE, "X-Hub-Signature-256 is missing or does not match.");
		return;
	}
	if ((root = http_req_json(hr)) == NULL)
		return;
	if (whatsapp_proto_parse(root, wa->phone_number_id, &sink, &h, &cause) < 0) {
		json_decref(root);
		http_reply_error(hr, HTTP_ERR_BAD_REQUEST, cause);
		free(cause);
		return;
	}
	json_decref(root);
	log_debug("whatsapp", "Webhook received. channel=%s messages=%d statuses=%d", wa->ch->name,
	    h.messages, h.statuses);
	channel_batch_end(whatsapp_hook_batch(&h));
}

/* Every request to /webhooks/NAME and below. */
static void
whatsapp_inbound(struct channel *ch, struct http_req *hr)
{
	struct whatsapp *wa = ch->priv;
	const char *method = http_req_method(hr);

	if (strcmp(method, "GET") == 0)
		whatsapp_handshake(wa, hr);
	else if (strcmp(method, "POST") == 0)
		whatsapp_webhook(wa, hr);
	else
		http_reply_error(hr, HTTP_ERR_METHOD, "Use GET for the handshake and POST for webhooks.");
}

const struct channel_type channel_whatsapp = {
	.name = "whatsapp",
	.kind = "whatsapp",
	.keys = whatsapp_keys,
	.nkeys = nitems(whatsapp_keys),
	.create = whatsapp_create,
	.start = whatsapp_start,
	.stop = whatsapp_stop,
	.destroy = whatsapp_destroy,
	.send = whatsapp_send,
	.inbound = whatsapp_inbound,
};
