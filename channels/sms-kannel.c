/*
 * sms-kannel.c: the Kannel adapter (type "sms-kannel"). Sends go to smsbox's
 * sendsms as one GET each, through curlev, with dlr-mask=31 and a dlr-url
 * that brings Kannel's delivery reports back to /webhooks/NAME/dlr with our
 * message id. Text outside GSM-7 goes as UCS-2 (coding=2); Kannel converts
 * from charset=UTF-8 and splits long texts itself (its sendsms-user needs
 * concatenation and max-messages, see linbat.conf(5)).
 *
 * Kannel cannot sign what it sends, so every inbound request (an SMS from
 * the sms-service get-url or post-url, or a DLR) must carry the instance's
 * secret in its query and come from an address on allow_ip; anything else
 * gets 401 and nothing is stored.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "curlev.h"
#include "inflight.h"
#include "log.h"
#include "phone.h"
#include "sms.h"
#include "util.h"

/* The largest answer of sendsms we read ("0: Accepted for delivery"). */
#define SMS_KANNEL_ANSWER_MAX (16 * 1024)
/* Most addresses on allow_ip. */
#define SMS_KANNEL_ALLOW_MAX 16

/* An address of allow_ip, binary. */
struct sms_kannel_addr {
	int family;
	unsigned char a[16];
};

struct sms_kannel {
	struct channel *ch;
	char *sendsms_url;
	char *username;
	char *password;
	char *from;
	char *secret;
	char *dlr_base; /* {public_url}/webhooks/NAME/dlr?secret=... */
	struct sms_kannel_addr allow[SMS_KANNEL_ALLOW_MAX];
	size_t nallow;
	struct inflight fl; /* sends */
};

/* What a DLR type means: the status it records, or NULL to only acknowledge it. */
struct sms_kannel_dlr {
	int type;
	const char *status;
	const char *text;
};

static const struct sms_kannel_dlr sms_kannel_dlrs[] = {
	{ 1, "delivered", NULL },
	{ 2, "failed", "The SMSC could not deliver the message to the handset." },
	{ 4, NULL, NULL }, /* queued on the SMSC: nothing new */
	{ 8, "sent", NULL },
	{ 16, "failed", "The SMSC rejected the message." },
};

/* GSM 03.38 characters outside ASCII (default alphabet and extension table). */
static const unsigned int sms_kannel_gsm_extra[] = {
	0x00a1, 0x00a3, 0x00a4, 0x00a5, 0x00a7, 0x00bf, 0x00c4, 0x00c5, 0x00c6, 0x00c7, 0x00c9, 0x00d1,
	0x00d6, 0x00d8, 0x00dc, 0x00df, 0x00e0, 0x00e4, 0x00e5, 0x00e6, 0x00e8, 0x00e9, 0x00ec, 0x00f1,
	0x00f2, 0x00f6, 0x00f8, 0x00f9, 0x00fc, 0x0393, 0x0394, 0x0398, 0x039b, 0x039e, 0x03a0, 0x03a3,
	0x03a6, 0x03a8, 0x03a9, 0x20ac,
};

static const struct conf_key sms_kannel_keys[] = {
	{ NULL, "sendsms_url", CONF_URL, "", 0, 0, NULL, CONF_REQUIRED,
	  "smsbox's sendsms, e.g. http://127.0.0.1:13013/cgi-bin/sendsms." },
	{ NULL, "username", CONF_STRING, "", 0, 0, NULL, CONF_REQUIRED,
	  "The username of Kannel's sendsms-user group." },
	{ NULL, "password", CONF_STRING, "", 0, 0, NULL, CONF_REQUIRED | CONF_SECRET,
	  "The password of Kannel's sendsms-user group." },
	{ NULL, "from", CONF_STRING, "", 0, 0, NULL, 0,
	  "The sender number or name of outbound SMS; empty: Kannel's default-sender." },
	{ NULL, "inbound_secret", CONF_STRING, "", 0, 0, NULL, CONF_REQUIRED | CONF_SECRET,
	  "The secret Kannel's get-url, post-url and dlr-url carry as secret=...; requests "
	  "without it get 401. Make it long and random." },
	{ NULL, "allow_ip", CONF_STRING, "127.0.0.1", 0, 0, NULL, 0,
	  "Addresses (IPv4 or IPv6, separated by commas or spaces) from which smsbox may call "
	  "the webhook; any other peer gets 401." },
	{ NULL, "rate", CONF_INT, "100", 0, 100000, NULL, 0,
	  "Most messages sent per second through this Kannel." },
};

