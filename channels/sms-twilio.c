/*
 * sms-twilio.c: the Twilio-style REST adapter (type "sms-twilio"), for Twilio
 * and the aggregators that copy its Messages API. A send is a form POST to
 * {api_base}/2010-04-01/Accounts/{account_sid}/Messages.json with Basic auth
 * and StatusCallback set to webhook_url; the answer's "sid" is the provider
 * id that status callbacks name.
 *
 * Inbound messages and status callbacks are form POSTs to /webhooks/NAME
 * signed with X-Twilio-Signature: HMAC-SHA1 under the auth token of the URL
 * Twilio called and every parameter, name then value, sorted by name. The
 * daemon may sit behind a proxy and cannot see that URL, so webhook_url holds
 * it. A missing or wrong signature gets 403 and nothing is stored. Inbound
 * messages are answered with empty TwiML, so Twilio sends no reply.
 *
 * An MMS names its media (NumMedia, MediaUrlN, MediaContentTypeN): stored
 * with the message as meta.media, they become pending attachments (see
 * migrations/0015) that this adapter fetches with Basic auth, at most
 * media_max bytes, through media.c like WhatsApp's. A media URL is fetched
 * only if it is on api_base's own scheme, host and port, whatever a webhook
 * names. Twilio answers it with a redirect to its CDN on another host: up to
 * SMS_TWILIO_MEDIA_HOPS redirects are followed, by hand, to any host with
 * api_base's scheme (https in production), and the account's credentials go
 * only to api_base's origin, never with a request anywhere else. A redirect
 * to another scheme (file:, ftp:, https to http, ...) is refused.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "curlev.h"
#include "inflight.h"
#include "log.h"
#include "media.h"
#include "phone.h"
#include "sms.h"
#include "util.h"

/* The largest answer to a send we read (a message resource is about 1 KiB). */
#define SMS_TWILIO_ANSWER_MAX (64 * 1024)
/* The most media of one message (Twilio's limit) and redirects followed (to api_base's scheme only). */
#define SMS_TWILIO_MEDIA_N 10
#define SMS_TWILIO_MEDIA_HOPS 3
/* What an account SID may hold: it becomes a path segment of the API's URL. */
#define SMS_TWILIO_SID_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

