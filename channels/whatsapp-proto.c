/*
 * whatsapp-proto.c: the WhatsApp Cloud API protocol without I/O. It turns a
 * webhook payload into linbat's inbound messages and delivery statuses, a
 * channel_msg into the JSON of a send, and the Graph API's answer into sent
 * or one of the core's failure classes. Kept apart from the adapter so the
 * unit tests can feed it JSON and check what comes out.
 *
 * Message types are a table: each names linbat's content_type and a reader
 * that fills the typed metadata and returns the text shown in the inbox. A
 * type not in the table is kept as "unsupported" with the raw message JSON,
 * so nothing an investor sends is dropped.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "whatsapp.h"

/* A message type: its content_type and the reader of its part. */
struct whatsapp_type {
	const char *type;
	const char *content_type;
	/* Fill meta from the part (msg[type]); return the body (caller frees). */
	char *(*read)(json_t *part, json_t *meta, const char **content_type);
};

/* One row of the error table: codes lo..hi are of class kind. */
struct whatsapp_code {
	long lo, hi;
	enum channel_fail kind;
	int token_expired;
};

/* What the walk over one webhook carries along. */
struct whatsapp_walk {
	const struct whatsapp_sink *sink;
	void *arg;
	const char *phone_number_id;
	int n;
};

static char *whatsapp_read_text(json_t *, json_t *, const char **);
static char *whatsapp_read_media(json_t *, json_t *, const char **);
static char *whatsapp_read_location(json_t *, json_t *, const char **);
static char *whatsapp_read_contacts(json_t *, json_t *, const char **);
static char *whatsapp_read_reaction(json_t *, json_t *, const char **);
static char *whatsapp_read_button(json_t *, json_t *, const char **);
static char *whatsapp_read_interactive(json_t *, json_t *, const char **);

static const struct whatsapp_type whatsapp_types[] = {
	{ "text", "text", whatsapp_read_text },
	{ "image", "image", whatsapp_read_media },
	{ "document", "document", whatsapp_read_media },
	{ "audio", "audio", whatsapp_read_media },
	{ "voice", "voice", whatsapp_read_media },
	{ "video", "video", whatsapp_read_media },
	{ "sticker", "sticker", whatsapp_read_media },
	{ "location", "location", whatsapp_read_location },
	{ "contacts", "contacts", whatsapp_read_contacts },
	{ "reaction", "reaction", whatsapp_read_reaction },
	{ "button", "button", whatsapp_read_button },
	{ "interactive", "interactive", whatsapp_read_interactive },
};

/*
 * Graph API error codes (DOMAIN.md, Meta's error code reference). HTTP 429
 * is rate limiting whatever the code; a code not here falls back to its
 * HTTP status: 5xx temporary, other 4xx permanent.
 */
static const struct whatsapp_code whatsapp_codes[] = {
	{ 1, 1, CHANNEL_FAIL_TEMPORARY, 0 },           /* unknown API error */
	{ 2, 2, CHANNEL_FAIL_TEMPORARY, 0 },           /* API service down */
	{ 4, 4, CHANNEL_FAIL_TEMPORARY, 0 },           /* app call limit */
	{ 100, 100, CHANNEL_FAIL_PERMANENT, 0 },       /* invalid parameter */
	{ 190, 190, CHANNEL_FAIL_PERMANENT, 1 },       /* access token expired */
	{ 80007, 80007, CHANNEL_FAIL_TEMPORARY, 0 },   /* WABA rate limit */
	{ 130429, 130429, CHANNEL_FAIL_RATE_LIMITED, 0 }, /* throughput exceeded */
	{ 131000, 131000, CHANNEL_FAIL_TEMPORARY, 0 }, /* something went wrong */
	{ 131016, 131016, CHANNEL_FAIL_TEMPORARY, 0 }, /* service unavailable */
	{ 131021, 131021, CHANNEL_FAIL_PERMANENT, 0 }, /* recipient is the sender */
	{ 131026, 131026, CHANNEL_FAIL_PERMANENT, 0 }, /* undeliverable: not on WhatsApp */
	{ 131047, 131047, CHANNEL_FAIL_WINDOW_CLOSED, 0 }, /* 24-hour window closed */
	{ 131048, 131048, CHANNEL_FAIL_PERMANENT, 0 }, /* spam rate limit */
	{ 131049, 131049, CHANNEL_FAIL_PERMANENT, 0 }, /* not delivered for engagement */
	{ 131051, 131051, CHANNEL_FAIL_PERMANENT, 0 }, /* unsupported message type */
	{ 131056, 131056, CHANNEL_FAIL_TEMPORARY, 0 }, /* pair rate limit */
	{ 131057, 131057, CHANNEL_FAIL_TEMPORARY, 0 }, /* account in maintenance */
	{ 132000, 132999, CHANNEL_FAIL_PERMANENT, 0 }, /* template errors */
	{ 133004, 133004, CHANNEL_FAIL_TEMPORARY, 0 }, /* server temporarily unavailable */
};

