/*
 * wa-emu.c: an emulator of Meta's WhatsApp Business Cloud API for linbat's
 * tests, benchmarks and demo. It answers sends (POST /{version}/{pnid}/
 * messages) with the documented success or Graph API error body, serves
 * media the two-step way (GET /{version}/{media_id}, then the signed URL),
 * and posts status and inbound webhooks signed with X-Hub-Signature-256 to
 * linbatd. A control API under /_emu/ (loopback peers only) injects faults,
 * reports counts, registers media and triggers inbound messages. README.md
 * in this folder documents the shapes.
 *
 * Its event loops never block, so that a benchmark measures linbatd and not
 * the emulator; --threads runs several, one lock guarding the shared state.
 * It does not use linbat's util layer on purpose: a test double sharing the
 * HMAC or JSON helpers of the code under test would agree with that code
 * when both are wrong.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define EMU_UNUSED		__attribute__((unused))
#define EMU_MAX_BODY		(32 * 1024 * 1024)
#define EMU_FLUSH_MS		100
#define EMU_MEDIA_TTL		300	/* seconds a media URL lives, as Meta's */
#define EMU_MAX_KINDS		16
#define EMU_MAX_CODES		64
#define EMU_MAX_SEGS		6
#define EMU_HOOK_CONNS_MAX	64
#define EMU_MAX_THREADS		16
#define EMU_KIND_5XX		(-1)	/* picks 500 (code 1) or 503 (code 2) */
#define EMU_KIND_RESET		(-2)	/* connection reset, no answer, not accepted */
#define EMU_KIND_TIMEOUT	(-3)	/* accepted, answered only after hold_ms */
#define EMU_BODY_MAX_CHARS	4096
#define EMU_OPAQUE_MAX_CHARS	512

/* One Graph API error as Cloud API returns it. */
struct emu_error {
	int		 code;
	int		 http;
	int		 subcode;	/* 0: omitted (deprecated since v16.0) */
	const char	*message;
	const char	*details;	/* NULL: no error_data */
};

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

static const struct emu_error emu_bad_token = {
	190, 401, 0, "Invalid OAuth access token - Cannot parse access token", NULL
};

/* Injected faults, replaced as a whole by POST /_emu/faults. */
struct emu_faults {
	double		 fail_rate;
	int		 kinds[EMU_MAX_KINDS];	/* error codes or EMU_KIND_5XX */
	size_t		 nkinds;
	int		 retry_after;
	int		 delay_ms;
	int		 hold_ms;		/* answer delay of "timeout" */
	json_t		*per_recipient;		/* "to" -> error code; owned */
};

struct emu_count {
	int		 code;
	uint64_t	 n;
};

/* A media object: bytes registered by a test, served by id. */
struct emu_media {
	TAILQ_ENTRY(emu_media)	 entry;
	char			 id[24];
	char			*mime;
	unsigned char		*data;
	size_t			 len;
	char			 sha256[65];
};

struct emu_worker;

/* The status webhooks (sent, delivered, read) of one accepted send. */
struct emu_job {
	TAILQ_ENTRY(emu_job)	 entry;
	struct emu_worker	*w;		/* whose loop runs the timer */
	struct event		*ev;
	int			 step;
	int			 is_template;
	int			 legacy;	/* version < v24.0: has conversation */
	time_t			 accepted_at;
	char			*wamid;
	char			*wa_id;
	char			*pnid;
	char			*biz;		/* NULL when the send had none */
};

/* A request answered later: a delayed send reply or an inbound in flight. */
struct emu_held {
	TAILQ_ENTRY(emu_held)	 entry;
	struct emu_worker	*w;		/* whose server got the request */
	struct evhttp_request	*req;
	struct event		*ev;		/* delay timer; NULL for inbound */
	int			 status;
	int			 retry_after;
	char			*body;		/* reply body, or the inbound id */
	struct emu_job		*job;		/* started once the reply is out */
};

/* A send request once validated; pointers borrow from the parsed JSON. */
struct emu_send {
	const char	*to;
	const char	*type;
	json_t		*content;
	const char	*biz;
	int		 is_template;
	char		 wa_id[24];
	const char	*version;
	const char	*pnid;
};

/* A route of the HTTP server; "*" matches any one non-empty segment. */
struct emu_route {
	enum evhttp_cmd_type	 method;
	const char		*segs[EMU_MAX_SEGS];
	int			 nsegs;
	void			 (*fn)(struct evhttp_request *, char **);
	int			 control;
};

