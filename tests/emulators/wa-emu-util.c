/*
 * wa-emu-util.c: what the rest of wa-emu calls on: the lock, log lines,
 * allocation, clocks, randomness, hex and HMAC, Graph API ids, HTTP replies
 * with Meta's headers, the Graph API errors and their bodies, and checks of
 * a request (its token, its peer, its JSON body, its API version).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "wa-emu.h"

char emu_errbuf[512];

static const struct emu_error emu_errors[] = {
	{ 1, 500, 0, "An unknown error occurred", NULL },
	{ 2, 503, 0, "Service temporarily unavailable", NULL },
	{ 100, 400, 0, "(#100) Invalid parameter", NULL },
	{ 190, 401, 463, "Error validating access token: Session has expired.",
	  NULL },
	{ 130429, 429, 0, "(#130429) Rate limit hit",
	  "Cloud API message throughput has been reached." },
	{ 131000, 500, 0, "(#131000) Something went wrong",
	  "Message failed to send due to an unknown error." },
	{ 131026, 400, 0, "(#131026) Message undeliverable",
	  "Unable to deliver message. Reasons can include: the recipient phone "
	  "number is not a WhatsApp phone number; the recipient has not accepted "
	  "the new Terms of Service; the recipient uses an old WhatsApp version." },
	{ 131047, 400, 0, "(#131047) Re-engagement message",
	  "Message failed to send because more than 24 hours have passed since "
	  "the customer last replied to this number." },
	{ 131048, 400, 0, "(#131048) Spam rate limit hit",
	  "Message failed to send because there are restrictions on how many "
	  "messages can be sent from this phone number." },
	{ 131049, 400, 0, "(#131049) This message was not delivered to maintain "
	  "healthy ecosystem engagement.",
	  "In order to maintain a healthy ecosystem engagement, the message "
	  "failed to be delivered." },
	{ 131051, 400, 0, "(#131051) Unsupported message type",
	  "Message type is not currently supported." },
	{ 131056, 400, 2494071,
	  "(#131056) (Business Account, Consumer Account) pair rate limit hit",
	  "Message failed to send because there were too many messages sent from "
	  "this phone number to the same phone number in a short period of time." },
	{ 132001, 404, 0, "(#132001) Template name does not exist in the translation",
	  "template name does not exist in the translation" },
};

const struct emu_error emu_bad_token = {
	190, 401, 0, "Invalid OAuth access token - Cannot parse access token", NULL
};

/* Take the emulator's lock (every callback does, first). */
void
emu_lock(void)
{
	pthread_mutex_lock(&emu.lock);
}

/* Release the emulator's lock. */
void
emu_unlock(void)
{
	pthread_mutex_unlock(&emu.lock);
}

/* Print a whole-sentence log line on stderr, from a va_list. */
static void __attribute__((format(printf, 1, 0)))
emu_vlog(const char *fmt, va_list ap)
{
	fputs("wa-emu: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

/* Print a whole-sentence log line on stderr. */
void __attribute__((format(printf, 1, 2)))
emu_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emu_vlog(fmt, ap);
	va_end(ap);
}

/* Log and exit with status 1 (start-up errors only). */
void __attribute__((format(printf, 1, 2), noreturn))
emu_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emu_vlog(fmt, ap);
	va_end(ap);
	exit(1);
}

/* Allocate zeroed memory or die. */
void *
emu_calloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL)
		abort();
	return p;
}

/* Copy a string or die; NULL stays NULL. */
char *
emu_strdup(const char *s)
{
	char *p;

	if (s == NULL)
		return NULL;
	if ((p = strdup(s)) == NULL)
		abort();
	return p;
}

/* Wall-clock milliseconds since the epoch. */
int64_t
emu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A timeval of ms milliseconds. */
struct timeval
emu_tv(int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	return tv;
}

/* A fast non-cryptographic random number (xorshift64*) for fault rates. */
uint64_t
emu_rand(void)
{
	emu.rng ^= emu.rng >> 12;
	emu.rng ^= emu.rng << 25;
	emu.rng ^= emu.rng >> 27;
	return emu.rng * 2685821657736338717ULL;
}

/* A uniform random number in [0, 1). */
double
emu_rand01(void)
{
	return (double)(emu_rand() >> 11) / 9007199254740992.0;
}

/* Lower-case hex of n bytes into out (2n + 1 bytes). */
void
emu_hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Hex HMAC-SHA256 of data under key into out (65 bytes). */
void
emu_hmac_hex(const void *key, size_t keylen, const void *data, size_t len,
    char *out)
{
	unsigned char mac[32];
	unsigned int maclen = sizeof mac;

	HMAC(EVP_sha256(), key, (int)keylen, data, len, mac, &maclen);
	emu_hex(mac, sizeof mac, out);
}

/* Constant-time string equality (only the length leaks). */
int
emu_streq_ct(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	return la == lb && CRYPTO_memcmp(a, b, la) == 0;
}

/* A random Graph API fbtrace_id (27 characters). */
static void
emu_trace_id(char out[28])
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
	int i;

	for (i = 0; i < 27; i++)
		out[i] = alphabet[emu_rand() & 63];
	out[27] = '\0';
}

