/*
 * wa-emu-control.c: the control API under /_emu/ (loopback peers only) for
 * faults and counts: the fault document (parsed, shown, replaced as a whole),
 * the stats since start or the last reset, and the reset itself.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <jansson.h>

#include "wa-emu.h"

/* Parse one fault kind ("5xx", "500", "503", "429", "reset", "timeout" or an error code). */
static int
emu_fault_kind(json_t *v)
{
	const char *s = json_string_value(v);
	char *end;
	long code;

	if (json_is_integer(v))
		return json_integer_value(v) > 0 && json_integer_value(v) < 10000000 ?
		    (int)json_integer_value(v) : 0;
	if (s == NULL)
		return 0;
	if (strcmp(s, "5xx") == 0)
		return EMU_KIND_5XX;
	if (strcmp(s, "reset") == 0)
		return EMU_KIND_RESET;
	if (strcmp(s, "timeout") == 0)
		return EMU_KIND_TIMEOUT;
	if (strcmp(s, "500") == 0)
		return 1;
	if (strcmp(s, "503") == 0)
		return 2;
	if (strcmp(s, "429") == 0)
		return 130429;
	code = strtol(s, &end, 10);
	return *end == '\0' && code > 0 && code < 10000000 ? (int)code : 0;
}

/* Read an integer member in [lo, hi] into out; absent keeps out. */
static int
emu_json_int(json_t *j, const char *key, int lo, int hi, int *out)
{
	json_t *v = json_object_get(j, key);

	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi)
		return -1;
	*out = (int)json_integer_value(v);
	return 0;
}

/* Check that every member of per_recipient maps to a positive code. */
static int
emu_faults_recipients_ok(json_t *pr)
{
	const char *k;
	json_t *v;

	if (!json_is_object(pr))
		return 0;
	json_object_foreach(pr, k, v) {
		if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
		    json_integer_value(v) >= 10000000)
			return 0;
	}
	return 1;
}

/* The first member of j whose name is not in keys, or NULL. */
const char *
emu_json_unknown_key(json_t *j, const char **keys, size_t nkeys)
{
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach(j, k, v) {
		for (i = 0; i < nkeys; i++) {
			if (strcmp(k, keys[i]) == 0)
				break;
		}
		if (i == nkeys)
			return k;
	}
	return NULL;
}

/* Parse a fault document into f; the reason for a refusal goes to why. */
static int
emu_faults_parse(json_t *j, struct emu_faults *f, const char **why)
{
	static const char *keys[] = { "fail_rate", "fail_kinds", "retry_after",
	    "delay_ms", "hold_ms", "per_recipient" };
	json_t *v, *kinds = json_object_get(j, "fail_kinds");
	const char *k;
	size_t i;

	*why = "faults must be a JSON object";
	if (!json_is_object(j))
		return -1;
	if ((k = emu_json_unknown_key(j, keys, sizeof keys / sizeof keys[0]))) {
		snprintf(emu_errbuf, sizeof emu_errbuf, "unknown key %.64s", k);
		*why = emu_errbuf;
		return -1;
	}
	v = json_object_get(j, "fail_rate");
	*why = "fail_rate must be a number from 0 to 1";
	if (v != NULL && (!json_is_number(v) || json_number_value(v) < 0 ||
	    json_number_value(v) > 1))
		return -1;
	f->fail_rate = v != NULL ? json_number_value(v) : 0;
	*why = "fail_kinds must be a list of \"5xx\", \"429\", \"500\", \"503\", "
	    "\"reset\", \"timeout\" or error codes";
	if (kinds != NULL && (!json_is_array(kinds) ||
	    json_array_size(kinds) > EMU_MAX_KINDS))
		return -1;
	json_array_foreach(kinds, i, v) {
		if ((f->kinds[i] = emu_fault_kind(v)) == 0)
			return -1;
		f->nkinds = i + 1;
	}
	*why = "retry_after must be 0 to 86400, delay_ms and hold_ms 0 to 600000";
	f->hold_ms = 60000;
	if (emu_json_int(j, "retry_after", 0, 86400, &f->retry_after) != 0 ||
	    emu_json_int(j, "delay_ms", 0, 600000, &f->delay_ms) != 0 ||
	    emu_json_int(j, "hold_ms", 0, 600000, &f->hold_ms) != 0)
		return -1;
	v = json_object_get(j, "per_recipient");
	*why = "per_recipient must map recipients to positive error codes";
	if (v != NULL && !emu_faults_recipients_ok(v))
		return -1;
	f->per_recipient = json_deep_copy(v);
	return 0;
}