/* One event loop: its HTTP server, webhook connections and pending work. */
struct emu_worker {
	pthread_t		 tid;
	struct event_base	*base;
	struct evhttp		*http;
	struct evhttp_connection *hook_conns[EMU_HOOK_CONNS_MAX];
	unsigned		 hook_next;
	uint64_t		 njobs;
	TAILQ_HEAD(, emu_job)	 jobs;
	TAILQ_HEAD(, emu_held)	 held;
};

/*
 * The emulator's state. Every callback runs with lock held (recursive: a
 * webhook POST may call its callback at once), so the code reads as if
 * single-threaded; only the HTTP I/O of the workers runs in parallel.
 */
static struct {
	pthread_mutex_t		 lock;
	struct emu_worker	 workers[EMU_MAX_THREADS];
	int			 nworkers;
	struct event_base	*base;		/* worker 0's: signals, flush */
	int			 port;
	const char		*token;
	const char		*waba_id;
	const char		*display_phone;
	const char		*phone_number_id;
	FILE			*record;
	int			 record_dirty;
	struct event		*flush_ev;
	struct event		*sig_ev[2];
	struct evhttp_uri	*hook_uri;
	char			*hook_path;
	char			*hook_host;
	const char		*app_secret;
	int			 hook_nconns;	/* per worker */
	int			 status_delay_ms;
	struct emu_faults	 faults;
	uint64_t		 received, accepted, failed;
	uint64_t		 resets, timeouts;
	uint64_t		 hooks_posted, hooks_failed, nmedia;
	struct emu_count	 codes[EMU_MAX_CODES];
	size_t			 ncodes;
	uint64_t		 seq, salt, rng;
	unsigned char		 key[32];
	TAILQ_HEAD(, emu_media)	 media;
	int			 stopping;
} emu;

/* The worker whose loop runs on this thread. */
static __thread struct emu_worker *emu_self;

static char emu_errbuf[512];

/* Take the emulator's lock (every callback does, first). */
static void
emu_lock(void)
{
	pthread_mutex_lock(&emu.lock);
}

/* Release the emulator's lock. */
static void
emu_unlock(void)
{
	pthread_mutex_unlock(&emu.lock);
}

