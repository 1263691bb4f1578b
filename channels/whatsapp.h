/*
 * whatsapp.h: the WhatsApp Business Cloud API adapter. whatsapp.c is the
 * adapter (config, webhooks, sends, stop), whatsapp-media.c fetches the media
 * of inbound messages, whatsapp-proto.c is the protocol without I/O (webhook
 * parser, send payloads, error classes), which the unit tests drive directly.
 */
#ifndef LINBAT_WHATSAPP_H
#define LINBAT_WHATSAPP_H

#include <stddef.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include "channel.h"
#include "curlev.h"
#include "inflight.h"

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
 * What whatsapp.c and whatsapp-media.c share: one instance's state. Its work
 * in flight (sends, media claims and fetches) is an inflight set (inflight.h).
 */
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
	struct inflight fl;
};

/* whatsapp.c: a new easy handle for url: Bearer and Accept headers (*headers), CA file, http(s) only. */
CURL *whatsapp_easy(struct whatsapp *, const char *url, struct curl_slist **headers);

/* whatsapp-media.c: the inflight fetch function, step 1 of a claimed attachment's fetch. */
void whatsapp_media_fetch(struct inflight_op *, const char *media_id);

#endif
