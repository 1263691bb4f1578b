/*
 * test-twilio.c: the protocol parts of the SMS adapters that need no I/O.
 * X-Twilio-Signature against the vectors Twilio publishes in its helper
 * libraries' test suites (twilio-python tests/unit/test_request_validator.py:
 * token 12345, a URL with a query, call parameters, repeated names, and the
 * same URL with explicit ports), the form decoder's order, and the GSM-7
 * test that decides when Kannel must send UCS-2.
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

#include "sms.h"
#include "util.h"

/* One published vector: URL, form body, expected signature. */
struct twilio_vector {
	const char *url;
	const char *form;
	const char *signature;
};

#define TWILIO_TOKEN "12345"
#define TWILIO_CALL "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309" \
	"&To=%2B18005551212"

static const struct twilio_vector twilio_vectors[] = {
	{ "https://mycompany.com/myapp.php?foo=1&bar=2", TWILIO_CALL, "RSOYDt4T1cUTdK1PDd93/VVr8B8=" },
	/* the same parameters in another order sign the same */
	{ "https://mycompany.com/myapp.php?foo=1&bar=2",
	  "To=%2B18005551212&From=%2B14158675309&Digits=1234&Caller=%2B14158675309&CallSid=CA1234567890ABCDE",
	  "RSOYDt4T1cUTdK1PDd93/VVr8B8=" },
	/* a repeated name: its values are sorted too */
	{ "https://mycompany.com/myapp.php?foo=1&bar=2", "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234",
	  "IK+Dwps556ElfBT0I3Rgjkr1wJU=" },
	{ "https://mycompany.com:443/myapp.php?foo=1&bar=2", TWILIO_CALL, "kvajT1Ptam85bY51eRf/AJRuM3w=" },
	{ "http://mycompany.com:80/myapp.php?foo=1&bar=2", TWILIO_CALL, "0ZXoZLH/DfblKGATFgpif+LLRf4=" },
	{ "http://mycompany.com:1234/myapp.php?foo=1&bar=2", TWILIO_CALL, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=" },
};

/* The signature of a form body under the test token (caller frees). */
static char *
twilio_sign(const char *url, const char *form)
{
	struct sms_param *p;
	size_t n;
	char *sig;

	p = sms_twilio_params(form, strlen(form), &n);
	sig = sms_twilio_signature(TWILIO_TOKEN, url, p, n);
	sms_twilio_params_free(p, n);
	return sig;
}

/* Every published vector gives its signature. */
static void
test_twilio_vectors(void **state)
{
	size_t i;
	char *sig;

	(void)state;
	for (i = 0; i < nitems(twilio_vectors); i++) {
		sig = twilio_sign(twilio_vectors[i].url, twilio_vectors[i].form);
		if (strcmp(sig, twilio_vectors[i].signature) != 0)
			fail_msg("vector %zu: got %s, want %s", i, sig, twilio_vectors[i].signature);
		free(sig);
	}
}

/* One changed parameter, a changed URL or another token gives another signature. */
static void
test_twilio_changes(void **state)
{
	const char *url = twilio_vectors[0].url, *want = twilio_vectors[0].signature;
	struct sms_param *p;
	char *sig;
	size_t n;

	(void)state;
	sig = twilio_sign(url, "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1235&From=%2B14158675309"
	    "&To=%2B18005551212");
	assert_string_not_equal(sig, want);
	free(sig);
	sig = twilio_sign("https://mycompany.com/myapp.php?foo=1&bar=3", TWILIO_CALL);
	assert_string_not_equal(sig, want);
	free(sig);
	p = sms_twilio_params(TWILIO_CALL, strlen(TWILIO_CALL), &n);
	sig = sms_twilio_signature("12346", url, p, n);
	assert_string_not_equal(sig, want);
	free(sig);
	sms_twilio_params_free(p, n);
}

/* The decoder sorts by name then value and decodes + and %XX in both. */
static void
test_twilio_params(void **state)
{
	const char form[] = "To=%2B62811&Body=Halo+Pak%21&Digits=2&Digits=1&Empty=&Bare";
	struct sms_param *p;
	size_t n;

	(void)state;
	p = sms_twilio_params(form, strlen(form), &n);
	assert_int_equal(n, 6);
	assert_string_equal(p[0].name, "Bare");
	assert_string_equal(p[0].value, "");
	assert_string_equal(p[1].name, "Body");
	assert_string_equal(p[1].value, "Halo Pak!");
	assert_string_equal(p[2].value, "1");
	assert_string_equal(p[3].value, "2");
	assert_string_equal(sms_twilio_param(p, n, "To"), "+62811");
	assert_null(sms_twilio_param(p, n, "From"));
	sms_twilio_params_free(p, n);
	p = sms_twilio_params("", 0, &n);
	assert_int_equal(n, 0);
	sms_twilio_params_free(p, n);
}

/* Indonesian text, GSM's accents and its extension table are GSM-7; emoji and the rest are not. */
static void
test_kannel_gsm7(void **state)
{
	(void)state;
	assert_true(sms_kannel_gsm7("Batas LKPM triwulan III: 15 Oktober. Balas SUDAH bila sudah lapor."));
	assert_true(sms_kannel_gsm7("Caf\xc3\xa9 \xc3\x9c" "ber \xe2\x82\xac" "5 [ok] {x} ~ | ^ \\ @ $ \xc2\xa3"));
	assert_true(sms_kannel_gsm7("\xce\x94\xce\xa9 line\r\nbreak"));
	assert_true(sms_kannel_gsm7(""));
	assert_false(sms_kannel_gsm7("Terima kasih \xf0\x9f\x99\x8f"));
	assert_false(sms_kannel_gsm7("back`tick"));
	assert_false(sms_kannel_gsm7("tab\there"));
	assert_false(sms_kannel_gsm7("\xc3\xa2"));  /* a with circumflex */
	assert_false(sms_kannel_gsm7("\xe4\xbd\xa0")); /* CJK */
	assert_false(sms_kannel_gsm7("\xc3"));      /* truncated UTF-8 */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_twilio_vectors),
		cmocka_unit_test(test_twilio_changes),
		cmocka_unit_test(test_twilio_params),
		cmocka_unit_test(test_kannel_gsm7),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