/* Print a whole-sentence log line on stderr. */
static void __attribute__((format(printf, 1, 2)))
emu_log(const char *fmt, ...)
{
	va_list ap;

	fputs("wa-emu: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Log and exit with status 1 (start-up errors only). */
static void __attribute__((format(printf, 1, 2), noreturn))
emu_fatal(const char *fmt, ...)
{
	va_list ap;

	fputs("wa-emu: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Allocate zeroed memory or die. */
static void *
emu_calloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL)
		abort();
	return p;
}

/* Copy a string or die; NULL stays NULL. */
static char *
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
static int64_t
emu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A timeval of ms milliseconds. */
static struct timeval
emu_tv(int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	return tv;
}

/* A fast non-cryptographic random number (xorshift64*) for fault rates. */
static uint64_t
emu_rand(void)
{
	emu.rng ^= emu.rng >> 12;
	emu.rng ^= emu.rng << 25;
	emu.rng ^= emu.rng >> 27;
	return emu.rng * 2685821657736338717ULL;
}

/* A uniform random number in [0, 1). */
static double
emu_rand01(void)
{
	return (double)(emu_rand() >> 11) / 9007199254740992.0;
}

/* Lower-case hex of n bytes into out (2n + 1 bytes). */
static void
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
static void
emu_hmac_hex(const void *key, size_t keylen, const void *data, size_t len,
    char *out)
{
	unsigned char mac[32];
	unsigned int maclen = sizeof mac;

	HMAC(EVP_sha256(), key, (int)keylen, data, len, mac, &maclen);
	emu_hex(mac, sizeof mac, out);
}

/* Constant-time string equality (only the length leaks). */
static int
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
static void
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
static void
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
static char *
emu_dumps(json_t *j)
{
	char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	/* NULL only when a value was not UTF-8 (a raw path, a header). */
	return s != NULL ? s : emu_strdup("{}");
}

/* Reply with a JSON value (stolen). */
static void
emu_reply_json(struct evhttp_request *req, int status, json_t *j)
{
	char *body = emu_dumps(j);

	emu_reply(req, status, body, 0);
	free(body);
}

/* Reply to a control call with {"error": why}. */
static void
emu_reply_control_error(struct evhttp_request *req, int status, const char *why)
{
	emu_reply_json(req, status, json_pack("{s:s}", "error", why));
}

/* The table entry for an error code, or a generic one for unknown codes. */
static const struct emu_error *
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
static const struct emu_error * __attribute__((format(printf, 4, 5)))
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
static char *
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
static void
emu_reply_error(struct evhttp_request *req, const struct emu_error *e)
{
	char *body = emu_error_body(e);

	emu_reply(req, e->http, body, 0);
	free(body);
}

/* Whether the request carries "Authorization: Bearer <the token>". */
static int
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
static int
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
static json_t *
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
static int
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
static void
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
static void
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
static void
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
static struct emu_job *
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
static void
emu_job_start(struct emu_job *job)
{
	struct timeval tv = emu_tv(emu.status_delay_ms);

	if (job != NULL)
		evtimer_add(job->ev, &tv);
}

/* Free a held request's state (never the request: libevent owns it). */
static void
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
static struct emu_held *
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
static int
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
static void
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

/* The media object with this id, or NULL. */
static struct emu_media *
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
static void
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
static void
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
static void
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

/* Parse one fault kind ("5xx", "500", "503", "429", "reset", "timeout" or an error code). */
static int
emu_fault_kind(json_t *v)
{
	const char *s = json_string_value(v);
	char *end;
	long code;

	if (json_is_integer(v))
		return json_integer_value(v) > 0 && json_integer_value(v) < 10000000 ?
		    (int)json_integer_value(v) : 0;
	if (s == NULL)
		return 0;
	if (strcmp(s, "5xx") == 0)
		return EMU_KIND_5XX;
	if (strcmp(s, "reset") == 0)
		return EMU_KIND_RESET;
	if (strcmp(s, "timeout") == 0)
		return EMU_KIND_TIMEOUT;
	if (strcmp(s, "500") == 0)
		return 1;
	if (strcmp(s, "503") == 0)
		return 2;
	if (strcmp(s, "429") == 0)
		return 130429;
	code = strtol(s, &end, 10);
	return *end == '\0' && code > 0 && code < 10000000 ? (int)code : 0;
}

/* Read an integer member in [lo, hi] into out; absent keeps out. */
static int
emu_json_int(json_t *j, const char *key, int lo, int hi, int *out)
{
	json_t *v = json_object_get(j, key);

	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi)
		return -1;
	*out = (int)json_integer_value(v);
	return 0;
}

/* Check that every member of per_recipient maps to a positive code. */
static int
emu_faults_recipients_ok(json_t *pr)
{
	const char *k;
	json_t *v;

	if (!json_is_object(pr))
		return 0;
	json_object_foreach(pr, k, v) {
		if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
		    json_integer_value(v) >= 10000000)
			return 0;
	}
	return 1;
}

/* The first member of j whose name is not in keys, or NULL. */
static const char *
emu_json_unknown_key(json_t *j, const char **keys, size_t nkeys)
{
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach(j, k, v) {
		for (i = 0; i < nkeys; i++) {
			if (strcmp(k, keys[i]) == 0)
				break;
		}
		if (i == nkeys)
			return k;
	}
	return NULL;
}

/* Parse a fault document into f; the reason for a refusal goes to why. */
static int
emu_faults_parse(json_t *j, struct emu_faults *f, const char **why)
{
	static const char *keys[] = { "fail_rate", "fail_kinds", "retry_after",
	    "delay_ms", "hold_ms", "per_recipient" };
	json_t *v, *kinds = json_object_get(j, "fail_kinds");
	const char *k;
	size_t i;

	*why = "faults must be a JSON object";
	if (!json_is_object(j))
		return -1;
	if ((k = emu_json_unknown_key(j, keys, sizeof keys / sizeof keys[0]))) {
		snprintf(emu_errbuf, sizeof emu_errbuf, "unknown key %.64s", k);
		*why = emu_errbuf;
		return -1;
	}
	v = json_object_get(j, "fail_rate");
	*why = "fail_rate must be a number from 0 to 1";
	if (v != NULL && (!json_is_number(v) || json_number_value(v) < 0 ||
	    json_number_value(v) > 1))
		return -1;
	f->fail_rate = v != NULL ? json_number_value(v) : 0;
	*why = "fail_kinds must be a list of \"5xx\", \"429\", \"500\", \"503\", "
	    "\"reset\", \"timeout\" or error codes";
	if (kinds != NULL && (!json_is_array(kinds) ||
	    json_array_size(kinds) > EMU_MAX_KINDS))
		return -1;
	json_array_foreach(kinds, i, v) {
		if ((f->kinds[i] = emu_fault_kind(v)) == 0)
			return -1;
		f->nkinds = i + 1;
	}
	*why = "retry_after must be 0 to 86400, delay_ms and hold_ms 0 to 600000";
	f->hold_ms = 60000;
	if (emu_json_int(j, "retry_after", 0, 86400, &f->retry_after) != 0 ||
	    emu_json_int(j, "delay_ms", 0, 600000, &f->delay_ms) != 0 ||
	    emu_json_int(j, "hold_ms", 0, 600000, &f->hold_ms) != 0)
		return -1;
	v = json_object_get(j, "per_recipient");
	*why = "per_recipient must map recipients to positive error codes";
	if (v != NULL && !emu_faults_recipients_ok(v))
		return -1;
	f->per_recipient = json_deep_copy(v);
	return 0;
}

