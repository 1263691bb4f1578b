/*
 * test-whatsapp.c: unit tests of the WhatsApp protocol layer
 * (channels/whatsapp-proto.c): the error classification table, reading the
 * Graph API's answer to a send, the payload of a send (text in the window,
 * templates outside it), and the webhook parser for every message type,
 * statuses, foreign numbers and bad senders. No network, no database.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "util.h"
#include "whatsapp.h"

#define PNID "106540352242922"
#define MAX_ITEMS 32

/* What the parser handed to the sink, copied. */
struct got_msg {
	char *address, *provider_id, *content_type, *body, *profile_name;
	long long timestamp;
	json_t *meta;
};

struct got_status {
	char *id, *status, *code, *text;
	long long timestamp;
};

struct got {
	struct got_msg msgs[MAX_ITEMS];
	struct got_status statuses[MAX_ITEMS];
	int nmsgs, nstatuses;
};

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static void
sink_message(const struct channel_inbound *in, void *arg)
{
	struct got *g = arg;
	struct got_msg *m = &g->msgs[g->nmsgs++];

	assert_true(g->nmsgs <= MAX_ITEMS);
	m->address = dup_or_null(in->address);
	m->provider_id = dup_or_null(in->provider_id);
	m->content_type = dup_or_null(in->content_type);
	m->body = dup_or_null(in->body);
	m->profile_name = dup_or_null(in->profile_name);
	m->timestamp = in->timestamp;
	m->meta = json_incref(in->meta);
}

static void
sink_status(const struct whatsapp_status *s, void *arg)
{
	struct got *g = arg;
	struct got_status *st = &g->statuses[g->nstatuses++];

	assert_true(g->nstatuses <= MAX_ITEMS);
	st->id = dup_or_null(s->id);
	st->status = dup_or_null(s->status);
	st->code = dup_or_null(s->error_code);
	st->text = dup_or_null(s->error_text);
	st->timestamp = s->timestamp;
}

static const struct whatsapp_sink sink = { sink_message, sink_status };

static void
got_free(struct got *g)
{
	int i;

	for (i = 0; i < g->nmsgs; i++) {
		free(g->msgs[i].address);
		free(g->msgs[i].provider_id);
		free(g->msgs[i].content_type);
		free(g->msgs[i].body);
		free(g->msgs[i].profile_name);
		json_decref(g->msgs[i].meta);
	}
	for (i = 0; i < g->nstatuses; i++) {
		free(g->statuses[i].id);
		free(g->statuses[i].status);
		free(g->statuses[i].code);
		free(g->statuses[i].text);
	}
	memset(g, 0, sizeof *g);
}

/* Parse text as a webhook into g; returns what whatsapp_proto_parse returned. */
static int
parse(const char *text, struct got *g)
{
	json_error_t err;
	json_t *root = json_loads(text, 0, &err);
	char *cause = NULL;
	int n;

	if (root == NULL)
		fail_msg("bad test JSON: %s at line %d", err.text, err.line);
	memset(g, 0, sizeof *g);
	n = whatsapp_proto_parse(root, PNID, &sink, g, &cause);
	json_decref(root);
	free(cause);
	return n;
}

/* A webhook of one change to PNID with the given messages (a JSON array). */
static char *
hook_messages(const char *messages)
{
	char *s;

	xasprintf(&s, "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\",\"changes\":"
	    "[{\"field\":\"messages\",\"value\":{\"messaging_product\":\"whatsapp\",\"metadata\":"
	    "{\"display_phone_number\":\"6281100000000\",\"phone_number_id\":\"" PNID "\"},"
	    "\"contacts\":[{\"profile\":{\"name\":\"Budi Santoso\"},\"wa_id\":\"6281234567890\"}],"
	    "\"messages\":%s}}]}]}", messages);
	return s;
}

/* Parse one message of the given JSON and check the one item it gives. */
static struct got_msg *
parse_one(const char *message, struct got *g)
{
	char *arr, *hook;

	xasprintf(&arr, "[%s]", message);
	hook = hook_messages(arr);
	assert_int_equal(parse(hook, g), 1);
	assert_int_equal(g->nmsgs, 1);
	free(arr);
	free(hook);
	return &g->msgs[0];
}

