/*
 * fuzz-template.c: libFuzzer target for the reminder text renderer and its
 * check. The input is a text (NUL-terminated copy); rendering must not
 * crash, must give back a text with no "{{" the input lacked a placeholder
 * for, must leave a text without "{{" as it is, and the check must agree
 * with the renderer: a text that passes has every "{{NAME}}" filled.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct template_values v = {
		"PT {{nib}} \"Uji\"", "1234567890123", "2026-Q1", 2026, 4, 15, -3, "id",
	};
	char *in = xmalloc(size + 1), *out, *bare, *cause = NULL;
	size_t i;

	memcpy(in, data, size);
	in[size] = '\0';
	out = template_render(in, &v);
	if (strstr(in, "{{") == NULL && strcmp(in, out) != 0)
		abort();
	if (template_check(in, &cause) != 0) {
		if (cause == NULL || strstr(cause, "unknown placeholder {{") == NULL)
			abort();
		free(cause);
	}
	/* every placeholder gone: the rendering of a text without the company's braces has no placeholder left */
	bare = template_render(in, &(struct template_values){ "PT", "1", "P", 2026, 4, 15, 1, "en" });
	for (i = 0; template_placeholders[i] != NULL; i++) {
		char tok[32];

		snprintf(tok, sizeof tok, "{{%s}}", template_placeholders[i]);
		if (strstr(in, tok) == NULL && strstr(bare, tok) != NULL)
			abort();
	}
	free(bare);
	free(out);
	free(in);
	return 0;
}