static const char sms_twilio_twiml[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

struct sms_twilio {
	struct channel *ch;
	char *messages_url;
	char *account_sid;
	char *auth_token;
	char *from;
	char *webhook_url;
	char *origin;      /* scheme://host:port of api_base: the only place media is fetched from */
	size_t media_max;
	struct inflight fl; /* sends, media claims and fetches */
};

/* A MessageStatus and the linbat status it records (NULL: nothing new). */
struct sms_twilio_status {
	const char *twilio;
	const char *status;
};

static const struct sms_twilio_status sms_twilio_statuses[] = {
	{ "accepted", NULL },
	{ "scheduled", NULL },
	{ "queued", NULL },
	{ "sending", NULL },
	{ "sent", "sent" },
	{ "delivered", "delivered" },
	{ "read", "read" },
	{ "undelivered", "failed" },
	{ "failed", "failed" },
	{ "canceled", "failed" },
};

/*
 * Twilio error codes that say the number can never get SMS from us: the core
 * falls back to the investor's next channel. Other 4xx are permanent too;
 * these are listed so the reason is logged by name.
 */
static const struct {
	long code;
	const char *what;
} sms_twilio_codes[] = {
	{ 21211, "invalid To number" },
	{ 21408, "region not enabled" },
	{ 21610, "recipient unsubscribed (STOP)" },
	{ 21614, "To number is not a mobile" },
};

static const struct conf_key sms_twilio_keys[] = {
	{ NULL, "api_base", CONF_URL, "https://api.twilio.com", 0, 0, NULL, 0,
	  "The REST API; sends go to API_BASE/2010-04-01/Accounts/ACCOUNT_SID/Messages.json." },
	{ NULL, "account_sid", CONF_STRING, "", 0, 0, NULL, CONF_REQUIRED,
	  "The account SID (AC...), the Basic auth user." },
	{ NULL, "auth_token", CONF_STRING, "", 0, 0, NULL, CONF_REQUIRED | CONF_SECRET,
	  "The auth token: the Basic auth password and the key of X-Twilio-Signature." },
	{ NULL, "from", CONF_STRING, "", 0, 0, NULL, CONF_REQUIRED,
	  "The sender (E.164 number or alphanumeric sender id) of outbound SMS." },
	{ NULL, "webhook_url", CONF_URL, "", 0, 0, NULL, CONF_REQUIRED,
	  "The exact URL the provider calls for inbound messages and status callbacks, query "
	  "string included, as it sees it (before any proxy): signatures cover it. Sent as "
	  "StatusCallback." },
	{ NULL, "rate", CONF_INT, "10", 0, 100000, NULL, 0,
	  "Most messages sent per second (Twilio queues what a number cannot send at once)." },
	{ NULL, "media_max", CONF_SIZE, "5M", 1, 100LL * 1024 * 1024, NULL, 0,
	  "The largest inbound MMS media fetched; a larger one is recorded as failed. A media URL is "
	  "fetched only from api_base's host; its redirects are followed to api_base's scheme only, "
	  "without credentials." },
};

/* qsort order of parameters: by name, then value (Twilio's). */
static int
sms_twilio_param_cmp(const void *a, const void *b)
{
	const struct sms_param *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c != 0 ? c : strcmp(x->value, y->value);
}

struct sms_param *
sms_twilio_params(const char *body, size_t len, size_t *n)
{
	struct sms_param *p = NULL;
	char *copy = xstrndup(body, len), *save = NULL, *w, *eq;
	size_t cap = 0;

	*n = 0;
	for (w = strtok_r(copy, "&", &save); w != NULL; w = strtok_r(NULL, "&", &save)) {
		if (*n == cap) {
			cap = cap != 0 ? cap * 2 : 16;
			p = xrealloc(p, cap * sizeof *p);
		}
		if ((eq = strchr(w, '=')) != NULL)
			*eq++ = '\0';
		p[*n].name = xstrdup(w);
		p[*n].value = xstrdup(eq != NULL ? eq : "");
		util_urldecode(p[*n].name);
		util_urldecode(p[*n].value);
		(*n)++;
	}
	free(copy);
	if (*n > 1)
		qsort(p, *n, sizeof *p, sms_twilio_param_cmp);
	return p;
}

void
sms_twilio_params_free(struct sms_param *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(p[i].name);
		free(p[i].value);
	}
	free(p);
}

const char *
sms_twilio_param(const struct sms_param *p, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(p[i].name, name) == 0)
			return p[i].value;
	}
	return NULL;
}

char *
sms_twilio_signature(const char *token, const char *url, const struct sms_param *p, size_t n)
{
	unsigned char mac[20];
	struct buf b;
	size_t i;

	buf_init(&b);
	buf_adds(&b, url);
	for (i = 0; i < n; i++) {
		buf_adds(&b, p[i].name);
		buf_adds(&b, p[i].value);
	}
	util_hmac_sha1(token, strlen(token), b.data, b.len, mac);
	buf_free(&b);
	return util_base64(mac, sizeof mac);
}

/*
 * "scheme://host:port" of an http(s) URL, lower-cased, the port explicit;
 * NULL if it is not one. Two URLs with the same origin are the same server.
 */
static char *
sms_twilio_origin(const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *origin = NULL, *c;

	if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
	    (strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0)) {
		xasprintf(&origin, "%s://%s:%s", scheme, host, port);
		for (c = origin; *c != '\0'; c++)
			*c = (char)tolower((unsigned char)*c);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return origin;
}

static void sms_twilio_answer(struct channel *, const struct channel_msg *, CURL *, long, const char *, size_t);
static void sms_twilio_media_get(struct inflight_op *, const char *url);

