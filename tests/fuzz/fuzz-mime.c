/*
 * fuzz-mime.c: libFuzzer target for MIME intake: the input is a raw mail as
 * IMAP hands it to the email adapter, parsed by email_mime_parse() with a
 * small attachment limit so both branches (kept, refused) are reached, and
 * every string of the result read.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "email.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The length of s, 0 for NULL: reads the whole string. */
static size_t
fuzz_mime_len(const char *s)
{
	return s == NULL ? 0 : strlen(s);
}

/* One input: a raw mail. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct email_parsed p;
	char *cause = NULL, *j;
	size_t n;

	log_set_level(LOG_LEVEL_ERROR);
	email_mime_init();
	if (email_mime_parse((const char *)data, size, 256, &p, &cause) < 0) {
		free(cause);
		return 0;
	}
	n = fuzz_mime_len(p.message_id) + fuzz_mime_len(p.from_addr) + fuzz_mime_len(p.from_name) +
	    fuzz_mime_len(p.subject) + fuzz_mime_len(p.body) + fuzz_mime_len(p.auto_submitted) +
	    fuzz_mime_len(p.dsn_original) + fuzz_mime_len(p.dsn_status) + fuzz_mime_len(p.dsn_text);
	if (p.body != NULL && n > 0)
		free(email_mime_html_text(p.body));
	if ((j = json_dumps(p.attachments, JSON_COMPACT)) != NULL)
		free(j);
	email_parsed_free(&p);
	return 0;
}