/* The faults in force as JSON. */
static json_t *
emu_faults_json(void)
{
	struct emu_faults *f = &emu.faults;
	json_t *kinds = json_array();
	char num[16];
	size_t i;

	for (i = 0; i < f->nkinds; i++) {
		if (f->kinds[i] == EMU_KIND_5XX)
			snprintf(num, sizeof num, "5xx");
		else if (f->kinds[i] == EMU_KIND_RESET)
			snprintf(num, sizeof num, "reset");
		else if (f->kinds[i] == EMU_KIND_TIMEOUT)
			snprintf(num, sizeof num, "timeout");
		else
			snprintf(num, sizeof num, "%d", f->kinds[i]);
		json_array_append_new(kinds, json_string(num));
	}
	return json_pack("{s:f, s:o, s:i, s:i, s:i, s:o}", "fail_rate", f->fail_rate,
	    "fail_kinds", kinds, "retry_after", f->retry_after, "delay_ms",
	    f->delay_ms, "hold_ms", f->hold_ms, "per_recipient", f->per_recipient != NULL ?
	    json_incref(f->per_recipient) : json_object());
}

/* Drop every injected fault. */
static void
emu_faults_clear(void)
{
	json_decref(emu.faults.per_recipient);
	memset(&emu.faults, 0, sizeof emu.faults);
}

/* POST /_emu/faults: replace the injected faults. */
static void
emu_faults_set(struct evhttp_request *req, EMU_UNUSED char **seg)
{
	struct emu_faults f;
	json_t *j = emu_body_json(req);
	const char *why;

	memset(&f, 0, sizeof f);
	if (emu_faults_parse(j, &f, &why) != 0) {
		json_decref(f.per_recipient);
		emu_reply_control_error(req, 400, why);
	} else {
		emu_faults_clear();
		emu.faults = f;
		emu_log("Faults set. fail_rate=%g kinds=%zu delay_ms=%d",
		    f.fail_rate, f.nkinds, f.delay_ms);
		emu_reply_json(req, 200, emu_faults_json());
	}
	json_decref(j);
}

/* GET /_emu/faults: the faults in force. */
static void
emu_faults_get(struct evhttp_request *req, EMU_UNUSED char **seg)
{
	emu_reply_json(req, 200, emu_faults_json());
}

/* GET /_emu/stats: counts since start or the last reset. */
static void
emu_stats_get(struct evhttp_request *req, EMU_UNUSED char **seg)
{
	json_t *by = json_object();
	uint64_t pending = 0;
	char key[16];
	size_t i;

	for (i = 0; i < (size_t)emu.nworkers; i++)
		pending += emu.workers[i].njobs;
	for (i = 0; i < emu.ncodes; i++) {
		snprintf(key, sizeof key, "%d", emu.codes[i].code);
		json_object_set_new(by, key, json_integer((json_int_t)emu.codes[i].n));
	}
	emu_reply_json(req, 200, json_pack("{s:I, s:I, s:I, s:I, s:I, s:o, "
	    "s:{s:I, s:I, s:I}, s:I}", "received", (json_int_t)emu.received,
	    "accepted", (json_int_t)emu.accepted, "failed", (json_int_t)emu.failed,
	    "resets", (json_int_t)emu.resets, "timeouts", (json_int_t)emu.timeouts,
	    "by_code", by, "webhooks", "posted", (json_int_t)emu.hooks_posted,
	    "failed", (json_int_t)emu.hooks_failed, "pending",
	    (json_int_t)pending, "media", (json_int_t)emu.nmedia));
}

