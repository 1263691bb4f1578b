/*
 * whatsapp.h: the WhatsApp Business Cloud API adapter. whatsapp.c is the
 * adapter (config, webhooks, sends, stop), whatsapp-media.c fetches the media
 * of inbound messages, whatsapp-proto.c is the protocol without I/O (webhook
 * parser, send payloads, error classes), which the unit tests drive directly.
 */
#ifndef LINBAT_WHATSAPP_H
#define LINBAT_WHATSAPP_H

#include <stddef.h>
#include <sys/queue.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include "channel.h"
#include "curlev.h"
#include "media.h"

extern const struct channel_type channel_whatsapp;

/* One delivery status of a webhook; strings borrowed for the call. */
struct whatsapp_status {
	const char *id;            /* the wamid of our message */
	const char *status;        /* sent, delivered, read, failed */
	long long timestamp;       /* unix seconds, 0 if absent */
	const char *recipient;     /* wa_id, or NULL */
	const char *callback_data; /* our biz_opaque_callback_data, or NULL */
	const char *error_code;    /* errors[0].code as text, or NULL */
	const char *error_text;    /* errors[0].title (or .message), or NULL */
};

/* Where whatsapp_proto_parse hands what a webhook carries, item by item. */
struct whatsapp_sink {
	void (*message)(const struct channel_inbound *, void *arg);
	void (*status)(const struct whatsapp_status *, void *arg);
};

/*
 * Walk a webhook payload (root borrowed): every entry, change, message and
 * status of the changes addressed to phone_number_id. Items without an id or
 * with an invalid sender are skipped (logged). Returns how many items went to
 * the sink, or -1 with *cause (caller frees) if root is not a
 * whatsapp_business_account webhook.
 */
int whatsapp_proto_parse(json_t *root, const char *phone_number_id, const struct whatsapp_sink *,
    void *arg, char **cause);

/* "+" and the digits of a wa_id into out (17 bytes); -1 if it is not E.164 digits. */
int whatsapp_proto_address(const char *wa_id, char *out, size_t outlen);

/*
 * The JSON body of a send (new reference): free text inside the 24-hour
 * window, else msg->template or the configured template with the text as its
 * one body parameter. NULL with *cause (caller frees) if it cannot be built.
 */
json_t *whatsapp_proto_payload(const struct channel_msg *, const char *template_name,
    const char *template_language, char **cause);

/* The class of a Graph API error code (0: none) under an HTTP status. */
enum channel_fail whatsapp_proto_classify(long http_status, long code, int *token_expired);

/* The Graph API's answer to a send, read. Strings owned; whatsapp_proto_answer_free. */
struct whatsapp_answer {
	int ok;                 /* accepted: wamid is set */
	char *wamid;
	enum channel_fail kind; /* when not ok */
	char *code;             /* the provider's code ("131047"), else "http-503" */
	char *text;             /* the provider's message, else a sentence of ours */
	int token_expired;      /* code 190: the access token is no longer valid */
};
void whatsapp_proto_answer(long http_status, const char *body, size_t len, struct whatsapp_answer *);
void whatsapp_proto_answer_free(struct whatsapp_answer *);

/*
 * What whatsapp.c and whatsapp-media.c share: one instance's state. Work in
 * flight is a list of ops (a send, a media claim query, a media fetch); an op
 * let go of (media at stop, sends at stop without drain or destroy) has
 * wa == NULL and is only freed when its callback comes.
 */
enum whatsapp_op_kind {
	WHATSAPP_OP_SEND,
	WHATSAPP_OP_CLAIM,
	WHATSAPP_OP_MEDIA,
};

struct whatsapp;

struct whatsapp_op {
	struct whatsapp *wa;
	enum whatsapp_op_kind kind;
	const struct channel_msg *msg; /* SEND: borrowed from the core until the upcall */
	long long attachment_id;       /* MEDIA */
	char *media_id;
	char *mime_type;
	char *error;                   /* MEDIA: why the fetch failed, NULL if it did not */
	size_t size;
	TAILQ_ENTRY(whatsapp_op) entry;
};

struct whatsapp {
	struct channel *ch;
	char *phone_number_id;
	char *app_secret;
	char *verify_token;
	char *api_base;
	char *template_name;
	char *template_language;
	char *cafile;
	char *auth_header; /* "Authorization: Bearer ..." */
	size_t media_max;
	long send_timeout_ms;
	int token_alerted; /* the admin was told the token expired */
	int stopping;
	int stopped;       /* channel_stopped was called */
	int media_again;   /* media may be waiting: claim again when idle */
	struct media_waker waker; /* NOTIFY linbat_media of this instance */
	struct event *media_timer;
	TAILQ_HEAD(, whatsapp_op) ops;
};

/* whatsapp.c: an op of this instance, its end, and a Graph API handle. */
struct whatsapp_op *whatsapp_op_new(struct whatsapp *, enum whatsapp_op_kind);
void whatsapp_op_done(struct whatsapp_op *);
/* Whether a media claim or fetch of this instance is in flight. */
int whatsapp_media_busy(struct whatsapp *);
/* A new easy handle for url: Bearer and Accept headers (*headers), CA file, http(s) only. */
CURL *whatsapp_easy(struct whatsapp *, const char *url, struct curl_slist **headers);

/* whatsapp-media.c: start the media fetcher of an instance, wake it, stop it. */
void whatsapp_media_start(struct whatsapp *);
void whatsapp_media_kick(struct whatsapp *);
void whatsapp_media_stop(struct whatsapp *);

#endif