/* Check the config and keep a copy of it; no I/O. */
static int
sms_twilio_create(struct channel *ch, const struct conf_section *sec, char **cause)
{
	struct sms_twilio *tw;
	const char *sid = conf_channel_str(sec, "account_sid");
	char *base = xstrdup(conf_channel_str(sec, "api_base"));

	if (strspn(sid, SMS_TWILIO_SID_CHARS) != strlen(sid)) {
		xasprintf(cause, "account_sid must be letters, digits, - and _ only (Twilio's are AC and 32 hex digits)");
		free(base);
		return -1;
	}
	base[strcspn(base, "?#")] = '\0';
	while (strlen(base) > 0 && base[strlen(base) - 1] == '/')
		base[strlen(base) - 1] = '\0';
	tw = xcalloc(1, sizeof *tw);
	tw->ch = ch;
	if ((tw->origin = sms_twilio_origin(base)) == NULL) {
		xasprintf(cause, "api_base must be an http or https URL with a host");
		free(base);
		free(tw);
		return -1;
	}
	tw->media_max = (size_t)conf_channel_int(sec, "media_max");
	xasprintf(&tw->messages_url, "%s/2010-04-01/Accounts/%s/Messages.json", base, sid);
	free(base);
	tw->account_sid = xstrdup(sid);
	tw->auth_token = xstrdup(conf_channel_str(sec, "auth_token"));
	tw->from = xstrdup(conf_channel_str(sec, "from"));
	tw->webhook_url = xstrdup(conf_channel_str(sec, "webhook_url"));
	inflight_init(&tw->fl, ch, "sms-twilio", "Twilio", "the API", sms_twilio_answer, sms_twilio_media_get);
	ch->priv = tw;
	return 0;
}

/* Start the media fetcher; sends need nothing opened in advance. */
static int
sms_twilio_start(struct channel *ch, char **cause)
{
	struct sms_twilio *tw = ch->priv;

	if (ch->env == NULL || ch->env->curl == NULL || ch->env->db == NULL) {
		xasprintf(cause, "the Twilio channel needs the HTTP client and the database");
		return -1;
	}
	log_info("sms-twilio", "Twilio channel started. channel=%s account_sid=%s", ch->name, tw->account_sid);
	inflight_start(&tw->fl);
	return 0;
}

/* Take no new work; with drain, let the sends in flight finish. */
static void
sms_twilio_stop(struct channel *ch, int drain)
{
	struct sms_twilio *tw = ch->priv;

	inflight_stop(&tw->fl, drain);
}

/* Free the instance; work in flight is dropped when its callbacks come. */
static void
sms_twilio_destroy(struct channel *ch)
{
	struct sms_twilio *tw = ch->priv;

	if (tw == NULL)
		return;
	inflight_destroy(&tw->fl);
	free(tw->messages_url);
	free(tw->account_sid);
	free(tw->auth_token);
	free(tw->from);
	free(tw->webhook_url);
	free(tw->origin);
	free(tw);
	ch->priv = NULL;
}

/* The class of a refused send: 429 rate limited, 5xx temporary, other 4xx permanent. */
static enum channel_fail
sms_twilio_classify(long status)
{
	if (status == 429)
		return CHANNEL_FAIL_RATE_LIMITED;
	if (status >= 400 && status < 500)
		return CHANNEL_FAIL_PERMANENT;
	return CHANNEL_FAIL_TEMPORARY;
}

/* Turn the API's answer into the one upcall: 2xx with a sid is sent, else the error's class. */
static void
sms_twilio_answer(struct channel *ch, const struct channel_msg *msg, CURL *easy, long status,
    const char *body, size_t len)
{
	struct sms_twilio *tw = ch->priv;
	json_t *root = json_loadb(body, len, 0, NULL);
	const char *sid = json_string_value(json_object_get(root, "sid"));
	const char *text = json_string_value(json_object_get(root, "message"));
	json_int_t code = json_integer_value(json_object_get(root, "code"));
	enum channel_fail kind;
	char codebuf[32];
	size_t i;

	if (status >= 200 && status < 300 && sid != NULL && sid[0] != '\0') {
		log_debug("sms-twilio", "Message accepted. channel=%s id=%lld sid=%s", tw->ch->name, msg->id, sid);
		channel_sent(tw->ch, msg, sid);
		json_decref(root);
		return;
	}
	kind = status >= 200 && status < 300 ? CHANNEL_FAIL_TEMPORARY : sms_twilio_classify(status);
	if (code != 0)
		snprintf(codebuf, sizeof codebuf, "%lld", (long long)code);
	else
		snprintf(codebuf, sizeof codebuf, "http-%ld", status);
	for (i = 0; i < nitems(sms_twilio_codes) && sms_twilio_codes[i].code != code; i++)
		;
	log_info("sms-twilio", "The API refused a message. channel=%s id=%lld status=%ld kind=%s code=%s what=\"%s\"",
	    tw->ch->name, msg->id, status, channel_fail_name(kind), codebuf,
	    i < nitems(sms_twilio_codes) ? sms_twilio_codes[i].what : "see the error text");
	channel_failed(tw->ch, msg, kind, codebuf, text != NULL ? text : "The API refused the message.",
	    curlev_retry_after(easy));
	json_decref(root);
}