/* POST /_emu/reset: clear counts, faults and the record file. */
static void
emu_reset(struct evhttp_request *req, EMU_UNUSED char **seg)
{
	emu.received = emu.accepted = emu.failed = 0;
	emu.resets = emu.timeouts = 0;
	emu.hooks_posted = emu.hooks_failed = 0;
	emu.ncodes = 0;
	emu_faults_clear();
	emu_record_truncate();
	emu_reply_json(req, 200, json_pack("{s:b}", "ok", 1));
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
static void
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

static const struct emu_route emu_routes[] = {
	{ EVHTTP_REQ_POST, { "*", "*", "messages" }, 3, emu_send, 0 },
	{ EVHTTP_REQ_GET, { "*", "*" }, 2, emu_media_get, 0 },
	{ EVHTTP_REQ_GET, { "_emu", "media", "*" }, 3, emu_media_bytes, 0 },
	{ EVHTTP_REQ_POST, { "_emu", "faults" }, 2, emu_faults_set, 1 },
	{ EVHTTP_REQ_GET, { "_emu", "faults" }, 2, emu_faults_get, 1 },
	{ EVHTTP_REQ_GET, { "_emu", "stats" }, 2, emu_stats_get, 1 },
	{ EVHTTP_REQ_POST, { "_emu", "reset" }, 2, emu_reset, 1 },
	{ EVHTTP_REQ_POST, { "_emu", "media" }, 2, emu_media_add, 1 },
	{ EVHTTP_REQ_POST, { "_emu", "inbound" }, 2, emu_inbound, 1 },
};

/* Split a path into at most EMU_MAX_SEGS segments (in buf); -1 if longer. */
static int
emu_split(const char *path, char *buf, size_t buflen, char **seg)
{
	int n = 0;
	char *p;

	if (path == NULL || strlen(path) >= buflen)
		return -1;
	strcpy(buf, path[0] == '/' ? path + 1 : path);
	if (buf[0] == '\0')
		return 0;
	for (p = buf; n < EMU_MAX_SEGS; p++) {
		seg[n++] = p;
		if ((p = strchr(p, '/')) == NULL)
			return n;
		*p = '\0';
	}
	return -1;
}

/* Whether a route matches a method and split path. */
static int
emu_route_match(const struct emu_route *r, enum evhttp_cmd_type method,
    char **seg, int nseg)
{
	int i;

	if (r->method != method || r->nsegs != nseg)
		return 0;
	for (i = 0; i < nseg; i++) {
		if (strcmp(r->segs[i], "*") != 0) {
			if (strcmp(r->segs[i], seg[i]) != 0)
				return 0;
		} else if (seg[i][0] == '\0' || strcmp(seg[i], "_emu") == 0)
			return 0;	/* "*" never stands for the control API */
	}
	return 1;
}

/* The server's one callback: find the route and call it. */
static void
emu_dispatch(struct evhttp_request *req, EMU_UNUSED void *arg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	char buf[1024], *seg[EMU_MAX_SEGS];
	int nseg = emu_split(path, buf, sizeof buf, seg);
	size_t i;

	emu_lock();
	for (i = 0; nseg > 0 && i < sizeof emu_routes / sizeof emu_routes[0]; i++) {
		if (emu_route_match(&emu_routes[i], method, seg, nseg))
			break;
	}
	if (nseg > 0 && i < sizeof emu_routes / sizeof emu_routes[0]) {
		if (emu_routes[i].control && !emu_peer_is_loopback(req))
			emu_reply_control_error(req, 403, "control API is loopback only");
		else
			emu_routes[i].fn(req, seg);
	} else if (nseg > 0 && strcmp(seg[0], "_emu") == 0)
		emu_reply_control_error(req, 404, "no such control endpoint");
	else
		emu_reply_error(req, emu_error_fmt(2500, 0, NULL, "Unknown path "
		    "components: %.200s", path != NULL ? path : ""));
	emu_unlock();
}

/* Open the webhook target and its pool of keep-alive connections. */
static void
emu_hook_init(const char *url, int nconns)
{
	const char *host, *path, *query;
	int port, i, n;
	char buf[512];

	if ((emu.hook_uri = evhttp_uri_parse(url)) == NULL ||
	    (host = evhttp_uri_get_host(emu.hook_uri)) == NULL ||
	    evhttp_uri_get_scheme(emu.hook_uri) == NULL ||
	    strcmp(evhttp_uri_get_scheme(emu.hook_uri), "http") != 0)
		emu_fatal("--webhook must be an http:// URL: %s", url);
	if (strcmp(host, "127.0.0.1") != 0 && strcmp(host, "localhost") != 0 &&
	    strcmp(host, "::1") != 0)
		emu_fatal("--webhook must be on loopback: %s", url);
	port = evhttp_uri_get_port(emu.hook_uri);
	port = port > 0 ? port : 80;
	path = evhttp_uri_get_path(emu.hook_uri);
	query = evhttp_uri_get_query(emu.hook_uri);
	snprintf(buf, sizeof buf, "%s%s%s", path != NULL && *path ? path : "/",
	    query != NULL ? "?" : "", query != NULL ? query : "");
	emu.hook_path = emu_strdup(buf);
	snprintf(buf, sizeof buf, "%s:%d", host, port);
	emu.hook_host = emu_strdup(buf);
	for (n = 0; n < emu.nworkers; n++) {
		for (i = 0; i < nconns; i++) {
			emu.workers[n].hook_conns[i] = evhttp_connection_base_new(
			    emu.workers[n].base, NULL, host, (ev_uint16_t)port);
			evhttp_connection_set_timeout(emu.workers[n].hook_conns[i], 10);
		}
	}
	emu.hook_nconns = nconns;
}

/* Whether a listen host is a loopback address. */
static int
emu_host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

/* Write the bound port to a file atomically (temporary file, then rename). */
static void
emu_write_port_file(const char *path, int port)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
	if ((f = fopen(tmp, "w")) == NULL)
		emu_fatal("Cannot write %s: %s.", tmp, strerror(errno));
	fprintf(f, "%d\n", port);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		emu_fatal("Cannot write %s: %s.", path, strerror(errno));
}