/* Whether codepoint c is in GSM-7 (basic set or extension table). */
static int
sms_kannel_gsm_char(unsigned int c)
{
	size_t i;

	if (c < 0x80)
		return c != '`' && (c >= 0x20 || c == '\n' || c == '\r' || c == '\f');
	for (i = 0; i < nitems(sms_kannel_gsm_extra); i++) {
		if (sms_kannel_gsm_extra[i] == c)
			return 1;
	}
	return 0;
}

int
sms_kannel_gsm7(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned int c;
	int n, i;

	while (*p != '\0') {
		if (*p < 0x80)
			c = *p, n = 0;
		else if ((*p & 0xe0) == 0xc0)
			c = *p & 0x1f, n = 1;
		else if ((*p & 0xf0) == 0xe0)
			c = *p & 0x0f, n = 2;
		else
			return 0; /* 4-byte sequences (emoji) and invalid bytes */
		for (i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			c = (c << 6) | (p[i] & 0x3f);
		}
		if (!sms_kannel_gsm_char(c))
			return 0;
		p += n + 1;
	}
	return 1;
}

/* Parse allow_ip into k->allow; -1 with *cause on a word that is no address. */
static int
sms_kannel_allow(struct sms_kannel *k, const char *list, char **cause)
{
	char *copy = xstrdup(list), *save = NULL, *w;
	struct sms_kannel_addr *a;
	int rc = 0;

	for (w = strtok_r(copy, ", \t", &save); w != NULL; w = strtok_r(NULL, ", \t", &save)) {
		if (k->nallow == SMS_KANNEL_ALLOW_MAX) {
			xasprintf(cause, "allow_ip lists more than %d addresses", SMS_KANNEL_ALLOW_MAX);
			rc = -1;
			break;
		}
		a = &k->allow[k->nallow];
		a->family = strchr(w, ':') != NULL ? AF_INET6 : AF_INET;
		if (inet_pton(a->family, w, a->a) != 1) {
			xasprintf(cause, "allow_ip: \"%s\" is not an IP address", w);
			rc = -1;
			break;
		}
		k->nallow++;
	}
	free(copy);
	if (rc == 0 && k->nallow == 0) {
		xasprintf(cause, "allow_ip must list the addresses smsbox calls from");
		rc = -1;
	}
	return rc;
}

/* Free an instance's state. */
static void
sms_kannel_free(struct sms_kannel *k)
{
	free(k->sendsms_url);
	free(k->username);
	free(k->password);
	free(k->from);
	free(k->secret);
	free(k->dlr_base);
	free(k);
}

static void sms_kannel_answer(struct channel *, const struct channel_msg *, CURL *, long, const char *, size_t);

/* Check the config and keep a copy of it; no I/O. */
static int
sms_kannel_create(struct channel *ch, const struct conf_section *sec, char **cause)
{
	struct sms_kannel *k = xcalloc(1, sizeof *k);
	const char *url = conf_channel_str(sec, "sendsms_url");

	k->ch = ch;
	inflight_init(&k->fl, ch, "sms-kannel", "Kannel", "smsbox", sms_kannel_answer, NULL);
	if (sms_kannel_allow(k, conf_channel_str(sec, "allow_ip"), cause) != 0) {
		free(k);
		return -1;
	}
	k->sendsms_url = xstrdup(url);
	k->username = xstrdup(conf_channel_str(sec, "username"));
	k->password = xstrdup(conf_channel_str(sec, "password"));
	k->from = xstrdup(conf_channel_str(sec, "from"));
	k->secret = xstrdup(conf_channel_str(sec, "inbound_secret"));
	ch->priv = k;
	return 0;
}