/* Append name=escaped(value) to a form body. */
static void
sms_twilio_form_add(struct buf *b, const char *name, const char *value)
{
	char *e = curl_easy_escape(NULL, value, 0);

	buf_addf(b, "%s%s=%s", b->len > 0 ? "&" : "", name, e);
	curl_free(e);
}

/* Send one message: a form POST to the Messages resource. */
static void
sms_twilio_send(struct channel *ch, const struct channel_msg *msg)
{
	struct sms_twilio *tw = ch->priv;
	char to[PHONE_E164_MAX], *cause = NULL;
	struct buf form;
	CURL *easy;

	if (inflight_refuse(&tw->fl, msg))
		return;
	if (phone_normalise(msg->to, to, sizeof to, &cause) != 0) {
		log_info("sms-twilio", "A message has no valid number. channel=%s id=%lld reason=\"%s\"",
		    ch->name, msg->id, cause);
		channel_failed(ch, msg, CHANNEL_FAIL_PERMANENT, "invalid_number", cause, 0);
		free(cause);
		return;
	}
	buf_init(&form);
	sms_twilio_form_add(&form, "To", to);
	sms_twilio_form_add(&form, "From", tw->from);
	sms_twilio_form_add(&form, "Body", msg->body);
	sms_twilio_form_add(&form, "StatusCallback", tw->webhook_url);
	easy = curlev_easy(ch->env->curl);
	curl_easy_setopt(easy, CURLOPT_URL, tw->messages_url);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "linbat");
	curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(easy, CURLOPT_USERNAME, tw->account_sid);
	curl_easy_setopt(easy, CURLOPT_PASSWORD, tw->auth_token);
	curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, form.data);
	buf_free(&form);
	inflight_send(&tw->fl, msg, easy, curl_slist_append(NULL, "Accept: application/json"),
	    SMS_TWILIO_ANSWER_MAX);
}

/* Inbound media ------------------------------------------------------------------ */

/* A fetch came back: the bytes, a redirect to follow, or why not. */
static void
sms_twilio_media_fetched(CURL *easy, CURLcode rc, long status, const char *body, size_t len, void *arg)
{
	struct inflight_op *op = arg;
	struct sms_twilio *tw = op->set != NULL ? op->set->ch->priv : NULL;
	char *location = NULL, *type = NULL;

	if (tw == NULL || tw->fl.stopping) {
		inflight_op_done(op);
		return;
	}
	if (rc == CURLE_WRITE_ERROR || rc == CURLE_FILESIZE_EXCEEDED) {
		inflight_media_fail(op, 0, "The media is larger than media_max (%zu bytes).", tw->media_max);
		return;
	}
	if (rc != CURLE_OK) {
		inflight_media_fail(op, 1, "The media could not be downloaded: %s", curl_easy_strerror(rc));
		return;
	}
	if (status >= 300 && status < 400 && curl_easy_getinfo(easy, CURLINFO_REDIRECT_URL, &location) == CURLE_OK &&
	    location != NULL) {
		if (++op->hops > SMS_TWILIO_MEDIA_HOPS)
			inflight_media_fail(op, 0, "The media URL redirects more than %d times.", SMS_TWILIO_MEDIA_HOPS);
		else
			sms_twilio_media_get(op, location);
		return;
	}
	if (status != 200) {
		inflight_media_fail(op, media_temporary(status), "The media download answered HTTP %ld.", status);
		return;
	}
	/* The type the webhook named stays, unless it named none. */
	if (strcmp(op->mime_type, "application/octet-stream") == 0 &&
	    curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &type) == CURLE_OK && type != NULL) {
		free(op->mime_type);
		op->mime_type = xstrdup(type);
	}
	inflight_media_store(op, body, len);
}

/* The length of "scheme://" that starts an origin. */
static size_t
sms_twilio_scheme_len(const char *origin)
{
	return strstr(origin, "://") - origin + 3;
}

