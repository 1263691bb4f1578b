/*
 * fuzz-whatsapp.c: libFuzzer target for the WhatsApp webhook parser. The
 * input is a webhook body; it goes through what whatsapp_webhook() does
 * after the signature check (json_loadb, an object only, then
 * whatsapp_proto_parse), and the sink reads every field it is handed, so a
 * dangling or unterminated string shows under ASan. The same bytes are also
 * read as a Graph API answer to a send (whatsapp_proto_answer).
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "whatsapp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The length of s, 0 for NULL: reads the whole string. */
static size_t
fuzz_wa_len(const char *s)
{
	return s == NULL ? 0 : strlen(s);
}

/* Sink: touch every field of an inbound message. */
static void
fuzz_wa_message(const struct channel_inbound *in, void *arg)
{
	size_t *n = arg;

	*n += fuzz_wa_len(in->address) + fuzz_wa_len(in->provider_id) + fuzz_wa_len(in->content_type) +
	    fuzz_wa_len(in->body) + fuzz_wa_len(in->profile_name) + (size_t)in->timestamp;
	if (in->meta != NULL)
		free(json_dumps(in->meta, JSON_COMPACT));
}

/* Sink: touch every field of a status. */
static void
fuzz_wa_status(const struct whatsapp_status *s, void *arg)
{
	size_t *n = arg;

	*n += fuzz_wa_len(s->id) + fuzz_wa_len(s->status) + fuzz_wa_len(s->recipient) +
	    fuzz_wa_len(s->callback_data) + fuzz_wa_len(s->error_code) + fuzz_wa_len(s->error_text);
}

/* One input: a webhook body, then the same bytes as a send's answer. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct whatsapp_sink sink = { fuzz_wa_message, fuzz_wa_status };
	struct whatsapp_answer a;
	json_error_t err;
	json_t *root;
	char *cause = NULL;
	size_t n = 0;

	log_set_level(LOG_LEVEL_ERROR);
	root = json_loadb((const char *)data, size, 0, &err);
	if (root != NULL && json_is_object(root)) {
		whatsapp_proto_parse(root, "106540352242922", &sink, &n, &cause);
		free(cause);
	}
	json_decref(root);
	whatsapp_proto_answer(size > 0 ? 200 + data[0] % 400 : 200, (const char *)data, size, &a);
	whatsapp_proto_answer_free(&a);
	return 0;
}