/* The string at key of an object, or NULL. */
static const char *
whatsapp_str(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* The string at key of an object, or "". */
static const char *
whatsapp_strz(json_t *obj, const char *key)
{
	const char *s = whatsapp_str(obj, key);

	return s != NULL ? s : "";
}

/* Copy the keys of from that are set into a new object (new reference). */
static json_t *
whatsapp_pick(json_t *from, const char *const *keys, size_t n)
{
	json_t *to = json_object(), *v;
	size_t i;

	for (i = 0; i < n; i++) {
		if ((v = json_object_get(from, keys[i])) != NULL)
			json_object_set(to, keys[i], v);
	}
	return to;
}

/* Unix seconds from a string ("1700000000") or an integer; 0 if neither. */
static long long
whatsapp_timestamp(json_t *v)
{
	const char *s = json_string_value(v);
	char *end;
	long long t;

	if (json_is_integer(v))
		return json_integer_value(v) > 0 ? json_integer_value(v) : 0;
	if (s == NULL || !isdigit((unsigned char)s[0]))
		return 0;
	errno = 0;
	t = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0' ? t : 0;
}

/* Join a and b with ", " when both are set (caller frees). */
static char *
whatsapp_join(const char *a, const char *b)
{
	char *s;

	if (*a == '\0' || *b == '\0')
		return xstrdup(*a != '\0' ? a : b);
	xasprintf(&s, "%s, %s", a, b);
	return s;
}

/* "+" and the digits of a wa_id (E.164 without "+"); -1 if it is not one. */
int
whatsapp_proto_address(const char *wa_id, char *out, size_t outlen)
{
	size_t n = wa_id != NULL ? strlen(wa_id) : 0, i;

	if (n < 7 || n > 15 || wa_id[0] == '0' || outlen < n + 2)
		return -1;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)wa_id[i]))
			return -1;
	}
	out[0] = '+';
	memcpy(out + 1, wa_id, n + 1);
	return 0;
}

/* text: the body. */
static char *
whatsapp_read_text(json_t *part, json_t *meta, const char **ct)
{
	return xstrdup(whatsapp_strz(part, "body"));
}

/* image, document, audio, voice, video, sticker: the media fields; the caption. */
static char *
whatsapp_read_media(json_t *part, json_t *meta, const char **ct)
{
	static const char *const keys[] = { "id", "mime_type", "sha256", "filename", "voice", "animated" };

	json_object_set_new(meta, "media", whatsapp_pick(part, keys, nitems(keys)));
	if (strcmp(*ct, "audio") == 0 && json_is_true(json_object_get(part, "voice")))
		*ct = "voice";
	return xstrdup(whatsapp_strz(part, "caption"));
}

/* location: coordinates, name, address; "name, address" as the body. */
static char *
whatsapp_read_location(json_t *part, json_t *meta, const char **ct)
{
	static const char *const keys[] = { "latitude", "longitude", "name", "address", "url" };

	json_object_set_new(meta, "location", whatsapp_pick(part, keys, nitems(keys)));
	return whatsapp_join(whatsapp_strz(part, "name"), whatsapp_strz(part, "address"));
}