/*
 * GET url (the inflight_fetch_fn of a claimed attachment, then of each
 * redirect): the media URL itself (no hop yet) only on api_base's origin;
 * a redirect's target on any origin of api_base's scheme. Basic auth goes
 * only to api_base's origin, never anywhere else.
 */
static void
sms_twilio_media_get(struct inflight_op *op, const char *url)
{
	struct sms_twilio *tw = op->set->ch->priv;
	char *origin = sms_twilio_origin(url);
	size_t n = sms_twilio_scheme_len(tw->origin);
	int home;
	CURL *easy;

	home = origin != NULL && strcmp(origin, tw->origin) == 0;
	if (op->hops == 0 && !home) {
		inflight_media_fail(op, 0, "The media URL is not on api_base's host (%s), so it is not fetched: %s",
		    tw->origin, origin != NULL ? origin : "not an http(s) URL");
		free(origin);
		return;
	}
	if (origin == NULL || strncmp(origin, tw->origin, n) != 0) {
		inflight_media_fail(op, 0, "The media URL redirects to another scheme than api_base's (%.*s), "
		    "so it is not followed.", (int)(n - 3), tw->origin);
		free(origin);
		return;
	}
	free(origin);
	easy = curlev_easy(tw->ch->env->curl);
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curlev_http_only(easy);
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_UNRESTRICTED_AUTH, 0L);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "linbat");
	if (home) {
		curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(easy, CURLOPT_USERNAME, tw->account_sid);
		curl_easy_setopt(easy, CURLOPT_PASSWORD, tw->auth_token);
	}
	curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)tw->media_max);
	curlev_start(tw->ch->env->curl, easy, NULL, tw->media_max, sms_twilio_media_fetched, op);
}

/* The linbat content type of an MMS: the kind of its first media. */
static const char *
sms_twilio_content_type(const char *mime)
{
	if (mime == NULL)
		return "document";
	if (strncasecmp(mime, "image/", 6) == 0)
		return "image";
	if (strncasecmp(mime, "video/", 6) == 0)
		return "video";
	if (strncasecmp(mime, "audio/", 6) == 0)
		return "audio";
	return "document";
}

/*
 * The media an inbound message names, as meta {"media": [{"url", "mime_type"},
 * ...]} (new reference), or NULL if none; *first gets the first one's type.
 */
static json_t *
sms_twilio_media_meta(const struct sms_param *p, size_t n, const char **first)
{
	const char *num = sms_twilio_param(p, n, "NumMedia"), *url, *type;
	json_t *list = json_array(), *meta;
	char name[32];
	long count = num != NULL ? strtol(num, NULL, 10) : 0, i;

	*first = NULL;
	for (i = 0; i < count && i < SMS_TWILIO_MEDIA_N; i++) {
		snprintf(name, sizeof name, "MediaUrl%ld", i);
		if ((url = sms_twilio_param(p, n, name)) == NULL || url[0] == '\0')
			continue;
		snprintf(name, sizeof name, "MediaContentType%ld", i);
		type = sms_twilio_param(p, n, name);
		if (*first == NULL)
			*first = type != NULL ? type : "";
		json_array_append_new(list, json_pack("{s:s, s:s}", "url", url, "mime_type", type != NULL ? type : ""));
	}
	if (json_array_size(list) == 0) {
		json_decref(list);
		return NULL;
	}
	meta = json_object();
	json_object_set_new(meta, "media", list);
	return meta;
}

/* Whether X-Twilio-Signature signs webhook_url and these parameters, in constant time. */
static int
sms_twilio_signed(struct sms_twilio *tw, struct http_req *hr, const struct sms_param *p, size_t n)
{
	const char *got = http_req_header(hr, "X-Twilio-Signature");
	char *want;
	int ok;

	if (got == NULL)
		return 0;
	want = sms_twilio_signature(tw->auth_token, tw->webhook_url, p, n);
	ok = util_ct_streq(want, got);
	free(want);
	return ok;
}

