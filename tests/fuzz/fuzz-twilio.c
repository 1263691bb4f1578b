/*
 * fuzz-twilio.c: libFuzzer target for the form bodies of the Twilio-style
 * SMS adapter. The input is an application/x-www-form-urlencoded body; it
 * is decoded and sorted (sms_twilio_params), its fields looked up as the
 * webhook does, its numbers normalised, and its signature computed over it,
 * as the webhook does before it trusts a body.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phone.h"
#include "sms.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The fields a Twilio webhook reads. */
static const char *const fuzz_twilio_fields[] = {
	"From", "To", "Body", "MessageSid", "SmsSid", "MessageStatus", "ErrorCode", "NumMedia",
};

/* One input: a form body. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[PHONE_E164_MAX], *cause, *sig;
	struct sms_param *p;
	const char *v;
	size_t n, i;

	p = sms_twilio_params((const char *)data, size, &n);
	for (i = 0; i < sizeof fuzz_twilio_fields / sizeof fuzz_twilio_fields[0]; i++) {
		if ((v = sms_twilio_param(p, n, fuzz_twilio_fields[i])) == NULL)
			continue;
		cause = NULL;
		phone_normalise(v, out, sizeof out, &cause);
		free(cause);
		sms_kannel_gsm7(v);
	}
	for (i = 1; i < n; i++) {
		if (strcmp(p[i - 1].name, p[i].name) > 0)
			abort();
	}
	sig = sms_twilio_signature("12345678901234567890123456789012", "https://linbat.example/webhooks/sms",
	    p, n);
	free(sig);
	sms_twilio_params_free(p, n);
	return 0;
}
