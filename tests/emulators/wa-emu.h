/*
 * wa-emu.h: what the files of wa-emu share: its limits, the types of its
 * state (the Graph API errors, faults, media, status jobs, held requests,
 * routes and workers), the one global state and the helpers each file calls
 * in another. wa-emu.c holds the state, the routes and start-up; the others
 * are named by what they serve. Nothing outside tests/emulators includes it.
 */
#ifndef WA_EMU_H
#define WA_EMU_H

#include <sys/queue.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

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
struct emu_state {
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
};

/* The emulator's state, defined in wa-emu.c. */
extern struct emu_state emu;
/* The worker whose loop runs on this thread. */
extern __thread struct emu_worker *emu_self;
/* Room for an error text made on the spot (one at a time, under the lock). */
extern char emu_errbuf[512];
/* The answer to a missing or wrong access token. */
extern const struct emu_error emu_bad_token;

/* wa-emu-util.c */
/* Take the emulator's lock (every callback does, first). */
void emu_lock(void);
/* Release the emulator's lock. */
void emu_unlock(void);
/* Print a whole-sentence log line on stderr. */
void emu_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log and exit with status 1 (start-up errors only). */
void emu_fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
/* Allocate zeroed memory or die. */
void *emu_calloc(size_t n, size_t size);
/* Copy a string or die; NULL stays NULL. */
char *emu_strdup(const char *s);
/* Wall-clock milliseconds since the epoch. */
int64_t emu_now_ms(void);
/* A timeval of ms milliseconds. */
struct timeval emu_tv(int ms);
/* A fast non-cryptographic random number (xorshift64*) for fault rates. */
uint64_t emu_rand(void);
/* A uniform random number in [0, 1). */
double emu_rand01(void);
/* Lower-case hex of n bytes into out (2n + 1 bytes). */
void emu_hex(const unsigned char *p, size_t n, char *out);
/* Hex HMAC-SHA256 of data under key into out (65 bytes). */
void emu_hmac_hex(const void *key, size_t keylen, const void *data, size_t len,
    char *out);
/* Constant-time string equality (only the length leaks). */
int emu_streq_ct(const char *a, const char *b);
/* A message id unique across runs: "wamid." and base64 of wa_id+salt+seq. */
void emu_wamid(const char *wa_id, char *out, size_t outlen);
/* Send a JSON body with its status and the headers Meta sends with it. */
void emu_reply(struct evhttp_request *req, int status, const char *body,
    int retry_after);
/* Serialise a JSON value (stolen) compactly; never NULL (caller frees). */
char *emu_dumps(json_t *j);
/* Reply with a JSON value (stolen). */
void emu_reply_json(struct evhttp_request *req, int status, json_t *j);
/* Reply to a control call with {"error": why}. */
void emu_reply_control_error(struct evhttp_request *req, int status,
    const char *why);
/* The table entry for an error code, or a generic one for unknown codes. */
const struct emu_error *emu_error_get(int code);
/* An HTTP 400 error with a formatted message (a bad parameter or path). */
const struct emu_error *emu_error_fmt(int code, int subcode,
    const char *details, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The Graph API error body: {"error":{message,type,code,error_data,...}}. */
char *emu_error_body(const struct emu_error *e);
/* Reply with a Graph API error at once (not counted, not delayed). */
void emu_reply_error(struct evhttp_request *req, const struct emu_error *e);
/* Whether the request carries "Authorization: Bearer <the token>". */
int emu_authorized(struct evhttp_request *req);
/* Whether the peer of the request is on the loopback interface. */
int emu_peer_is_loopback(struct evhttp_request *req);
/* The request body parsed as JSON, or NULL. */
json_t *emu_body_json(struct evhttp_request *req);
/* The major number of a Graph API version ("v21.0" -> 21), or -1. */
int emu_version_major(const char *v);

/* wa-emu-send.c */
/* Flush the record file every EMU_FLUSH_MS if it has new lines. */
void emu_record_flush(evutil_socket_t fd, short what, void *arg);
/* Empty the record file. */
void emu_record_truncate(void);
/* Free a held request's state (never the request: libevent owns it). */
void emu_held_free(struct emu_held *h);
/* A held request (in the held list) with an optional delay timer. */
struct emu_held *emu_held_new(struct evhttp_request *req, char *body,
    int delay_ms);
/* Copy the digits of a phone number (wa_id drops "+", spaces, dashes). */
int emu_wa_id(const char *to, char *out, size_t outlen);
/* POST /{version}/{phone_number_id}/messages: the send endpoint. */
void emu_send(struct evhttp_request *req, char **seg);

/* wa-emu-hook.c */
/* Free a status job and drop it from the list. */
void emu_job_free(struct emu_job *job);
/* A status job for an accepted send, or NULL when webhooks are off. */
struct emu_job *emu_job_new(const struct emu_send *s, const char *wamid);
/* Start a job's first status after status-delay-ms. */
void emu_job_start(struct emu_job *job);
/* POST /_emu/inbound: post a signed inbound message webhook to linbatd. */
void emu_inbound(struct evhttp_request *req, char **seg);

/* wa-emu-media.c */
/* The media object with this id, or NULL. */
struct emu_media *emu_media_find(const char *id);
/* POST /_emu/media: register bytes (body) of the request's Content-Type. */
void emu_media_add(struct evhttp_request *req, char **seg);
/* GET /{version}/{media_id}: the media URL and its metadata. */
void emu_media_get(struct evhttp_request *req, char **seg);
/* GET /_emu/media/{id}?exp=..&sig=..: the bytes, with the same Bearer. */
void emu_media_bytes(struct evhttp_request *req, char **seg);

/* wa-emu-control.c */
/* The first member of j whose name is not in keys, or NULL. */
const char *emu_json_unknown_key(json_t *j, const char **keys, size_t nkeys);
/* Drop every injected fault. */
void emu_faults_clear(void);
/* POST /_emu/faults: replace the injected faults. */
void emu_faults_set(struct evhttp_request *req, char **seg);
/* GET /_emu/faults: the faults in force. */
void emu_faults_get(struct evhttp_request *req, char **seg);
/* GET /_emu/stats: counts since start or the last reset. */
void emu_stats_get(struct evhttp_request *req, char **seg);
/* POST /_emu/reset: clear counts, faults and the record file. */
void emu_reset(struct evhttp_request *req, char **seg);

#endif
