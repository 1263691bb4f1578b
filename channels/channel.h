/*
 * channel.h: the contract between the core and a channel adapter, in the
 * manner of Kannel's gw/smscconn_p.h. An adapter speaks one provider's
 * protocol and nothing else: the core owns retries, backoff, rate limits,
 * fallback to another channel, and the database.
 *
 * Each adapter is one const struct channel_type, listed in the table in
 * channel.c. Each "[channel NAME]" section of the config makes one instance
 * (struct channel) of the type its "type" key names; several instances of
 * one type may run (the office has two WhatsApp numbers).
 *
 * Every operation runs on the loop thread and MUST NOT block:
 * - create MUST validate the instance's config and allocate its state; it
 *   MUST NOT do I/O. On error it returns -1 with *cause.
 * - start MAY open connections and arm timers. stop(drain) MUST stop taking
 *   new work; with drain set it SHOULD let sends in flight finish, and it
 *   calls channel_stopped() when nothing of it is in flight any more.
 * - send MUST NOT block. Every message handed to send ends in EXACTLY ONE
 *   upcall, channel_sent() or channel_failed(), later or from inside send
 *   itself. After the upcall the adapter MUST NOT touch the message: the core
 *   owns it again (to retry, fall back or finish it).
 * - inbound (for adapters that receive webhooks) gets every request to
 *   /webhooks/NAME and its sub-paths. It MUST authenticate the request (a
 *   provider signature over the raw bytes, or a per-instance secret) before
 *   parsing, and MUST answer 2xx only after what it carries is committed:
 *   channel_batch_*() does that bookkeeping.
 * - poll (for adapters that fetch, such as IMAP) is armed by the adapter
 *   itself in start; the core never calls it.
 */
#ifndef LINBAT_CHANNEL_H
#define LINBAT_CHANNEL_H

#include <stddef.h>

#include <event2/event.h>
#include <jansson.h>

#include "conf.h"
#include "http.h"

struct db;
struct curlev;
struct channel;

/* How a send failed; the core decides what follows. */
enum channel_fail {
	CHANNEL_FAIL_TEMPORARY,     /* try again later, with backoff */
	CHANNEL_FAIL_PERMANENT,     /* never on this channel: fall back to the next */
	CHANNEL_FAIL_WINDOW_CLOSED, /* WhatsApp 131047: send the template instead */
	CHANNEL_FAIL_RATE_LIMITED,  /* the provider throttles us: wait retry_after */
};

/* The state of an instance; changed only by channel_set_state(). */
enum channel_state {
	CHANNEL_CREATED,
	CHANNEL_RUNNING,
	CHANNEL_DRAINING,
	CHANNEL_STOPPED,
};

/*
 * One outbound message, as the core hands it to send(). All of it is owned
 * by the core and valid until the upcall; copy what you keep longer.
 */
struct channel_msg {
	long long id;         /* linbat's message id (biz_opaque_callback_data, dlr-url) */
	const char *to;       /* E.164 phone ("+62812...") or e-mail address */
	const char *body;     /* UTF-8 text */
	int use_template;     /* send the template, not free text */
	int window_open;      /* WhatsApp: the investor wrote in the last 24 hours */
	const char *language; /* "id" or "en" */
	json_t *template;     /* {"name", "language", "params": [..]} or NULL; borrowed */
	json_t *meta;         /* adapter-specific extras (e-mail subject, threading); borrowed */
	int attempt;          /* 1 for the first try */
};

/* Services the core lends every instance. */
struct channel_env {
	struct event_base *base;
	struct db *db;
	struct curlev *curl;
	const char *public_url; /* where providers reach this daemon */
};

