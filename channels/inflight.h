/*
 * inflight.h: the work in flight of one adapter instance, shared by the
 * adapters that send through curlev (whatsapp.c, sms-twilio.c,
 * sms-kannel.c). Work in flight is a list of ops: a send (its message is the
 * core's until the one upcall), a media claim query, a media fetch. Stop and
 * destroy let go of ops: media work always (its claim's lease hands it to
 * the next start or another process), sends when not draining; an op let go
 * of has set == NULL and is only freed when its callback comes. The instance
 * tells the core it stopped, once, when stopping and nothing is in flight.
 *
 * An adapter that fetches the media of inbound messages sets fetch: the set
 * then listens for committed media (media.h), sweeps on a timer, claims its
 * instance's pending attachments when no media work is in flight, and hands
 * each claimed row to fetch as a MEDIA op.
 */
#ifndef LINBAT_INFLIGHT_H
#define LINBAT_INFLIGHT_H

#include <sys/queue.h>

#include <stddef.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "channel.h"
#include "media.h"

enum inflight_kind {
	INFLIGHT_SEND,
	INFLIGHT_CLAIM,
	INFLIGHT_MEDIA,
};

struct inflight;

struct inflight_op {
	struct inflight *set;          /* NULL once let go of */
	enum inflight_kind kind;
	const struct channel_msg *msg; /* SEND: borrowed from the core until the upcall */
	long long attachment_id;       /* MEDIA */
	char *media_id;                /* MEDIA: the provider's media id, or NULL (logged when set) */
	char *mime_type;               /* MEDIA: the type named at ingest, or found since */
	char *error;                   /* MEDIA: why the fetch failed, NULL if it did not */
	size_t size;                   /* MEDIA: bytes fetched */
	int hops;                      /* MEDIA: redirects followed */
	TAILQ_ENTRY(inflight_op) entry;
};

/* The answer to a send, read by the adapter into the one upcall (rc was CURLE_OK). */
typedef void (*inflight_answer_fn)(struct channel *, const struct channel_msg *, CURL *easy, long status,
    const char *body, size_t len);
/* Start fetching a claimed attachment: op->attachment_id and op->mime_type are set; ref is the row's media_id. */
typedef void (*inflight_fetch_fn)(struct inflight_op *, const char *ref);

struct inflight {
	struct channel *ch;
	const char *tag;    /* the log module: "whatsapp" */
	const char *title;  /* in texts: "The WhatsApp channel ..." */
	const char *peer;   /* what answers sends: "the Graph API" */
	inflight_answer_fn answer;
	inflight_fetch_fn fetch; /* NULL: this adapter fetches no media */
	int stopping;
	int stopped;        /* channel_stopped was called */
	int media_again;    /* media may be waiting: claim again when idle */
	struct media_waker waker; /* NOTIFY linbat_media of this instance */
	struct event *media_timer;
	TAILQ_HEAD(, inflight_op) ops;
};

/* Set up the (zeroed) set of an instance at create; the strings are borrowed for its life. */
void inflight_init(struct inflight *, struct channel *, const char *tag, const char *title, const char *peer,
    inflight_answer_fn, inflight_fetch_fn);
/* Take work again; with fetch, listen for media, arm the sweep and claim. */
void inflight_start(struct inflight *);
/* Take no new work; with drain, let the sends in flight finish (else fail them as temporary). */
void inflight_stop(struct inflight *, int drain);
/* Let go of everything in flight without upcalls (the instance is being freed). */
void inflight_destroy(struct inflight *);

/* A new op on the list, and its end: off the list, freed, then what may follow (a claim, the stop). */
struct inflight_op *inflight_op_new(struct inflight *, enum inflight_kind);
void inflight_op_done(struct inflight_op *);

/* If the instance is stopping, fail msg as temporary and return 1. */
int inflight_refuse(struct inflight *, const struct channel_msg *);
/*
 * Start a send's transfer (easy and headers now belong to curlev): a
 * transfer error fails msg as temporary ("curl-N"), an answer goes to the
 * set's answer function; a send let go of is only freed.
 */
void inflight_send(struct inflight *, const struct channel_msg *, CURL *easy, struct curl_slist *headers,
    size_t max_body);

/* Claim pending media of this instance, unless a claim or fetch is in flight. */
void inflight_media_kick(struct inflight *);
/* Record a fetched media's bytes (op->mime_type, op->size = len), then end the op. */
void inflight_media_store(struct inflight_op *, const char *body, size_t len);
/* Record why a fetch failed, final unless temporary, then end the op. */
void inflight_media_fail(struct inflight_op *, int temporary, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