/* contacts: the cards as sent; their formatted names as the body. */
static char *
whatsapp_read_contacts(json_t *part, json_t *meta, const char **ct)
{
	struct buf b;
	json_t *card;
	size_t i;

	buf_init(&b);
	buf_adds(&b, "");
	json_array_foreach(part, i, card) {
		const char *name = whatsapp_strz(json_object_get(card, "name"), "formatted_name");

		if (*name != '\0')
			buf_addf(&b, "%s%s", b.len > 0 ? ", " : "", name);
	}
	json_object_set_new(meta, "contacts", json_deep_copy(part));
	return buf_take(&b);
}

/* reaction: which message and which emoji (empty when a reaction is removed). */
static char *
whatsapp_read_reaction(json_t *part, json_t *meta, const char **ct)
{
	static const char *const keys[] = { "message_id", "emoji" };

	json_object_set_new(meta, "reaction", whatsapp_pick(part, keys, nitems(keys)));
	return xstrdup(whatsapp_strz(part, "emoji"));
}

/* button (a quick reply to a template): its text and payload. */
static char *
whatsapp_read_button(json_t *part, json_t *meta, const char **ct)
{
	static const char *const keys[] = { "text", "payload" };

	json_object_set_new(meta, "button", whatsapp_pick(part, keys, nitems(keys)));
	return xstrdup(whatsapp_strz(part, "text"));
}

/* interactive: a button_reply or list_reply (id, title); others kept whole. */
static char *
whatsapp_read_interactive(json_t *part, json_t *meta, const char **ct)
{
	static const char *const keys[] = { "id", "title", "description" };
	const char *type = whatsapp_strz(part, "type");
	json_t *reply = json_object_get(part, type), *out;

	if (!json_is_object(reply)) {
		json_object_set_new(meta, "interactive", json_deep_copy(part));
		return xstrdup("");
	}
	out = whatsapp_pick(reply, keys, nitems(keys));
	json_object_set_new(out, "type", json_string(type));
	json_object_set_new(meta, "interactive", out);
	return xstrdup(whatsapp_strz(reply, "title"));
}

/* The row of the type table for a message type, or NULL. */
static const struct whatsapp_type *
whatsapp_type_find(const char *type)
{
	size_t i;

	for (i = 0; type != NULL && i < nitems(whatsapp_types); i++) {
		if (strcmp(whatsapp_types[i].type, type) == 0)
			return &whatsapp_types[i];
	}
	return NULL;
}

/* The profile name of sender from in a change's contacts[], or NULL. */
static const char *
whatsapp_profile(json_t *contacts, const char *from)
{
	json_t *c;
	size_t i;

	json_array_foreach(contacts, i, c) {
		const char *wa_id = whatsapp_str(c, "wa_id");

		if (wa_id == NULL ? json_array_size(contacts) == 1 : strcmp(wa_id, from) == 0)
			return whatsapp_str(json_object_get(c, "profile"), "name");
	}
	return NULL;
}

/* The metadata every message has: type, sender, and what it replies to. */
static json_t *
whatsapp_meta(json_t *msg, const char *type, const char *from)
{
	json_t *meta = json_object(), *v;

	json_object_set_new(meta, "type", json_string(type != NULL ? type : ""));
	json_object_set_new(meta, "wa_id", json_string(from));
	if (json_is_object(v = json_object_get(msg, "context")))
		json_object_set(meta, "context", v);
	if (json_is_object(v = json_object_get(msg, "referral")))
		json_object_set(meta, "referral", v);
	return meta;
}