/* Build the dlr-url base now that the public URL is known. */
static int
sms_kannel_start(struct channel *ch, char **cause)
{
	struct sms_kannel *k = ch->priv;
	char *secret;

	if (ch->env == NULL || ch->env->curl == NULL || ch->env->db == NULL) {
		xasprintf(cause, "the Kannel channel needs the HTTP client and the database");
		return -1;
	}
	secret = curl_easy_escape(NULL, k->secret, 0);
	free(k->dlr_base);
	xasprintf(&k->dlr_base, "%s/webhooks/%s/dlr?secret=%s", ch->env->public_url, ch->name, secret);
	curl_free(secret);
	inflight_start(&k->fl);
	log_info("sms-kannel", "Kannel channel started. channel=%s allow_ip_count=%zu", ch->name, k->nallow);
	return 0;
}

/* Take no new work; with drain, let the sends in flight finish. */
static void
sms_kannel_stop(struct channel *ch, int drain)
{
	struct sms_kannel *k = ch->priv;

	inflight_stop(&k->fl, drain);
}

/* Free the instance; sends in flight are dropped when their callbacks come. */
static void
sms_kannel_destroy(struct channel *ch)
{
	struct sms_kannel *k = ch->priv;

	if (k == NULL)
		return;
	inflight_destroy(&k->fl);
	sms_kannel_free(k);
	ch->priv = NULL;
}

/* Turn smsbox's answer into the one upcall: 2xx "0:"/"3:" sent, 503 and 5xx temporary, 4xx permanent. */
static void
sms_kannel_answer(struct channel *ch, const struct channel_msg *msg, CURL *easy, long status, const char *body,
    size_t len)
{
	struct sms_kannel *k = ch->priv;
	char code[32], idbuf[32];
	enum channel_fail kind;

	if (status >= 200 && status < 300 && (strncmp(body, "0:", 2) == 0 || strncmp(body, "3:", 2) == 0)) {
		snprintf(idbuf, sizeof idbuf, "%lld", msg->id);
		log_debug("sms-kannel", "Message accepted by smsbox. channel=%s id=%lld", k->ch->name, msg->id);
		channel_sent(k->ch, msg, idbuf);
		return;
	}
	kind = status >= 400 && status < 500 ? CHANNEL_FAIL_PERMANENT : CHANNEL_FAIL_TEMPORARY;
	snprintf(code, sizeof code, "http-%ld", status);
	log_info("sms-kannel", "smsbox refused a message. channel=%s id=%lld status=%ld kind=%s answer=\"%.80s\"",
	    k->ch->name, msg->id, status, channel_fail_name(kind), body);
	channel_failed(k->ch, msg, kind, code, body[0] != '\0' ? body : "smsbox refused the message.", 0);
}

/* Append &name=escaped(value) to a URL being built. */
static void
sms_kannel_arg(struct buf *b, const char *name, const char *value)
{
	char *e = curl_easy_escape(NULL, value, 0);

	buf_addf(b, "&%s=%s", name, e);
	curl_free(e);
}

/* The sendsms URL of one message to the E.164 number to. */
static char *
sms_kannel_url(struct sms_kannel *k, const struct channel_msg *msg, const char *to)
{
	struct buf b;
	char *dlr;

	buf_init(&b);
	buf_adds(&b, k->sendsms_url);
	buf_adds(&b, strchr(k->sendsms_url, '?') != NULL ? "" : "?");
	sms_kannel_arg(&b, "username", k->username);
	sms_kannel_arg(&b, "password", k->password);
	if (k->from[0] != '\0')
		sms_kannel_arg(&b, "from", k->from);
	sms_kannel_arg(&b, "to", to);
	sms_kannel_arg(&b, "text", msg->body);
	sms_kannel_arg(&b, "charset", "UTF-8");
	if (!sms_kannel_gsm7(msg->body))
		sms_kannel_arg(&b, "coding", "2");
	sms_kannel_arg(&b, "dlr-mask", "31");
	xasprintf(&dlr, "%s&id=%lld&type=%%d", k->dlr_base, msg->id);
	sms_kannel_arg(&b, "dlr-url", dlr);
	free(dlr);
	return buf_take(&b);
}

