/*
 * test-inflight.c: the work in flight of an adapter instance (inflight.c)
 * without I/O: which ops a stop lets go of, the one upcall each send let go
 * of gets, and that the core hears "stopped" exactly once, when the last op
 * still on the list ends.
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

#include "inflight.h"

/* What the core heard. */
struct heard {
	int failed;
	long long failed_id;
	char code[32];
	char text[160];
	int stopped;
};

static void
heard_failed(struct channel *ch, long long id, enum channel_fail kind, const char *code, const char *text,
    int retry_after_s, void *arg)
{
	struct heard *h = arg;

	assert_int_equal(kind, CHANNEL_FAIL_TEMPORARY);
	h->failed++;
	h->failed_id = id;
	snprintf(h->code, sizeof h->code, "%s", code);
	snprintf(h->text, sizeof h->text, "%s", text);
}

static void
heard_stopped(struct channel *ch, void *arg)
{
	struct heard *h = arg;

	h->stopped++;
}

static void
no_answer(struct channel *ch, const struct channel_msg *msg, CURL *easy, long status, const char *body, size_t len)
{
	fail_msg("no transfer runs in these tests");
}

static const struct channel_type fake_type = { .name = "test", .kind = "test" };

/* An instance with one send and one media fetch in flight. */
struct fixture {
	struct channel ch;
	struct heard h;
	struct channel_msg msg;
	struct inflight set;
	struct inflight_op *send, *media;
};

static void
fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof *f);
	f->ch.type = &fake_type;
	f->ch.name = "x1";
	f->ch.on_failed = heard_failed;
	f->ch.on_stopped = heard_stopped;
	f->ch.upcall_arg = &f->h;
	f->msg.id = 42;
	inflight_init(&f->set, &f->ch, "test", "Test", "the provider", no_answer, NULL);
	inflight_start(&f->set);
	f->send = inflight_op_new(&f->set, INFLIGHT_SEND);
	f->send->msg = &f->msg;
	f->media = inflight_op_new(&f->set, INFLIGHT_MEDIA);
	f->media->mime_type = strdup("image/jpeg");
}

/* Drain: media work is let go of at once, the send finishes, then "stopped" once. */
static void
test_stop_drain(void **state)
{
	struct fixture f;

	fixture_init(&f);
	inflight_stop(&f.set, 1);
	assert_null(f.media->set);
	assert_ptr_equal(f.send->set, &f.set);
	assert_int_equal(f.h.failed, 0);
	assert_int_equal(f.h.stopped, 0);
	assert_int_equal(inflight_refuse(&f.set, &f.msg), 1);
	assert_int_equal(f.h.failed, 1);
	assert_string_equal(f.h.code, "stopping");
	assert_string_equal(f.h.text, "The Test channel is stopping.");
	inflight_op_done(f.media); /* its callback came: freed, nothing told */
	assert_int_equal(f.h.stopped, 0);
	inflight_op_done(f.send);
	assert_int_equal(f.h.stopped, 1);
	inflight_destroy(&f.set);
	assert_int_equal(f.h.stopped, 1);
}

/* No drain: the send is failed as temporary at once, and the instance stopped. */
static void
test_stop_now(void **state)
{
	struct fixture f;

	fixture_init(&f);
	assert_int_equal(inflight_refuse(&f.set, &f.msg), 0);
	inflight_stop(&f.set, 0);
	assert_int_equal(f.h.failed, 1);
	assert_int_equal(f.h.failed_id, 42);
	assert_string_equal(f.h.code, "stopped");
	assert_string_equal(f.h.text, "The Test channel stopped before the provider answered.");
	assert_int_equal(f.h.stopped, 1);
	assert_null(f.send->set);
	assert_null(f.media->set);
	/* the callbacks that come later only free */
	inflight_op_done(f.send);
	inflight_op_done(f.media);
	assert_int_equal(f.h.failed, 1);
	assert_int_equal(f.h.stopped, 1);
}

/* Destroy lets go of everything without an upcall. */
static void
test_destroy(void **state)
{
	struct fixture f;

	fixture_init(&f);
	inflight_destroy(&f.set);
	assert_null(f.send->set);
	assert_null(f.media->set);
	assert_true(TAILQ_EMPTY(&f.set.ops));
	inflight_op_done(f.send);
	inflight_op_done(f.media);
	assert_int_equal(f.h.failed, 0);
	assert_int_equal(f.h.stopped, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stop_drain),
		cmocka_unit_test(test_stop_now),
		cmocka_unit_test(test_destroy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
