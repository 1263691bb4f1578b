/*
 * fuzz-csv.c: libFuzzer target for the row validation of linbatctl's CSV
 * imports. The first byte of the input picks a field check of ctl-import.h,
 * the rest (NUL-terminated) is the field as read; a check must either give
 * a value or a reason, never both, never neither.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-import.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every field check, in the order the first byte picks them. */
static const ctl_import_check_cb fuzz_csv_checks[] = {
	ctl_import_nib, ctl_import_scale, ctl_import_kbli, ctl_import_phone, ctl_import_email,
	ctl_import_kbli_version, ctl_import_language, ctl_import_channel, ctl_import_period,
	ctl_import_status, ctl_import_date,
};

/* One input: a check's number, then the field. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n = sizeof fuzz_csv_checks / sizeof fuzz_csv_checks[0];
	const char *reason = NULL;
	char *field, *out = NULL;
	int rc;

	if (size == 0)
		return 0;
	field = xmalloc(size);
	memcpy(field, data + 1, size - 1);
	field[size - 1] = '\0';
	rc = fuzz_csv_checks[data[0] % n](field, &out, &reason);
	if (rc == 0 ? reason != NULL : (rc != -1 || reason == NULL || out != NULL))
		abort();
	if (out != NULL && strlen(out) > 4 * size + 16)
		abort();
	free(out);
	free(field);
	return 0;
}