/* Normalise one message and hand it to the sink. */
static void
whatsapp_walk_message(struct whatsapp_walk *w, json_t *contacts, json_t *msg)
{
	const char *from = whatsapp_str(msg, "from"), *id = whatsapp_str(msg, "id");
	const char *type = whatsapp_str(msg, "type");
	const struct whatsapp_type *t = whatsapp_type_find(type);
	json_t *part = t != NULL ? json_object_get(msg, t->type) : NULL;
	struct channel_inbound in;
	char address[20], *body;

	if (id == NULL || *id == '\0' || whatsapp_proto_address(from, address, sizeof address) != 0) {
		log_warn("whatsapp", "A webhook message was skipped: no id or no valid sender. id=%s from=%s",
		    id != NULL ? id : "-", from != NULL ? from : "-");
		return;
	}
	memset(&in, 0, sizeof in);
	in.meta = whatsapp_meta(msg, type, from);
	in.content_type = t != NULL ? t->content_type : "unsupported";
	if (t != NULL && (json_is_object(part) || json_is_array(part))) {
		body = t->read(part, in.meta, &in.content_type);
	} else {
		in.content_type = "unsupported";
		json_object_set_new(in.meta, "raw", json_deep_copy(msg));
		body = xstrdup("");
	}
	in.address = address;
	in.provider_id = id;
	in.body = body;
	in.profile_name = whatsapp_profile(contacts, from);
	in.timestamp = whatsapp_timestamp(json_object_get(msg, "timestamp"));
	w->sink->message(&in, w->arg);
	w->n++;
	free(body);
	json_decref(in.meta);
}

/* Read one status and hand it to the sink; unknown statuses are skipped. */
static void
whatsapp_walk_status(struct whatsapp_walk *w, json_t *st)
{
	static const char *const known[] = { "sent", "delivered", "read", "failed" };
	json_t *err = json_array_get(json_object_get(st, "errors"), 0), *code;
	struct whatsapp_status s;
	char codebuf[32];
	size_t i;

	memset(&s, 0, sizeof s);
	s.id = whatsapp_str(st, "id");
	s.status = whatsapp_str(st, "status");
	for (i = 0; s.status != NULL && i < nitems(known); i++) {
		if (strcmp(s.status, known[i]) == 0)
			break;
	}
	if (s.id == NULL || *s.id == '\0' || s.status == NULL || i == nitems(known)) {
		log_debug("whatsapp", "A webhook status was skipped. id=%s status=%s",
		    s.id != NULL ? s.id : "-", s.status != NULL ? s.status : "-");
		return;
	}
	s.timestamp = whatsapp_timestamp(json_object_get(st, "timestamp"));
	s.recipient = whatsapp_str(st, "recipient_id");
	s.callback_data = whatsapp_str(st, "biz_opaque_callback_data");
	if (json_is_integer(code = json_object_get(err, "code"))) {
		snprintf(codebuf, sizeof codebuf, "%" JSON_INTEGER_FORMAT, json_integer_value(code));
		s.error_code = codebuf;
	} else
		s.error_code = json_string_value(code);
	s.error_text = whatsapp_str(err, "title") != NULL ? whatsapp_str(err, "title") :
	    whatsapp_str(err, "message");
	w->sink->status(&s, w->arg);
	w->n++;
}

/* One change: its messages and statuses, if it is addressed to our number. */
static void
whatsapp_walk_change(struct whatsapp_walk *w, json_t *change)
{
	json_t *value = json_object_get(change, "value"), *contacts, *v;
	const char *field = whatsapp_str(change, "field");
	const char *pnid = whatsapp_str(json_object_get(value, "metadata"), "phone_number_id");
	size_t i;

	if (field != NULL && strcmp(field, "messages") != 0) {
		log_debug("whatsapp", "A webhook change was ignored: not messages. field=%s", field);
		return;
	}
	if (pnid == NULL || strcmp(pnid, w->phone_number_id) != 0) {
		log_debug("whatsapp", "A webhook change was ignored: another number. phone_number_id=%s",
		    pnid != NULL ? pnid : "-");
		return;
	}
	contacts = json_object_get(value, "contacts");
	json_array_foreach(json_object_get(value, "messages"), i, v)
		whatsapp_walk_message(w, contacts, v);
	json_array_foreach(json_object_get(value, "statuses"), i, v)
		whatsapp_walk_status(w, v);
}

