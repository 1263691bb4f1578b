/*
 * test.c: the "test" channel adapter. It reaches no provider: a send is
 * appended to the file named by "record" as one JSON line
 * {"id","to","body","template","instance","attempt","at"} ("at": unix seconds
 * with microseconds, when it was written), and after "delay" the
 * core hears that it was sent (provider id "test-<id>"), or that it failed
 * the way "fail" says, for "fail_rate" percent of the sends. Failed sends are
 * not written. It is how the dispatcher's retries, template resends and
 * channel fallback are tested until the SMS and e-mail adapters exist.
 *
 * Its kind is "sms": identities are whatsapp, sms or email (the schema's
 * CHECK), and linbat.outbound_fallback only picks an instance whose kind is
 * the next identity kind, so an instance of kind "test" could never be a
 * fallback. As "sms" it stands in for the SMS adapters; the WhatsApp side is
 * the real adapter against tests/emulators/wa-emu.
 */
#include "config.h"

#include <sys/queue.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "test.h"
#include "util.h"

#define TEST_FAIL_NONE (-1)

static const struct conf_key test_keys[] = {
	{ NULL, "fail", CONF_ENUM, "none", 0, 0, "none|temporary|permanent|window_closed|rate_limited", 0,
	  "How sends fail: not at all, or as this kind of failure. window_closed fails only free "
	  "text outside the 24-hour window, as WhatsApp does; templates go through." },
	{ NULL, "fail_rate", CONF_INT, "100", 0, 100, NULL, 0,
	  "Percent of sends that fail the way \"fail\" says, chosen at random." },
	{ NULL, "retry_after", CONF_INT, "0", 0, 3600, NULL, 0,
	  "Seconds a failure asks the core to wait before the next attempt." },
	{ NULL, "delay", CONF_DURATION, "0", 0, 3600 * 1000, NULL, 0,
	  "How long each send takes before the core hears its answer." },
	{ NULL, "record", CONF_STRING, "", 0, 0, NULL, 0,
	  "File to which every sent message is appended as one JSON line; empty writes nothing." },
};

/* A send waiting for its delay; holds the core's message until the upcall. */
struct test_send {
	struct test *t;
	const struct channel_msg *msg;
	int fail;          /* TEST_FAIL_NONE, or an enum channel_fail */
	const char *code;
	struct event *ev;
	LIST_ENTRY(test_send) entry;
};

struct test {
	struct channel *ch;
	int fail;          /* TEST_FAIL_NONE, or an enum channel_fail */
	int fail_rate;
	int retry_after;
	struct timeval delay;
	char *record;
	int fd;
	int stopping, stopped;
	LIST_HEAD(, test_send) pending;
};

/* The failure code of a kind, as this adapter reports it. */
static const char *
test_code(int fail)
{
	switch (fail) {
	case CHANNEL_FAIL_TEMPORARY: return "test_temporary";
	case CHANNEL_FAIL_PERMANENT: return "test_permanent";
	case CHANNEL_FAIL_WINDOW_CLOSED: return "test_window_closed";
	case CHANNEL_FAIL_RATE_LIMITED: return "test_rate_limited";
	default: return "";
	}
}

/* Validate the section and keep its values; no I/O. */
static int
test_create(struct channel *ch, const struct conf_section *sec, char **cause)
{
	struct test *t = xcalloc(1, sizeof *t);
	const char *fail = conf_channel_str(sec, "fail");
	long long delay = conf_channel_int(sec, "delay");

	t->ch = ch;
	t->fail = strcmp(fail, "none") == 0 ? TEST_FAIL_NONE : channel_fail_parse(fail);
	t->fail_rate = (int)conf_channel_int(sec, "fail_rate");
	t->retry_after = (int)conf_channel_int(sec, "retry_after");
	t->delay.tv_sec = (time_t)(delay / 1000);
	t->delay.tv_usec = (suseconds_t)(delay % 1000 * 1000);
	t->record = xstrdup(conf_channel_str(sec, "record"));
	t->fd = -1;
	LIST_INIT(&t->pending);
	ch->priv = t;
	return 0;
}