/* The faults in force as JSON. */
static json_t *
emu_faults_json(void)
{
	struct emu_faults *f = &emu.faults;
	json_t *kinds = json_array();
	char num[16];
	size_t i;

	for (i = 0; i < f->nkinds; i++) {
		if (f->kinds[i] == EMU_KIND_5XX)
			snprintf(num, sizeof num, "5xx");
		else if (f->kinds[i] == EMU_KIND_RESET)
			snprintf(num, sizeof num, "reset");
		else if (f->kinds[i] == EMU_KIND_TIMEOUT)
			snprintf(num, sizeof num, "timeout");
		else
			snprintf(num, sizeof num, "%d", f->kinds[i]);
		json_array_append_new(kinds, json_string(num));
	}
	return json_pack("{s:f, s:o, s:i, s:i, s:i, s:o}", "fail_rate", f->fail_rate,
	    "fail_kinds", kinds, "retry_after", f->retry_after, "delay_ms",
	    f->delay_ms, "hold_ms", f->hold_ms, "per_recipient", f->per_recipient != NULL ?
	    json_incref(f->per_recipient) : json_object());
}

/* Drop every injected fault. */
void
emu_faults_clear(void)
{
	json_decref(emu.faults.per_recipient);
	memset(&emu.faults, 0, sizeof emu.faults);
}

/* POST /_emu/faults: replace the injected faults. */
void
emu_faults_set(struct evhttp_request *req, EMU_UNUSED char **seg)
{
	struct emu_faults f;
	json_t *j = emu_body_json(req);
	const char *why;

	memset(&f, 0, sizeof f);
	if (emu_faults_parse(j, &f, &why) != 0) {
		json_decref(f.per_recipient);
		emu_reply_control_error(req, 400, why);
	} else {
		emu_faults_clear();
		emu.faults = f;
		emu_log("Faults set. fail_rate=%g kinds=%zu delay_ms=%d",
		    f.fail_rate, f.nkinds, f.delay_ms);
		emu_reply_json(req, 200, emu_faults_json());
	}
	json_decref(j);
}

/* GET /_emu/faults: the faults in force. */
void
emu_faults_get(struct evhttp_request *req, EMU_UNUSED char **seg)
{
	emu_reply_json(req, 200, emu_faults_json());
}

/* GET /_emu/stats: counts since start or the last reset. */
void
emu_stats_get(struct evhttp_request *req, EMU_UNUSED char **seg)
{
	json_t *by = json_object();
	uint64_t pending = 0;
	char key[16];
	size_t i;

	for (i = 0; i < (size_t)emu.nworkers; i++)
		pending += emu.workers[i].njobs;
	for (i = 0; i < emu.ncodes; i++) {
		snprintf(key, sizeof key, "%d", emu.codes[i].code);
		json_object_set_new(by, key, json_integer((json_int_t)emu.codes[i].n));
	}
	emu_reply_json(req, 200, json_pack("{s:I, s:I, s:I, s:I, s:I, s:o, "
	    "s:{s:I, s:I, s:I}, s:I}", "received", (json_int_t)emu.received,
	    "accepted", (json_int_t)emu.accepted, "failed", (json_int_t)emu.failed,
	    "resets", (json_int_t)emu.resets, "timeouts", (json_int_t)emu.timeouts,
	    "by_code", by, "webhooks", "posted", (json_int_t)emu.hooks_posted,
	    "failed", (json_int_t)emu.hooks_failed, "pending",
	    (json_int_t)pending, "media", (json_int_t)emu.nmedia));
}

/* POST /_emu/reset: clear counts, faults and the record file. */
void
emu_reset(struct evhttp_request *req, EMU_UNUSED char **seg)
{
	emu.received = emu.accepted = emu.failed = 0;
	emu.resets = emu.timeouts = 0;
	emu.hooks_posted = emu.hooks_failed = 0;
	emu.ncodes = 0;
	emu_faults_clear();
	emu_record_truncate();
	emu_reply_json(req, 200, json_pack("{s:b}", "ok", 1));
}