/* Bind the HTTP server to a loopback host:port (port 0: any free port). */
static void
emu_listen(const char *addr, const char *port_file)
{
	struct evhttp_bound_socket *bound;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof ss;
	char host[256], *colon;
	long port;
	int i, fd;

	if (strlen(addr) >= sizeof host || (colon = strrchr(addr, ':')) == NULL)
		emu_fatal("--listen must be HOST:PORT, not %s", addr);
	snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host) - 2);
		host[strlen(host) - 2] = '\0';
	}
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof host, "127.0.0.1");
	port = strtol(colon + 1, NULL, 10);
	if (!emu_host_is_loopback(host) || port < 0 || port > 65535)
		emu_fatal("--listen must be a loopback HOST:PORT, not %s", addr);
	bound = evhttp_bind_socket_with_handle(emu.workers[0].http, host,
	    (ev_uint16_t)port);
	if (bound == NULL)
		emu_fatal("Cannot listen on %s: %s.", addr, strerror(errno));
	fd = evhttp_bound_socket_get_fd(bound);
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0)
		emu_fatal("getsockname failed: %s.", strerror(errno));
	/* Other workers accept on duplicates: each listener closes its own. */
	for (i = 1; i < emu.nworkers; i++) {
		if (evhttp_accept_socket(emu.workers[i].http, dup(fd)) != 0)
			emu_fatal("Cannot share the listening socket: %s.",
			    strerror(errno));
	}
	emu.port = ntohs(ss.ss_family == AF_INET6 ?
	    ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port);
	if (port_file != NULL)
		emu_write_port_file(port_file, emu.port);
	printf("listening %d\n", emu.port);
	fflush(stdout);
}

/* Stop the loop on SIGTERM or SIGINT. */
static void
emu_on_signal(evutil_socket_t sig, EMU_UNUSED short what,
    EMU_UNUSED void *arg)
{
	emu_log("Stopping on signal %d.", (int)sig);
	event_base_loopexit(emu.base, NULL);
}

/* Free a stopped worker: its connections, pending work, server and loop. */
static void
emu_worker_free(struct emu_worker *w)
{
	int i;

	for (i = 0; i < emu.hook_nconns; i++)
		evhttp_connection_free(w->hook_conns[i]);
	while (!TAILQ_EMPTY(&w->held))
		emu_held_free(TAILQ_FIRST(&w->held));
	while (!TAILQ_EMPTY(&w->jobs))
		emu_job_free(TAILQ_FIRST(&w->jobs));
	evhttp_free(w->http);
	event_base_free(w->base);
}