/* Open the record file for appending. */
static int
test_start(struct channel *ch, char **cause)
{
	struct test *t = ch->priv;

	t->stopping = t->stopped = 0;
	if (t->record[0] == '\0' || t->fd >= 0)
		return 0;
	t->fd = open(t->record, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (t->fd < 0) {
		xasprintf(cause, "Cannot open the record file of channel %s: %s. file=%s", ch->name, strerror(errno),
		    t->record);
		return -1;
	}
	return 0;
}

/* Whether this send fails, and how: TEST_FAIL_NONE or an enum channel_fail. */
static int
test_decide(const struct test *t, const struct channel_msg *msg)
{
	if (t->fail == TEST_FAIL_NONE)
		return TEST_FAIL_NONE;
	if (t->fail == CHANNEL_FAIL_WINDOW_CLOSED && (msg->use_template || msg->window_open))
		return TEST_FAIL_NONE;
	if (t->fail_rate < 100 && random() % 100 >= t->fail_rate)
		return TEST_FAIL_NONE;
	return t->fail;
}

/* Append the message to the record file as one line; -1 if it could not be written. */
static int
test_record(struct test *t, const struct channel_msg *msg)
{
	json_t *line;
	struct timespec now;
	char *text;
	size_t len;
	ssize_t n;

	if (t->fd < 0)
		return 0;
	clock_gettime(CLOCK_REALTIME, &now);
	line = json_pack("{s:I,s:s,s:s,s:O?,s:s,s:i,s:f}", "id", (json_int_t)msg->id, "to", msg->to, "body",
	    msg->body != NULL ? msg->body : "", "template", msg->use_template ? msg->template : NULL, "instance",
	    t->ch->name, "attempt", msg->attempt, "at", (double)now.tv_sec + (double)now.tv_nsec / 1e9);
	text = json_dumps(line, JSON_COMPACT);
	json_decref(line);
	len = strlen(text);
	text[len] = '\n'; /* json_dumps's NUL becomes the newline; the write stops there */
	n = write(t->fd, text, len + 1);
	free(text);
	if (n == (ssize_t)(len + 1))
		return 0;
	log_warn("test", "Could not write to the record file. instance=%s file=%s reason=\"%s\"", t->ch->name,
	    t->record, n < 0 ? strerror(errno) : "short write");
	return -1;
}

/* Tell the core that the instance is stopped, once nothing is in flight. */
static void
test_maybe_stopped(struct test *t)
{
	if (t->stopping && !t->stopped && LIST_EMPTY(&t->pending)) {
		t->stopped = 1;
		channel_stopped(t->ch);
	}
}

/* Give the core the answer of one send; the message is the core's again after this. */
static void
test_answer(struct test_send *s)
{
	struct test *t = s->t;
	const struct channel_msg *msg = s->msg;
	int fail = s->fail;
	const char *code = s->code;
	char provider_id[40];

	LIST_REMOVE(s, entry);
	event_free(s->ev);
	free(s);
	if (fail == TEST_FAIL_NONE) {
		snprintf(provider_id, sizeof provider_id, "test-%lld", msg->id);
		channel_sent(t->ch, msg, provider_id);
	} else {
		channel_failed(t->ch, msg, (enum channel_fail)fail, code, "The test channel was told to fail.",
		    t->retry_after);
	}
	test_maybe_stopped(t);
}

/* The delay of a send is over. */
static void
test_fire(evutil_socket_t fd, short what, void *arg)
{
	test_answer(arg);
}

/* Write the message (unless it is to fail) and answer after the delay. */
static void
test_send(struct channel *ch, const struct channel_msg *msg)
{
	struct test *t = ch->priv;
	struct test_send *s;

	if (t->stopping) {
		channel_failed(ch, msg, CHANNEL_FAIL_TEMPORARY, "test_stopping", "The test channel is stopping.", 0);
		return;
	}
	s = xcalloc(1, sizeof *s);
	s->t = t;
	s->msg = msg;
	s->fail = test_decide(t, msg);
	s->code = test_code(s->fail);
	if (s->fail == TEST_FAIL_NONE && test_record(t, msg) != 0) {
		s->fail = CHANNEL_FAIL_TEMPORARY;
		s->code = "test_record";
	}
	s->ev = evtimer_new(ch->env->base, test_fire, s);
	LIST_INSERT_HEAD(&t->pending, s, entry);
	evtimer_add(s->ev, &t->delay);
}

/* Take no new sends; without drain, answer the pending ones now (they are written already). */
static void
test_stop(struct channel *ch, int drain)
{
	struct test *t = ch->priv;

	t->stopping = 1;
	while (!drain && !LIST_EMPTY(&t->pending))
		test_answer(LIST_FIRST(&t->pending));
	test_maybe_stopped(t);
}

/* Free the instance; sends still pending are dropped without an answer. */
static void
test_destroy(struct channel *ch)
{
	struct test *t = ch->priv;
	struct test_send *s;

	while ((s = LIST_FIRST(&t->pending)) != NULL) {
		LIST_REMOVE(s, entry);
		event_free(s->ev);
		free(s);
	}
	if (t->fd >= 0)
		close(t->fd);
	free(t->record);
	free(t);
	ch->priv = NULL;
}

const struct channel_type channel_test = {
	.name = "test",
	.kind = "sms",
	.keys = test_keys,
	.nkeys = nitems(test_keys),
	.create = test_create,
	.start = test_start,
	.stop = test_stop,
	.destroy = test_destroy,
	.send = test_send,
	.inbound = NULL,
};