/* A message object from 6281234567890 of type with part JSON. */
static char *
msg_of(const char *type, const char *part)
{
	char *s;

	xasprintf(&s, "{\"from\":\"6281234567890\",\"id\":\"wamid.%s\",\"timestamp\":\"1764300000\","
	    "\"type\":\"%s\",\"%s\":%s}", type, type, type, part);
	return s;
}

/* The string at a /-separated path of meta, or NULL. */
static const char *
meta_str(json_t *meta, const char *a, const char *b)
{
	json_t *v = json_object_get(meta, a);

	if (b != NULL)
		v = json_object_get(v, b);
	return json_string_value(v);
}

static void
test_classify_table(void **state)
{
	static const struct {
		long http, code;
		enum channel_fail kind;
		int token;
	} cases[] = {
		{ 500, 0, CHANNEL_FAIL_TEMPORARY, 0 },
		{ 503, 0, CHANNEL_FAIL_TEMPORARY, 0 },
		{ 400, 1, CHANNEL_FAIL_TEMPORARY, 0 },
		{ 400, 2, CHANNEL_FAIL_TEMPORARY, 0 },
		{ 400, 4, CHANNEL_FAIL_TEMPORARY, 0 },
		{ 400, 80007, CHANNEL_FAIL_TEMPORARY, 0 },
		{ 500, 131000, CHANNEL_FAIL_TEMPORARY, 0 },
		{ 400, 131056, CHANNEL_FAIL_TEMPORARY, 0 },
		{ 400, 130429, CHANNEL_FAIL_RATE_LIMITED, 0 },
		{ 429, 0, CHANNEL_FAIL_RATE_LIMITED, 0 },
		{ 429, 4, CHANNEL_FAIL_RATE_LIMITED, 0 },
		{ 400, 131047, CHANNEL_FAIL_WINDOW_CLOSED, 0 },
		{ 400, 131026, CHANNEL_FAIL_PERMANENT, 0 },
		{ 400, 131049, CHANNEL_FAIL_PERMANENT, 0 },
		{ 400, 131048, CHANNEL_FAIL_PERMANENT, 0 },
		{ 400, 131051, CHANNEL_FAIL_PERMANENT, 0 },
		{ 400, 131021, CHANNEL_FAIL_PERMANENT, 0 },
		{ 400, 132000, CHANNEL_FAIL_PERMANENT, 0 },
		{ 400, 132001, CHANNEL_FAIL_PERMANENT, 0 },
		{ 400, 132999, CHANNEL_FAIL_PERMANENT, 0 },
		{ 400, 100, CHANNEL_FAIL_PERMANENT, 0 },
		{ 401, 190, CHANNEL_FAIL_PERMANENT, 1 },
		{ 400, 999999, CHANNEL_FAIL_PERMANENT, 0 },
		{ 502, 999999, CHANNEL_FAIL_TEMPORARY, 0 },
		{ 0, 0, CHANNEL_FAIL_TEMPORARY, 0 },
	};
	size_t i;
	int token;

	for (i = 0; i < nitems(cases); i++) {
		enum channel_fail kind = whatsapp_proto_classify(cases[i].http, cases[i].code, &token);

		if (kind != cases[i].kind || token != cases[i].token)
			fail_msg("HTTP %ld code %ld: got %s token=%d, want %s token=%d", cases[i].http,
			    cases[i].code, channel_fail_name(kind), token, channel_fail_name(cases[i].kind),
			    cases[i].token);
	}
}

static void
test_answer_ok(void **state)
{
	static const char body[] = "{\"messaging_product\":\"whatsapp\",\"contacts\":[{\"input\":"
	    "\"6281234567890\",\"wa_id\":\"6281234567890\"}],\"messages\":[{\"id\":\"wamid.HBgL\"}]}";
	struct whatsapp_answer a;

	whatsapp_proto_answer(200, body, strlen(body), &a);
	assert_true(a.ok);
	assert_string_equal(a.wamid, "wamid.HBgL");
	whatsapp_proto_answer_free(&a);
}

