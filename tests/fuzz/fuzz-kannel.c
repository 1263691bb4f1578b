/*
 * fuzz-kannel.c: libFuzzer target for what the Kannel adapter reads from
 * smsbox's get-url: the query string is decoded as http.c decodes it
 * (libevent's evhttp_parse_query_str), then from, text, id, type and ts are
 * looked up, the sender normalised and the text classed as GSM 7-bit, as
 * sms_kannel_mo() and sms_kannel_dlr() do.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "phone.h"
#include "sms.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The parameters smsbox sends. */
static const char *const fuzz_kannel_fields[] = { "from", "to", "text", "id", "type", "ts", "secret" };

/* One input: a query string (NUL-terminated copy). */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evkeyvalq q;
	char *s = xmalloc(size + 1), out[PHONE_E164_MAX], *cause;
	const char *v;
	size_t i;

	memcpy(s, data, size);
	s[size] = '\0';
	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(s, &q) == 0) {
		for (i = 0; i < sizeof fuzz_kannel_fields / sizeof fuzz_kannel_fields[0]; i++) {
			if ((v = evhttp_find_header(&q, fuzz_kannel_fields[i])) == NULL)
				continue;
			cause = NULL;
			phone_normalise(v, out, sizeof out, &cause);
			free(cause);
			sms_kannel_gsm7(v);
		}
	}
	evhttp_clear_headers(&q);
	sms_kannel_gsm7(s);
	free(s);
	return 0;
}