/* Free everything and flush the record (the clean exit path). */
static void
emu_shutdown(void)
{
	struct emu_media *m;
	int i;

	emu.stopping = 1;
	event_free(emu.flush_ev);
	event_free(emu.sig_ev[0]);
	event_free(emu.sig_ev[1]);
	for (i = emu.nworkers - 1; i >= 0; i--)
		emu_worker_free(&emu.workers[i]);
	while ((m = TAILQ_FIRST(&emu.media)) != NULL) {
		TAILQ_REMOVE(&emu.media, m, entry);
		free(m->mime);
		free(m->data);
		free(m);
	}
	if (emu.record != NULL && fclose(emu.record) != 0)
		emu_log("Could not write the record file: %s.", strerror(errno));
	emu_faults_clear();
	if (emu.hook_uri != NULL)
		evhttp_uri_free(emu.hook_uri);
	free(emu.hook_path);
	free(emu.hook_host);
	pthread_mutex_destroy(&emu.lock);
	libevent_global_shutdown();
}

/* Print the usage and exit with status (0 for --help, 2 for misuse). */
static void __attribute__((noreturn))
emu_usage(int status)
{
	fprintf(status == 0 ? stdout : stderr,
	    "usage: wa-emu --listen 127.0.0.1:PORT [--token TOKEN] [--record FILE]\n"
	    "              [--webhook URL --app-secret SECRET] [--status-delay-ms N]\n"
	    "              [--port-file FILE] [--waba-id ID] [--phone-number-id ID]\n"
	    "              [--display-phone NUMBER] [--webhook-conns N] [--threads N]\n");
	exit(status);
}

static const struct option emu_options[] = {
	{ "listen", required_argument, NULL, 'l' },
	{ "token", required_argument, NULL, 't' },
	{ "record", required_argument, NULL, 'r' },
	{ "webhook", required_argument, NULL, 'w' },
	{ "app-secret", required_argument, NULL, 's' },
	{ "status-delay-ms", required_argument, NULL, 'd' },
	{ "port-file", required_argument, NULL, 'p' },
	{ "waba-id", required_argument, NULL, 'W' },
	{ "phone-number-id", required_argument, NULL, 'P' },
	{ "display-phone", required_argument, NULL, 'D' },
	{ "webhook-conns", required_argument, NULL, 'c' },
	{ "threads", required_argument, NULL, 'T' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Parse an integer option in [lo, hi] or exit with the usage. */
static int
emu_opt_int(const char *name, const char *s, int lo, int hi)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "wa-emu: --%s must be an integer from %d to %d\n",
		    name, lo, hi);
		emu_usage(2);
	}
	return (int)v;
}

/* Seed the fault PRNG, the wamid salt and the URL-signing key. */
static void
emu_seed(void)
{
	uint64_t r[2];

	if (RAND_bytes((unsigned char *)r, sizeof r) != 1 ||
	    RAND_bytes(emu.key, sizeof emu.key) != 1)
		emu_fatal("Cannot get random bytes from OpenSSL.");
	emu.salt = r[0];
	emu.rng = r[1] | 1;
}

/* Open the record file (truncated) with a large buffer. */
static void
emu_record_open(const char *path)
{
	struct timeval tv = emu_tv(EMU_FLUSH_MS);

	if ((emu.record = fopen(path, "w")) == NULL)
		emu_fatal("Cannot open the record file %s: %s.", path,
		    strerror(errno));
	setvbuf(emu.record, NULL, _IOFBF, 1 << 20);
	emu.flush_ev = event_new(emu.base, -1, EV_PERSIST, emu_record_flush, NULL);
	evtimer_add(emu.flush_ev, &tv);
}

/* Create a worker's event loop and HTTP server. */
static void
emu_worker_init(struct emu_worker *w)
{
	struct event_config *cfg = event_config_new();

	/*
	 * Coalesce evhttp's read/write toggles: half the epoll_ctl calls. Only
	 * with one worker: libevent warns against it with dup()ed fds (workers
	 * share the listener so), and a deferred epoll_ctl on a closed fd would
	 * race with another thread reusing the number.
	 */
	if (emu.nworkers == 1)
		event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	w->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (w->base == NULL || (w->http = evhttp_new(w->base)) == NULL)
		emu_fatal("Cannot create an event loop.");
	evhttp_set_max_body_size(w->http, EMU_MAX_BODY);
	evhttp_set_timeout(w->http, 60);
	evhttp_set_gencb(w->http, emu_dispatch, NULL);
	TAILQ_INIT(&w->jobs);
	TAILQ_INIT(&w->held);
}