/* Walk a whatsapp_business_account webhook; the count of items, or -1. */
int
whatsapp_proto_parse(json_t *root, const char *phone_number_id, const struct whatsapp_sink *sink,
    void *arg, char **cause)
{
	struct whatsapp_walk w = { sink, arg, phone_number_id, 0 };
	const char *object = whatsapp_str(root, "object");
	json_t *entry, *change;
	size_t i, j;

	if (object == NULL || strcmp(object, "whatsapp_business_account") != 0) {
		xasprintf(cause, "The payload is not a whatsapp_business_account webhook.");
		return -1;
	}
	json_array_foreach(json_object_get(root, "entry"), i, entry) {
		json_array_foreach(json_object_get(entry, "changes"), j, change)
			whatsapp_walk_change(&w, change);
	}
	return w.n;
}

/*
 * A template parameter as Meta accepts it: no newlines or tabs and no long
 * runs of spaces (error 132018), so whitespace runs become one space.
 */
static char *
whatsapp_param_text(const char *s)
{
	char *out = xmalloc(strlen(s) + 1), *o = out;

	for (; *s != '\0'; s++) {
		if (isspace((unsigned char)*s)) {
			if (o > out && o[-1] != ' ')
				*o++ = ' ';
		} else
			*o++ = *s;
	}
	while (o > out && o[-1] == ' ')
		o--;
	*o = '\0';
	return out;
}

/* Add a text parameter to a parameters array; -1 if it is not valid UTF-8. */
static int
whatsapp_param_add(json_t *params, const char *text)
{
	char *clean = whatsapp_param_text(text);
	json_t *s = json_string(clean);

	free(clean);
	if (s == NULL)
		return -1;
	json_array_append_new(params, json_pack("{s:s, s:o}", "type", "text", "text", s));
	return 0;
}

/* {"name","language":{"code"},"components":[body parameters]}; params stolen. */
static json_t *
whatsapp_template_json(const char *name, const char *language, json_t *params)
{
	json_t *t = json_pack("{s:s, s:{s:s}}", "name", name, "language", "code", language);

	if (json_array_size(params) > 0)
		json_object_set_new(t, "components",
		    json_pack("[{s:s, s:o}]", "type", "body", "parameters", params));
	else
		json_decref(params);
	return t;
}

/* The template the message itself names: {"name","language","params":[..]}. */
static json_t *
whatsapp_template_given(const struct channel_msg *msg, const char *def_language, char **cause)
{
	const char *name = whatsapp_str(msg->template, "name");
	const char *language = whatsapp_str(msg->template, "language");
	json_t *params = json_array(), *p;
	char num[64];
	size_t i;

	if (name == NULL || *name == '\0') {
		json_decref(params);
		xasprintf(cause, "The message's template has no name.");
		return NULL;
	}
	if (language == NULL || *language == '\0')
		language = msg->language != NULL && *msg->language != '\0' ? msg->language : def_language;
	json_array_foreach(json_object_get(msg->template, "params"), i, p) {
		if (json_is_number(p))
			snprintf(num, sizeof num, "%.15g", json_number_value(p));
		if (!json_is_string(p) && !json_is_number(p)) {
			json_decref(params);
			xasprintf(cause, "Parameter %zu of template %s is neither text nor a number.", i + 1, name);
			return NULL;
		}
		whatsapp_param_add(params, json_is_string(p) ? json_string_value(p) : num);
	}
	return whatsapp_template_json(name, language, params);
}

/* The template of a send outside the window: the message's own, else the configured one. */
static json_t *
whatsapp_template(const struct channel_msg *msg, const char *name, const char *language, char **cause)
{
	json_t *params;

	if (msg->template != NULL && json_is_object(msg->template))
		return whatsapp_template_given(msg, language, cause);
	if (name == NULL || *name == '\0') {
		xasprintf(cause, "The 24-hour window is closed and no template_name is configured.");
		return NULL;
	}
	params = json_array();
	if (whatsapp_param_add(params, msg->body != NULL ? msg->body : "") != 0) {
		json_decref(params);
		xasprintf(cause, "The message text is not valid UTF-8.");
		return NULL;
	}
	return whatsapp_template_json(name, language, params);
}