/* A message id unique across runs: "wamid." and base64 of wa_id+salt+seq. */
void
emu_wamid(const char *wa_id, char *out, size_t outlen)
{
	unsigned char raw[48], b64[72];
	int n;

	n = snprintf((char *)raw, sizeof raw, "%.20s%016" PRIX64, wa_id,
	    emu.salt + ++emu.seq);
	EVP_EncodeBlock(b64, raw, n);
	snprintf(out, outlen, "wamid.%s", (char *)b64);
}

/* The HTTP reason phrase for the statuses the emulator answers with. */
static const char *
emu_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 409: return "Conflict";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return "Status";
	}
}

/* Send a JSON body with its status and the headers Meta sends with it. */
void
emu_reply(struct evhttp_request *req, int status, const char *body,
    int retry_after)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char num[16];

	evhttp_add_header(h, "Content-Type", "application/json; charset=UTF-8");
	if (status == 401)
		evhttp_add_header(h, "WWW-Authenticate", "OAuth \"Facebook Platform\" "
		    "\"invalid_token\" \"Invalid OAuth access token\"");
	if (status == 429 && retry_after > 0) {
		snprintf(num, sizeof num, "%d", retry_after);
		evhttp_add_header(h, "Retry-After", num);
	}
	evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	evhttp_send_reply(req, status, emu_reason(status), NULL);
}

/* Serialise a JSON value (stolen) compactly; never NULL (caller frees). */
char *
emu_dumps(json_t *j)
{
	char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	/* NULL only when a value was not UTF-8 (a raw path, a header). */
	return s != NULL ? s : emu_strdup("{}");
}

/* Reply with a JSON value (stolen). */
void
emu_reply_json(struct evhttp_request *req, int status, json_t *j)
{
	char *body = emu_dumps(j);

	emu_reply(req, status, body, 0);
	free(body);
}

/* Reply to a control call with {"error": why}. */
void
emu_reply_control_error(struct evhttp_request *req, int status, const char *why)
{
	emu_reply_json(req, status, json_pack("{s:s}", "error", why));
}

/* The table entry for an error code, or a generic one for unknown codes. */
const struct emu_error *
emu_error_get(int code)
{
	static struct emu_error other;
	size_t i;

	for (i = 0; i < sizeof emu_errors / sizeof emu_errors[0]; i++) {
		if (emu_errors[i].code == code)
			return &emu_errors[i];
	}
	snprintf(emu_errbuf, sizeof emu_errbuf, "(#%d) Emulated error", code);
	other.code = code;
	other.http = 400;
	other.subcode = 0;
	other.message = emu_errbuf;
	other.details = NULL;
	return &other;
}

/* An HTTP 400 error with a formatted message (a bad parameter or path). */
const struct emu_error * __attribute__((format(printf, 4, 5)))
emu_error_fmt(int code, int subcode, const char *details, const char *fmt, ...)
{
	static struct emu_error e;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(emu_errbuf, sizeof emu_errbuf, fmt, ap);
	va_end(ap);
	e.code = code;
	e.http = 400;
	e.subcode = subcode;
	e.message = emu_errbuf;
	e.details = details;
	return &e;
}

/* The Graph API error body: {"error":{message,type,code,error_data,...}}. */
char *
emu_error_body(const struct emu_error *e)
{
	char trace[28];
	json_t *err;

	emu_trace_id(trace);
	err = json_pack("{s:s, s:s, s:i}", "message", e->message,
	    "type", "OAuthException", "code", e->code);
	if (e->details != NULL)
		json_object_set_new(err, "error_data", json_pack("{s:s, s:s}",
		    "messaging_product", "whatsapp", "details", e->details));
	if (e->subcode != 0)
		json_object_set_new(err, "error_subcode", json_integer(e->subcode));
	json_object_set_new(err, "fbtrace_id", json_string(trace));
	return emu_dumps(json_pack("{s:o}", "error", err));
}

/* Reply with a Graph API error at once (not counted, not delayed). */
void
emu_reply_error(struct evhttp_request *req, const struct emu_error *e)
{
	char *body = emu_error_body(e);

	emu_reply(req, e->http, body, 0);
	free(body);
}

/* Whether the request carries "Authorization: Bearer <the token>". */
int
emu_authorized(struct evhttp_request *req)
{
	const char *h;

	h = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	for (h += 7; *h == ' '; h++)
		;
	if (*h == '\0')
		return 0;
	return emu.token == NULL || emu_streq_ct(h, emu.token);
}

/* Whether the peer of the request is on the loopback interface. */
int
emu_peer_is_loopback(struct evhttp_request *req)
{
	char *addr = NULL;
	ev_uint16_t port;

	evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr,
	    &port);
	if (addr == NULL)
		return 0;
	return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0 ||
	    strncmp(addr, "::ffff:127.", 11) == 0;
}

/* The request body parsed as JSON, or NULL. */
json_t *
emu_body_json(struct evhttp_request *req)
{
	struct evbuffer *b = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(b);
	const char *p;

	if (len == 0 || (p = (const char *)evbuffer_pullup(b, -1)) == NULL)
		return NULL;
	return json_loadb(p, len, 0, NULL);
}

/* The major number of a Graph API version ("v21.0" -> 21), or -1. */
int
emu_version_major(const char *v)
{
	char *end;
	long major;

	if (v[0] != 'v' || v[1] < '0' || v[1] > '9')
		return -1;
	major = strtol(v + 1, &end, 10);
	if (*end == '.' && end[1] >= '0' && end[1] <= '9')
		strtol(end + 1, &end, 10);
	return *end == '\0' && major < 1000 ? (int)major : -1;
}