static void
test_answer_errors(void **state)
{
	static const char closed[] = "{\"error\":{\"message\":\"Re-engagement message\",\"type\":"
	    "\"OAuthException\",\"code\":131047,\"error_data\":{\"messaging_product\":\"whatsapp\","
	    "\"details\":\"Message failed to send because more than 24 hours have passed\"},"
	    "\"fbtrace_id\":\"Az8or\"}}";
	static const char token[] = "{\"error\":{\"message\":\"Error validating access token: Session "
	    "has expired\",\"type\":\"OAuthException\",\"code\":190,\"error_subcode\":463}}";
	struct whatsapp_answer a;

	whatsapp_proto_answer(400, closed, strlen(closed), &a);
	assert_false(a.ok);
	assert_int_equal(a.kind, CHANNEL_FAIL_WINDOW_CLOSED);
	assert_string_equal(a.code, "131047");
	assert_non_null(strstr(a.text, "Re-engagement message"));
	assert_non_null(strstr(a.text, "24 hours"));
	whatsapp_proto_answer_free(&a);

	whatsapp_proto_answer(401, token, strlen(token), &a);
	assert_int_equal(a.kind, CHANNEL_FAIL_PERMANENT);
	assert_true(a.token_expired);
	assert_string_equal(a.code, "190");
	whatsapp_proto_answer_free(&a);

	whatsapp_proto_answer(502, "<html>Bad Gateway</html>", 24, &a);
	assert_int_equal(a.kind, CHANNEL_FAIL_TEMPORARY);
	assert_string_equal(a.code, "http-502");
	whatsapp_proto_answer_free(&a);

	/* Accepted without an id: not counted as sent. */
	whatsapp_proto_answer(200, "{}", 2, &a);
	assert_false(a.ok);
	assert_int_equal(a.kind, CHANNEL_FAIL_TEMPORARY);
	whatsapp_proto_answer_free(&a);
}

static struct channel_msg
msg_to(const char *to, const char *body, int window_open)
{
	struct channel_msg m;

	memset(&m, 0, sizeof m);
	m.id = 42;
	m.to = to;
	m.body = body;
	m.window_open = window_open;
	m.language = "id";
	m.attempt = 1;
	return m;
}

static void
test_payload_text(void **state)
{
	struct channel_msg m = msg_to("+6281234567890", "Halo Pak, LKPM sudah kami terima.", 1);
	char *cause = NULL, *s;
	json_t *p = whatsapp_proto_payload(&m, "lkpm_balasan", "id", &cause);

	assert_non_null(p);
	s = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(s, "{\"biz_opaque_callback_data\":\"42\",\"messaging_product\":\"whatsapp\","
	    "\"recipient_type\":\"individual\",\"text\":{\"body\":\"Halo Pak, LKPM sudah kami terima.\","
	    "\"preview_url\":false},\"to\":\"6281234567890\",\"type\":\"text\"}");
	free(s);
	json_decref(p);
}