/* A status callback: MessageSid's new status, with ErrorCode when it failed. */
static void
sms_twilio_status_hook(struct sms_twilio *tw, struct http_req *hr, const struct sms_param *p, size_t n)
{
	const char *sid = sms_twilio_param(p, n, "MessageSid"), *st = sms_twilio_param(p, n, "MessageStatus");
	const char *code = sms_twilio_param(p, n, "ErrorCode");
	struct channel_batch *b;
	size_t i;

	for (i = 0; i < nitems(sms_twilio_statuses) && strcmp(sms_twilio_statuses[i].twilio, st) != 0; i++)
		;
	if (sid == NULL || sid[0] == '\0' || i == nitems(sms_twilio_statuses)) {
		http_reply_error(hr, HTTP_ERR_BAD_REQUEST, "A status callback needs MessageSid and a known MessageStatus.");
		return;
	}
	b = channel_batch_new(tw->ch, hr);
	channel_batch_set_reply(b, "text/plain", "");
	if (sms_twilio_statuses[i].status != NULL)
		channel_batch_status(b, sid, sms_twilio_statuses[i].status, 0,
		    code != NULL && code[0] != '\0' ? code : NULL,
		    strcmp(sms_twilio_statuses[i].status, "failed") == 0 ? st : NULL);
	channel_batch_end(b);
}

/* An inbound message: stored by MessageSid, answered with empty TwiML. */
static void
sms_twilio_message_hook(struct sms_twilio *tw, struct http_req *hr, const struct sms_param *p, size_t n)
{
	const char *sid = sms_twilio_param(p, n, "MessageSid"), *body = sms_twilio_param(p, n, "Body"), *first;
	struct channel_inbound in = { 0 };
	char addr[PHONE_E164_MAX], *cause = NULL;
	struct channel_batch *b;

	if (sid == NULL || sid[0] == '\0' ||
	    phone_normalise(sms_twilio_param(p, n, "From"), addr, sizeof addr, &cause) != 0) {
		log_info("sms-twilio", "An inbound message was refused. channel=%s reason=\"%s\"", tw->ch->name,
		    cause != NULL ? cause : "no MessageSid");
		http_reply_error(hr, HTTP_ERR_BAD_REQUEST, cause != NULL ? cause : "MessageSid is missing.");
		free(cause);
		return;
	}
	in.address = addr;
	in.provider_id = sid;
	in.content_type = "text";
	in.body = body != NULL ? body : "";
	if ((in.meta = sms_twilio_media_meta(p, n, &first)) != NULL)
		in.content_type = sms_twilio_content_type(first);
	b = channel_batch_new(tw->ch, hr);
	channel_batch_set_reply(b, "text/xml", sms_twilio_twiml);
	channel_batch_message(b, &in);
	channel_batch_end(b);
	json_decref(in.meta);
}

/* Every request to /webhooks/NAME: check the signature, then a status callback or a message. */
static void
sms_twilio_inbound(struct channel *ch, struct http_req *hr)
{
	struct sms_twilio *tw = ch->priv;
	const unsigned char *body;
	struct sms_param *p;
	const char *st;
	size_t len, n;

	if (strcmp(http_req_method(hr), "POST") != 0) {
		http_reply_error(hr, HTTP_ERR_METHOD, "Webhooks are form POSTs.");
		return;
	}
	body = http_req_body(hr, &len);
	p = sms_twilio_params((const char *)body, len, &n);
	if (!sms_twilio_signed(tw, hr, p, n)) {
		log_warn("sms-twilio", "A webhook was refused: X-Twilio-Signature is missing or wrong. channel=%s peer=%s",
		    ch->name, http_req_peer(hr));
		http_reply_error(hr, HTTP_ERR_FORBIDDEN, "X-Twilio-Signature is missing or does not match.");
	} else if ((st = sms_twilio_param(p, n, "MessageStatus")) != NULL && strcmp(st, "received") != 0)
		sms_twilio_status_hook(tw, hr, p, n);
	else
		sms_twilio_message_hook(tw, hr, p, n);
	sms_twilio_params_free(p, n);
}

const struct channel_type channel_sms_twilio = {
	.name = "sms-twilio",
	.kind = "sms",
	.keys = sms_twilio_keys,
	.nkeys = nitems(sms_twilio_keys),
	.create = sms_twilio_create,
	.start = sms_twilio_start,
	.stop = sms_twilio_stop,
	.destroy = sms_twilio_destroy,
	.send = sms_twilio_send,
	.inbound = sms_twilio_inbound,
};
