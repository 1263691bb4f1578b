/*
 * fuzz-phone.c: libFuzzer target for phone_normalise. The input is a number
 * as someone might write it (NUL-terminated copy); a number taken must come
 * out as "+" and 7 to 15 digits, and one refused must come with a reason.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phone.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether out is E.164: "+", a non-zero digit, then digits, 8 to 16 bytes. */
static int
fuzz_phone_e164(const char *out)
{
	size_t len = strlen(out);

	if (len < 8 || len > PHONE_E164_MAX - 1 || out[0] != '+' || out[1] < '1' || out[1] > '9')
		return 0;
	return strspn(out + 1, "0123456789") == len - 1;
}

/* One input: normalise it, and check what came out. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = xmalloc(size + 1), out[PHONE_E164_MAX], *cause = NULL;

	memcpy(in, data, size);
	in[size] = '\0';
	if (phone_normalise(in, out, sizeof out, &cause) == 0) {
		if (!fuzz_phone_e164(out))
			abort();
	} else if (cause == NULL || *cause == '\0') {
		abort();
	}
	free(cause);
	free(in);
	return 0;
}