static void
test_payload_template(void **state)
{
	struct channel_msg m = msg_to("+6281234567890", "Baris satu\nBaris\tdua    tiga", 0);
	char *cause = NULL, *s;
	json_t *p = whatsapp_proto_payload(&m, "lkpm_balasan", "id", &cause);

	assert_non_null(p);
	s = json_dumps(json_object_get(p, "template"), JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(s, "{\"components\":[{\"parameters\":[{\"text\":\"Baris satu Baris dua tiga\","
	    "\"type\":\"text\"}],\"type\":\"body\"}],\"language\":{\"code\":\"id\"},\"name\":"
	    "\"lkpm_balasan\"}");
	assert_string_equal(json_string_value(json_object_get(p, "type")), "template");
	assert_null(json_object_get(p, "text"));
	free(s);
	json_decref(p);

	/* In the window, but the message asks for the template. */
	m.window_open = 1;
	m.use_template = 1;
	p = whatsapp_proto_payload(&m, "lkpm_balasan", "id", &cause);
	assert_string_equal(json_string_value(json_object_get(p, "type")), "template");
	json_decref(p);
}

static void
test_payload_own_template(void **state)
{
	struct channel_msg m = msg_to("6281234567890", "ignored", 0);
	char *cause = NULL, *s;
	json_t *p;

	m.template = json_loads("{\"name\":\"lkpm_pengingat\",\"params\":[\"PT Maju\",\"15 April 2026\",3]}",
	    0, NULL);
	m.language = "en";
	p = whatsapp_proto_payload(&m, "lkpm_balasan", "id", &cause);
	assert_non_null(p);
	s = json_dumps(json_object_get(p, "template"), JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(s, "{\"components\":[{\"parameters\":[{\"text\":\"PT Maju\",\"type\":\"text\"},"
	    "{\"text\":\"15 April 2026\",\"type\":\"text\"},{\"text\":\"3\",\"type\":\"text\"}],\"type\":"
	    "\"body\"}],\"language\":{\"code\":\"en\"},\"name\":\"lkpm_pengingat\"}");
	free(s);
	json_decref(p);
	json_decref(m.template);

	m.template = json_loads("{\"name\":\"no_params\",\"language\":\"id\"}", 0, NULL);
	p = whatsapp_proto_payload(&m, NULL, "id", &cause);
	assert_null(json_object_get(json_object_get(p, "template"), "components"));
	json_decref(p);
	json_decref(m.template);
}

static void
test_payload_refused(void **state)
{
	struct channel_msg m = msg_to("+6281234567890", "Halo", 0);
	char *cause = NULL;

	assert_null(whatsapp_proto_payload(&m, "", "id", &cause));
	assert_non_null(strstr(cause, "template_name"));
	free(cause);
	cause = NULL;

	m = msg_to("alice@example.com", "Halo", 1);
	assert_null(whatsapp_proto_payload(&m, "t", "id", &cause));
	assert_non_null(strstr(cause, "E.164"));
	free(cause);
	cause = NULL;

	m = msg_to("+6281234567890", "\xff\xfe", 1);
	assert_null(whatsapp_proto_payload(&m, "t", "id", &cause));
	assert_non_null(strstr(cause, "UTF-8"));
	free(cause);
}

static void
test_address(void **state)
{
	char out[20];

	assert_int_equal(whatsapp_proto_address("6281234567890", out, sizeof out), 0);
	assert_string_equal(out, "+6281234567890");
	assert_int_equal(whatsapp_proto_address("+6281234567890", out, sizeof out), -1);
	assert_int_equal(whatsapp_proto_address("081234567890", out, sizeof out), -1);
	assert_int_equal(whatsapp_proto_address("62812a4567890", out, sizeof out), -1);
	assert_int_equal(whatsapp_proto_address("123456", out, sizeof out), -1);
	assert_int_equal(whatsapp_proto_address("1234567890123456", out, sizeof out), -1);
	assert_int_equal(whatsapp_proto_address(NULL, out, sizeof out), -1);
}

static void
test_parse_text(void **state)
{
	struct got g;
	struct got_msg *m = parse_one("{\"from\":\"6281234567890\",\"id\":\"wamid.T1\",\"timestamp\":"
	    "\"1764300000\",\"type\":\"text\",\"text\":{\"body\":\"Selamat pagi\"},\"context\":"
	    "{\"from\":\"6281100000000\",\"id\":\"wamid.OURS\"}}", &g);

	assert_string_equal(m->address, "+6281234567890");
	assert_string_equal(m->provider_id, "wamid.T1");
	assert_string_equal(m->content_type, "text");
	assert_string_equal(m->body, "Selamat pagi");
	assert_string_equal(m->profile_name, "Budi Santoso");
	assert_int_equal(m->timestamp, 1764300000LL);
	assert_string_equal(meta_str(m->meta, "context", "id"), "wamid.OURS");
	assert_string_equal(meta_str(m->meta, "wa_id", NULL), "6281234567890");
	assert_string_equal(meta_str(m->meta, "type", NULL), "text");
	got_free(&g);
}

/* One row per message type: the part, then what must come out. */
struct type_case {
	const char *type;
	const char *part;
	const char *content_type;
	const char *body;
	const char *meta_key, *meta_sub, *meta_want;
};

static void
test_parse_every_type(void **state)
{
	static const struct type_case cases[] = {
		{ "image", "{\"id\":\"M1\",\"mime_type\":\"image/jpeg\",\"sha256\":\"abc\",\"caption\":\"KTP\"}",
		  "image", "KTP", "media", "id", "M1" },
		{ "image", "{\"id\":\"M1\",\"mime_type\":\"image/jpeg\",\"sha256\":\"abc\"}",
		  "image", "", "media", "sha256", "abc" },
		{ "document", "{\"id\":\"M2\",\"mime_type\":\"application/pdf\",\"sha256\":\"d\","
		  "\"filename\":\"lkpm.pdf\",\"caption\":\"Laporan\"}",
		  "document", "Laporan", "media", "filename", "lkpm.pdf" },
		{ "audio", "{\"id\":\"M3\",\"mime_type\":\"audio/mpeg\",\"voice\":false}",
		  "audio", "", "media", "mime_type", "audio/mpeg" },
		{ "audio", "{\"id\":\"M4\",\"mime_type\":\"audio/ogg; codecs=opus\",\"voice\":true}",
		  "voice", "", "media", "id", "M4" },
		{ "video", "{\"id\":\"M5\",\"mime_type\":\"video/mp4\",\"caption\":\"Lokasi\"}",
		  "video", "Lokasi", "media", "id", "M5" },
		{ "sticker", "{\"id\":\"M6\",\"mime_type\":\"image/webp\",\"animated\":false}",
		  "sticker", "", "media", "mime_type", "image/webp" },
		{ "location", "{\"latitude\":-2.32,\"longitude\":115.46,\"name\":\"Kantor DPMPTSP\","
		  "\"address\":\"Paringin, Balangan\"}",
		  "location", "Kantor DPMPTSP, Paringin, Balangan", "location", "name", "Kantor DPMPTSP" },
		{ "location", "{\"latitude\":-2.32,\"longitude\":115.46}",
		  "location", "", NULL, NULL, NULL },
		{ "contacts", "[{\"name\":{\"formatted_name\":\"Siti Aminah\",\"first_name\":\"Siti\"},"
		  "\"phones\":[{\"phone\":\"+62 812 0000 1111\",\"wa_id\":\"6281200001111\"}]},"
		  "{\"name\":{\"formatted_name\":\"Andi\"}}]",
		  "contacts", "Siti Aminah, Andi", NULL, NULL, NULL },
		{ "reaction", "{\"message_id\":\"wamid.OURS\",\"emoji\":\"\xf0\x9f\x91\x8d\"}",
		  "reaction", "\xf0\x9f\x91\x8d", "reaction", "message_id", "wamid.OURS" },
		{ "button", "{\"text\":\"Sudah lapor\",\"payload\":\"SUDAH\"}",
		  "button", "Sudah lapor", "button", "payload", "SUDAH" },
		{ "interactive", "{\"type\":\"button_reply\",\"button_reply\":{\"id\":\"b1\",\"title\":\"Ya\"}}",
		  "interactive", "Ya", "interactive", "id", "b1" },
		{ "interactive", "{\"type\":\"list_reply\",\"list_reply\":{\"id\":\"kbli\",\"title\":\"01111\","
		  "\"description\":\"Pertanian jagung\"}}",
		  "interactive", "01111", "interactive", "type", "list_reply" },
	};
	struct got g;
	size_t i;

	for (i = 0; i < nitems(cases); i++) {
		char *msg = msg_of(cases[i].type, cases[i].part);
		struct got_msg *m = parse_one(msg, &g);

		if (strcmp(m->content_type, cases[i].content_type) != 0 || strcmp(m->body, cases[i].body) != 0)
			fail_msg("case %zu (%s): got %s \"%s\", want %s \"%s\"", i, cases[i].type,
			    m->content_type, m->body, cases[i].content_type, cases[i].body);
		if (cases[i].meta_key != NULL) {
			const char *v = meta_str(m->meta, cases[i].meta_key, cases[i].meta_sub);

			if (v == NULL || strcmp(v, cases[i].meta_want) != 0)
				fail_msg("case %zu (%s): meta %s.%s is %s", i, cases[i].type, cases[i].meta_key,
				    cases[i].meta_sub, v != NULL ? v : "absent");
		}
		assert_string_equal(meta_str(m->meta, "type", NULL), cases[i].type);
		free(msg);
		got_free(&g);
	}
}

static void
test_parse_typed_meta(void **state)
{
	struct got g;
	char *msg = msg_of("location", "{\"latitude\":-2.32,\"longitude\":115.46}");
	struct got_msg *m = parse_one(msg, &g);

	assert_true(json_real_value(json_object_get(json_object_get(m->meta, "location"), "latitude")) < -2.3);
	assert_true(json_real_value(json_object_get(json_object_get(m->meta, "location"), "longitude")) > 115.4);
	free(msg);
	got_free(&g);

	msg = msg_of("audio", "{\"id\":\"M4\",\"mime_type\":\"audio/ogg; codecs=opus\",\"voice\":true}");
	m = parse_one(msg, &g);
	assert_true(json_is_true(json_object_get(json_object_get(m->meta, "media"), "voice")));
	free(msg);
	got_free(&g);

	msg = msg_of("contacts", "[{\"name\":{\"formatted_name\":\"Siti\"}}]");
	m = parse_one(msg, &g);
	assert_int_equal(json_array_size(json_object_get(m->meta, "contacts")), 1);
	free(msg);
	got_free(&g);
}

static void
test_parse_unsupported(void **state)
{
	static const char *const msgs[] = {
		"{\"from\":\"6281234567890\",\"id\":\"wamid.U1\",\"timestamp\":\"1764300000\",\"type\":"
		"\"unsupported\",\"errors\":[{\"code\":131051,\"title\":\"Message type unknown\"}]}",
		"{\"from\":\"6281234567890\",\"id\":\"wamid.U2\",\"timestamp\":\"1764300000\",\"type\":"
		"\"order\",\"order\":{\"catalog_id\":\"9\",\"product_items\":[]}}",
		"{\"from\":\"6281234567890\",\"id\":\"wamid.U3\",\"timestamp\":\"1764300000\",\"type\":"
		"\"system\",\"system\":{\"body\":\"User changed number\",\"type\":\"user_changed_number\"}}",
		"{\"from\":\"6281234567890\",\"id\":\"wamid.U4\",\"timestamp\":\"1764300000\",\"type\":"
		"\"hologram\",\"hologram\":{\"x\":1}}",
		/* A known type whose part is missing. */
		"{\"from\":\"6281234567890\",\"id\":\"wamid.U5\",\"timestamp\":\"1764300000\",\"type\":\"image\"}",
	};
	struct got g;
	size_t i;

	for (i = 0; i < nitems(msgs); i++) {
		struct got_msg *m = parse_one(msgs[i], &g);
		json_t *raw = json_object_get(m->meta, "raw");

		assert_string_equal(m->content_type, "unsupported");
		assert_string_equal(m->body, "");
		assert_true(json_is_object(raw));
		assert_string_equal(json_string_value(json_object_get(raw, "id")), m->provider_id);
		got_free(&g);
	}
	/* The raw message is kept whole: the order's items are there. */
	parse_one(msgs[1], &g);
	assert_true(json_is_array(json_object_get(json_object_get(json_object_get(g.msgs[0].meta, "raw"),
	    "order"), "product_items")));
	got_free(&g);
}

static void
test_parse_statuses(void **state)
{
	static const char hook[] = "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\","
	    "\"changes\":[{\"field\":\"messages\",\"value\":{\"messaging_product\":\"whatsapp\","
	    "\"metadata\":{\"phone_number_id\":\"" PNID "\"},\"statuses\":["
	    "{\"id\":\"wamid.A\",\"status\":\"delivered\",\"timestamp\":\"1764300001\",\"recipient_id\":"
	    "\"6281234567890\"},"
	    "{\"id\":\"wamid.A\",\"status\":\"read\",\"timestamp\":\"1764300002\"},"
	    "{\"id\":\"wamid.B\",\"status\":\"failed\",\"timestamp\":\"1764300003\",\"errors\":[{\"code\":"
	    "131026,\"title\":\"Message undeliverable\"}]},"
	    "{\"id\":\"wamid.C\",\"status\":\"deleted\",\"timestamp\":\"1764300004\"},"
	    "{\"status\":\"sent\",\"timestamp\":\"1764300005\"}]}}]}]}";
	struct got g;

	assert_int_equal(parse(hook, &g), 3);
	assert_int_equal(g.nstatuses, 3);
	assert_string_equal(g.statuses[0].status, "delivered");
	assert_int_equal(g.statuses[0].timestamp, 1764300001LL);
	assert_null(g.statuses[0].code);
	assert_string_equal(g.statuses[1].status, "read");
	assert_string_equal(g.statuses[2].id, "wamid.B");
	assert_string_equal(g.statuses[2].status, "failed");
	assert_string_equal(g.statuses[2].code, "131026");
	assert_string_equal(g.statuses[2].text, "Message undeliverable");
	got_free(&g);
}

static void
test_parse_many_and_foreign(void **state)
{
	static const char hook[] = "{\"object\":\"whatsapp_business_account\",\"entry\":["
	    "{\"id\":\"1\",\"changes\":["
	    "{\"field\":\"messages\",\"value\":{\"metadata\":{\"phone_number_id\":\"" PNID "\"},"
	    "\"contacts\":[{\"profile\":{\"name\":\"A\"},\"wa_id\":\"6281200000001\"},"
	    "{\"profile\":{\"name\":\"B\"},\"wa_id\":\"6281200000002\"}],"
	    "\"messages\":[{\"from\":\"6281200000001\",\"id\":\"wamid.1\",\"type\":\"text\",\"text\":"
	    "{\"body\":\"satu\"}},{\"from\":\"6281200000002\",\"id\":\"wamid.2\",\"type\":\"text\","
	    "\"text\":{\"body\":\"dua\"}}]}},"
	    "{\"field\":\"messages\",\"value\":{\"metadata\":{\"phone_number_id\":\"999\"},"
	    "\"messages\":[{\"from\":\"6281200000009\",\"id\":\"wamid.X\",\"type\":\"text\",\"text\":"
	    "{\"body\":\"not ours\"}}]}}]},"
	    "{\"id\":\"2\",\"changes\":[{\"field\":\"messages\",\"value\":{\"metadata\":"
	    "{\"phone_number_id\":\"" PNID "\"},\"messages\":[{\"from\":\"6281200000003\",\"id\":"
	    "\"wamid.3\",\"type\":\"text\",\"text\":{\"body\":\"tiga\"}}],\"statuses\":[{\"id\":"
	    "\"wamid.S\",\"status\":\"sent\",\"timestamp\":\"1\"}]}},"
	    "{\"field\":\"account_update\",\"value\":{\"metadata\":{\"phone_number_id\":\"" PNID "\"},"
	    "\"messages\":[{\"from\":\"6281200000004\",\"id\":\"wamid.4\",\"type\":\"text\",\"text\":"
	    "{\"body\":\"wrong field\"}}]}}]}]}";
	struct got g;

	assert_int_equal(parse(hook, &g), 4);
	assert_int_equal(g.nmsgs, 3);
	assert_int_equal(g.nstatuses, 1);
	assert_string_equal(g.msgs[0].body, "satu");
	assert_string_equal(g.msgs[0].profile_name, "A");
	assert_string_equal(g.msgs[1].profile_name, "B");
	assert_string_equal(g.msgs[2].address, "+6281200000003");
	assert_null(g.msgs[2].profile_name);
	assert_int_equal(g.msgs[2].timestamp, 0);
	got_free(&g);
}

static void
test_parse_bad_input(void **state)
{
	struct got g;
	char *hook;

	assert_int_equal(parse("{\"object\":\"page\",\"entry\":[]}", &g), -1);
	assert_int_equal(parse("[1,2]", &g), -1);
	assert_int_equal(parse("{\"object\":\"whatsapp_business_account\"}", &g), 0);
	/* Senders that are not E.164 digits, and a message without an id, are skipped. */
	hook = hook_messages("[{\"from\":\"+6281234567890\",\"id\":\"wamid.a\",\"type\":\"text\",\"text\":"
	    "{\"body\":\"x\"}},{\"from\":\"0812\",\"id\":\"wamid.b\",\"type\":\"text\",\"text\":{\"body\":"
	    "\"x\"}},{\"from\":\"6281234567890\",\"type\":\"text\",\"text\":{\"body\":\"x\"}},"
	    "{\"from\":\"6281234567890\",\"id\":\"wamid.ok\",\"type\":\"text\",\"text\":{\"body\":\"ok\"}}]");
	assert_int_equal(parse(hook, &g), 1);
	assert_string_equal(g.msgs[0].provider_id, "wamid.ok");
	free(hook);
	got_free(&g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify_table),
		cmocka_unit_test(test_answer_ok),
		cmocka_unit_test(test_answer_errors),
		cmocka_unit_test(test_payload_text),
		cmocka_unit_test(test_payload_template),
		cmocka_unit_test(test_payload_own_template),
		cmocka_unit_test(test_payload_refused),
		cmocka_unit_test(test_address),
		cmocka_unit_test(test_parse_text),
		cmocka_unit_test(test_parse_every_type),
		cmocka_unit_test(test_parse_typed_meta),
		cmocka_unit_test(test_parse_unsupported),
		cmocka_unit_test(test_parse_statuses),
		cmocka_unit_test(test_parse_many_and_foreign),
		cmocka_unit_test(test_parse_bad_input),
	};

	log_set_level(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