/* Send one message: a GET of smsbox's sendsms. */
static void
sms_kannel_send(struct channel *ch, const struct channel_msg *msg)
{
	struct sms_kannel *k = ch->priv;
	char to[PHONE_E164_MAX], *cause = NULL, *url;
	CURL *easy;

	if (inflight_refuse(&k->fl, msg))
		return;
	if (phone_normalise(msg->to, to, sizeof to, &cause) != 0) {
		log_info("sms-kannel", "A message has no valid number. channel=%s id=%lld reason=\"%s\"",
		    ch->name, msg->id, cause);
		channel_failed(ch, msg, CHANNEL_FAIL_PERMANENT, "invalid_number", cause, 0);
		free(cause);
		return;
	}
	url = sms_kannel_url(k, msg, to);
	easy = curlev_easy(ch->env->curl);
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "linbat");
	free(url);
	inflight_send(&k->fl, msg, easy, NULL, SMS_KANNEL_ANSWER_MAX);
}

/* Whether the peer of a request is on allow_ip. */
static int
sms_kannel_peer_ok(struct sms_kannel *k, const char *peer)
{
	unsigned char a[16];
	int family;
	size_t i;

	/* A dual-stack listener shows IPv4 peers as ::ffff:a.b.c.d. */
	if (peer != NULL && strncasecmp(peer, "::ffff:", 7) == 0 && strchr(peer + 7, '.') != NULL)
		peer += 7;
	family = peer != NULL && strchr(peer, ':') != NULL ? AF_INET6 : AF_INET;
	if (peer == NULL || inet_pton(family, peer, a) != 1)
		return 0;
	for (i = 0; i < k->nallow; i++) {
		if (k->allow[i].family == family &&
		    memcmp(k->allow[i].a, a, family == AF_INET ? 4 : 16) == 0)
			return 1;
	}
	return 0;
}

/* Whether a request carries the secret (constant time) and comes from an allowed peer. */
static int
sms_kannel_auth(struct sms_kannel *k, struct http_req *hr)
{
	const char *secret = http_req_query(hr, "secret");
	int secret_ok = secret != NULL && util_ct_streq(secret, k->secret);

	return sms_kannel_peer_ok(k, http_req_peer(hr)) & secret_ok;
}