/* Set up the lock, the workers, the server, signals and timers. */
static void
emu_start(const char *addr, const char *port_file, const char *record,
    const char *webhook, int nconns)
{
	pthread_mutexattr_t attr;
	int i;

	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&emu.lock, &attr);
	pthread_mutexattr_destroy(&attr);
	/* One worker needs no locks in libevent (nor their cost). */
	if (emu.nworkers > 1 && evthread_use_pthreads() != 0)
		emu_fatal("Cannot enable libevent's thread support.");
	for (i = 0; i < emu.nworkers; i++)
		emu_worker_init(&emu.workers[i]);
	emu.base = emu.workers[0].base;
	emu_self = &emu.workers[0];
	emu_listen(addr, port_file);
	if (record != NULL)
		emu_record_open(record);
	else
		emu.flush_ev = event_new(emu.base, -1, 0, emu_record_flush, NULL);
	if (webhook != NULL)
		emu_hook_init(webhook, nconns);
	emu.sig_ev[0] = evsignal_new(emu.base, SIGTERM, emu_on_signal, NULL);
	emu.sig_ev[1] = evsignal_new(emu.base, SIGINT, emu_on_signal, NULL);
	evsignal_add(emu.sig_ev[0], NULL);
	evsignal_add(emu.sig_ev[1], NULL);
	emu_log("Listening. addr=127.0.0.1:%d threads=%d record=%s webhook=%s",
	    emu.port, emu.nworkers, record != NULL ? record : "-",
	    webhook != NULL ? webhook : "-");
}

/* Run one worker's loop on its own thread. */
static void *
emu_worker_run(void *arg)
{
	emu_self = arg;
	event_base_dispatch(emu_self->base);
	return NULL;
}

/* Run every worker until a signal stops the first, then stop the others. */
static void
emu_run(void)
{
	int i;

	for (i = 1; i < emu.nworkers; i++) {
		if (pthread_create(&emu.workers[i].tid, NULL, emu_worker_run,
		    &emu.workers[i]) != 0)
			emu_fatal("Cannot start a worker thread.");
	}
	event_base_dispatch(emu.base);
	for (i = 1; i < emu.nworkers; i++) {
		event_base_loopexit(emu.workers[i].base, NULL);
		pthread_join(emu.workers[i].tid, NULL);
	}
}

int
main(int argc, char **argv)
{
	const char *addr = NULL, *port_file = NULL, *record = NULL;
	const char *webhook = NULL;
	int c, nconns = 8;

	emu.waba_id = "102290129340398";
	emu.phone_number_id = "106540352242922";
	emu.display_phone = "6281100000000";
	emu.status_delay_ms = 100;
	emu.nworkers = 1;
	TAILQ_INIT(&emu.media);
	while ((c = getopt_long(argc, argv, "h", emu_options, NULL)) != -1) {
		switch (c) {
		case 'l': addr = optarg; break;
		case 't': emu.token = optarg; break;
		case 'r': record = optarg; break;
		case 'w': webhook = optarg; break;
		case 's': emu.app_secret = optarg; break;
		case 'p': port_file = optarg; break;
		case 'W': emu.waba_id = optarg; break;
		case 'P': emu.phone_number_id = optarg; break;
		case 'D': emu.display_phone = optarg; break;
		case 'd':
			emu.status_delay_ms = emu_opt_int("status-delay-ms", optarg,
			    -1, 3600000);
			break;
		case 'c':
			nconns = emu_opt_int("webhook-conns", optarg, 1,
			    EMU_HOOK_CONNS_MAX);
			break;
		case 'T':
			emu.nworkers = emu_opt_int("threads", optarg, 1,
			    EMU_MAX_THREADS);
			break;
		case 'h': emu_usage(0);
		default: emu_usage(2);
		}
	}
	if (addr == NULL || optind != argc || (webhook != NULL) !=
	    (emu.app_secret != NULL))
		emu_usage(2);
	signal(SIGPIPE, SIG_IGN);
	emu_seed();
	emu_start(addr, port_file, record, webhook, nconns);
	emu_run();
	emu_shutdown();
	return 0;
}