struct channel_type {
	const char *name; /* the "type" key: "whatsapp", "sms-kannel", ... */
	const char *kind; /* the identity kind it reaches: "whatsapp", "sms", "email", "test" */
	const struct conf_key *keys;
	size_t nkeys;
	int (*create)(struct channel *, const struct conf_section *, char **cause);
	int (*start)(struct channel *, char **cause);
	void (*stop)(struct channel *, int drain);
	void (*destroy)(struct channel *);
	void (*send)(struct channel *, const struct channel_msg *);
	void (*inbound)(struct channel *, struct http_req *); /* NULL if it takes no webhooks */
};

/* One running instance. The adapter keeps its own state in priv. */
struct channel {
	const struct channel_type *type;
	char *name;
	const struct channel_env *env;
	enum channel_state state;
	long long rate; /* messages per second, 0 = unlimited (the core enforces it) */
	int enabled;
	void *priv;
	/* Set by the core: where upcalls go. */
	void (*on_sent)(struct channel *, long long id, const char *provider_id, void *arg);
	void (*on_failed)(struct channel *, long long id, enum channel_fail, const char *code,
	    const char *text, int retry_after_s, void *arg);
	void (*on_stopped)(struct channel *, void *arg);
	void *upcall_arg;
};

/* The adapter table and the config schema of each type (a conf_schema_fn). */
const struct channel_type *channel_type_find(const char *name);
const struct conf_key *channel_schema(const char *type, size_t *nkeys);
const struct channel_type *const *channel_types(size_t *n);

/* Make an instance from its config section (create is called); NULL with *cause. */
struct channel *channel_create(const struct conf_section *, const struct channel_env *, char **cause);
int channel_start(struct channel *, char **cause);
void channel_stop(struct channel *, int drain);
void channel_destroy(struct channel *);
void channel_set_state(struct channel *, enum channel_state);

/* Upcalls, called by adapters (see the contract above). */
void channel_sent(struct channel *, const struct channel_msg *, const char *provider_id);
void channel_failed(struct channel *, const struct channel_msg *, enum channel_fail, const char *code,
    const char *text, int retry_after_s);
void channel_stopped(struct channel *);
/* Parse "temporary|permanent|window_closed|rate_limited"; -1 if unknown. */
int channel_fail_parse(const char *);
const char *channel_fail_name(enum channel_fail);

/*
 * What an inbound message carries, normalised. Strings are borrowed for the
 * duration of the call; meta is borrowed (the batch takes its own reference).
 */
struct channel_inbound {
	const char *address;      /* E.164 phone or e-mail address (normalised by the adapter) */
	const char *provider_id;  /* the provider's message id: the deduplication key */
	const char *content_type; /* "text", "image", ..., "unsupported" */
	const char *body;         /* text, caption, or "" */
	const char *profile_name; /* sender's display name, or NULL */
	long long timestamp;      /* unix seconds, 0 = now */
	json_t *meta;             /* typed metadata and, for unknown types, the raw JSON */
};

/*
 * A webhook's worth of database work: messages and statuses are stored in
 * parallel, and the request is answered once all of them are committed: 200
 * (with the body set by channel_batch_set_reply, else {"status":"ok"}), or 503
 * if any failed, so the provider delivers the webhook again (ingest is
 * idempotent on the provider id). The batch frees itself after answering.
 */
struct channel_batch;
struct channel_batch *channel_batch_new(struct channel *, struct http_req *);
void channel_batch_message(struct channel_batch *, const struct channel_inbound *);
/* A delivery status by the provider's message id (WhatsApp wamid, Twilio SID). */
void channel_batch_status(struct channel_batch *, const char *provider_id, const char *status,
    long long timestamp, const char *error_code, const char *error_text);
/* A delivery status by linbat's own message id (Kannel's dlr-url carries it). */
void channel_batch_status_by_id(struct channel_batch *, long long id, const char *status,
    long long timestamp, const char *error_code, const char *error_text);
void channel_batch_set_reply(struct channel_batch *, const char *content_type, const char *body);
/* No more work will be added: answer when what was added is done. */
void channel_batch_end(struct channel_batch *);

#endif