/* A query value as a non-negative integer, or -1. */
static long long
sms_kannel_number(const char *s)
{
	char *end;
	long long v;

	if (s == NULL || !isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0' ? v : -1;
}

/* /webhooks/NAME/dlr?id=&type=: record the status the DLR type means. */
static void
sms_kannel_dlr(struct sms_kannel *k, struct http_req *hr)
{
	long long id = sms_kannel_number(http_req_query(hr, "id"));
	long long type = sms_kannel_number(http_req_query(hr, "type"));
	struct channel_batch *b;
	char code[32];
	size_t i;

	for (i = 0; i < nitems(sms_kannel_dlrs) && sms_kannel_dlrs[i].type != type; i++)
		;
	if (id <= 0 || i == nitems(sms_kannel_dlrs)) {
		http_reply_error(hr, HTTP_ERR_BAD_REQUEST, "A DLR needs id=<message id> and type=<1|2|4|8|16>.");
		return;
	}
	b = channel_batch_new(k->ch, hr);
	channel_batch_set_reply(b, "text/plain", "");
	if (sms_kannel_dlrs[i].status != NULL) {
		snprintf(code, sizeof code, "dlr-%lld", type);
		channel_batch_status_by_id(b, id, sms_kannel_dlrs[i].status, 0,
		    sms_kannel_dlrs[i].text != NULL ? code : NULL, sms_kannel_dlrs[i].text);
	}
	log_debug("sms-kannel", "DLR received. channel=%s id=%lld type=%lld", k->ch->name, id, type);
	channel_batch_end(b);
}

/* The provider id of an SMS without Kannel's %I: a hash of sender, time and text. */
static void
sms_kannel_hash_id(const char *from, const char *ts, const char *text, char *out)
{
	unsigned char mac[32];
	struct buf b;

	buf_init(&b);
	buf_addf(&b, "%s\n%s\n%s", from, ts != NULL ? ts : "", text);
	util_hmac_sha256("sms-kannel", 10, b.data, b.len, mac);
	buf_free(&b);
	memcpy(out, "h-", 2);
	util_hex(mac, 16, out + 2);
}

/* An inbound SMS: get-url (all in the query) or post-url (text as the body, X-Kannel-* headers). */
static void
sms_kannel_mo(struct sms_kannel *k, struct http_req *hr)
{
	const char *from = http_req_query(hr, "from"), *text = http_req_query(hr, "text");
	const char *id = http_req_query(hr, "id"), *ts = http_req_query(hr, "ts");
	struct channel_inbound in = { 0 };
	struct channel_batch *b;
	char addr[PHONE_E164_MAX], hid[40], *cause = NULL;

	if (from == NULL)
		from = http_req_header(hr, "X-Kannel-From");
	if (text == NULL && strcmp(http_req_method(hr), "POST") == 0)
		text = (const char *)http_req_body(hr, NULL);
	if (phone_normalise(from, addr, sizeof addr, &cause) != 0 || text == NULL) {
		log_info("sms-kannel", "An inbound SMS was refused. channel=%s reason=\"%s\"", k->ch->name,
		    cause != NULL ? cause : "no text");
		http_reply_error(hr, HTTP_ERR_BAD_REQUEST, cause != NULL ? cause : "The SMS has no text.");
		free(cause);
		return;
	}
	if (id == NULL || id[0] == '\0') {
		sms_kannel_hash_id(addr, ts, text, hid);
		id = hid;
	}
	in.address = addr;
	in.provider_id = id;
	in.content_type = "text";
	in.body = text;
	in.timestamp = sms_kannel_number(ts) > 0 ? sms_kannel_number(ts) : 0;
	b = channel_batch_new(k->ch, hr);
	channel_batch_set_reply(b, "text/plain", "");
	channel_batch_message(b, &in);
	channel_batch_end(b);
}

/* Every request to /webhooks/NAME and below: authenticate, then an SMS or a DLR. */
static void
sms_kannel_inbound(struct channel *ch, struct http_req *hr)
{
	struct sms_kannel *k = ch->priv;
	const char *method = http_req_method(hr), *rest = http_req_param(hr, "*");

	if (!sms_kannel_auth(k, hr)) {
		log_warn("sms-kannel", "A webhook was refused: wrong secret or address not allowed. "
		    "channel=%s peer=%s", ch->name, http_req_peer(hr));
		http_reply_error(hr, HTTP_ERR_UNAUTHORIZED, "secret is missing or wrong, or the peer is not allowed.");
		return;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
		http_reply_error(hr, HTTP_ERR_METHOD, "Kannel calls with GET or POST.");
	else if (rest != NULL && strcmp(rest, "dlr") == 0)
		sms_kannel_dlr(k, hr);
	else if (rest == NULL || rest[0] == '\0')
		sms_kannel_mo(k, hr);
	else
		http_reply_error(hr, HTTP_ERR_NOT_FOUND, "Kannel webhooks are /webhooks/NAME and /webhooks/NAME/dlr.");
}

const struct channel_type channel_sms_kannel = {
	.name = "sms-kannel",
	.kind = "sms",
	.keys = sms_kannel_keys,
	.nkeys = nitems(sms_kannel_keys),
	.create = sms_kannel_create,
	.start = sms_kannel_start,
	.stop = sms_kannel_stop,
	.destroy = sms_kannel_destroy,
	.send = sms_kannel_send,
	.inbound = sms_kannel_inbound,
};