/* The JSON body of a send (see whatsapp.h). */
json_t *
whatsapp_proto_payload(const struct channel_msg *msg, const char *template_name,
    const char *template_language, char **cause)
{
	int text = msg->window_open && !msg->use_template;
	const char *type = text ? "text" : "template";
	char to[20], id[24];
	json_t *part, *body;

	if (msg->to == NULL || whatsapp_proto_address(msg->to + (msg->to[0] == '+'), to, sizeof to) != 0) {
		xasprintf(cause, "The recipient is not an E.164 phone number.");
		return NULL;
	}
	if (text) {
		if ((body = json_string(msg->body != NULL ? msg->body : "")) == NULL) {
			xasprintf(cause, "The message text is not valid UTF-8.");
			return NULL;
		}
		part = json_pack("{s:b, s:o}", "preview_url", 0, "body", body);
	} else if ((part = whatsapp_template(msg, template_name, template_language, cause)) == NULL)
		return NULL;
	snprintf(id, sizeof id, "%lld", msg->id);
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:s}", "messaging_product", "whatsapp",
	    "recipient_type", "individual", "to", to + 1, "type", type, type, part,
	    "biz_opaque_callback_data", id);
}

/* The class of an error code under an HTTP status (see the table). */
enum channel_fail
whatsapp_proto_classify(long http_status, long code, int *token_expired)
{
	size_t i;

	*token_expired = 0;
	if (http_status == 429)
		return CHANNEL_FAIL_RATE_LIMITED;
	for (i = 0; code != 0 && i < nitems(whatsapp_codes); i++) {
		if (code >= whatsapp_codes[i].lo && code <= whatsapp_codes[i].hi) {
			*token_expired = whatsapp_codes[i].token_expired;
			return whatsapp_codes[i].kind;
		}
	}
	if (http_status >= 400 && http_status < 500)
		return CHANNEL_FAIL_PERMANENT;
	return CHANNEL_FAIL_TEMPORARY;
}

/* Read the error object of a failed send into a. */
static void
whatsapp_answer_error(long http_status, json_t *root, struct whatsapp_answer *a)
{
	json_t *err = json_object_get(root, "error");
	json_int_t code = json_integer_value(json_object_get(err, "code"));
	const char *message = whatsapp_str(err, "message");
	const char *details = whatsapp_str(json_object_get(err, "error_data"), "details");

	a->kind = whatsapp_proto_classify(http_status, (long)code, &a->token_expired);
	if (code != 0)
		xasprintf(&a->code, "%" JSON_INTEGER_FORMAT, code);
	else
		xasprintf(&a->code, "http-%ld", http_status);
	if (message != NULL && details != NULL && strcmp(message, details) != 0)
		xasprintf(&a->text, "%s: %s", message, details);
	else if (message != NULL)
		a->text = xstrdup(message);
	else
		xasprintf(&a->text, "The Graph API answered HTTP %ld.", http_status);
}

/* Read the Graph API's answer to a send. */
void
whatsapp_proto_answer(long http_status, const char *body, size_t len, struct whatsapp_answer *a)
{
	json_t *root = json_loadb(body, len, 0, NULL);
	const char *wamid;

	memset(a, 0, sizeof *a);
	wamid = whatsapp_str(json_array_get(json_object_get(root, "messages"), 0), "id");
	if (http_status >= 200 && http_status < 300 && wamid != NULL && *wamid != '\0') {
		a->ok = 1;
		a->wamid = xstrdup(wamid);
	} else if (http_status >= 200 && http_status < 300) {
		/* Accepted without an id: we cannot tell, so the core may try again. */
		a->kind = CHANNEL_FAIL_TEMPORARY;
		a->code = xstrdup("no-id");
		a->text = xstrdup("The Graph API accepted the message but sent no message id.");
	} else
		whatsapp_answer_error(http_status, root, a);
	json_decref(root);
}

/* Free the strings of an answer. */
void
whatsapp_proto_answer_free(struct whatsapp_answer *a)
{
	free(a->wamid);
	free(a->code);
	free(a->text);
	memset(a, 0, sizeof *a);
}
