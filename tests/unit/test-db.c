/*
 * test-db.c: cmocka tests of the PostgreSQL pool against a real server (the
 * throwaway cluster of tests/with-pg, reached through LINBAT_TEST_DSN). They
 * check results, parameters, prepared statements, SQLSTATEs, concurrency,
 * LISTEN/NOTIFY, that the loop never stalls while a query runs, fail-fast
 * and recovery when the server is stopped and started again, and the query
 * timeout. Callbacks only record what they got; the checks run after the
 * loop returns, so a failed check never unwinds through libevent.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <event2/event.h>

#include "db.h"
#include "log.h"
#include "util.h"

/* What one query's callback got. */
struct test_result {
	int done;
	int status;        /* PQresultStatus, or -1 without a result */
	char *value;       /* row 0, cells joined by '|' */
	char *error;
	char sqlstate[6];
	uint64_t at_ms;
};

/*
 * A periodic timer that records the longest gap between its ticks, and the
 * longest once the time this process waited for a CPU (runnable, but other
 * processes ran: a loaded machine, not a blocked loop) is taken out.
 */
struct test_ticker {
	struct event *ev;
	uint64_t last_ms;
	uint64_t last_wait_ms;
	uint64_t max_gap_ms;
	uint64_t max_own_gap_ms;
	int ticks;
};

/* A run of queries, each submitted by the previous one's callback. */
struct test_chain {
	struct db *db;
	int n;
	int errors;
};

/* What a listener got. */
struct test_listener {
	int nulls;
	int payloads;
	char last[64];
};

static struct event_base *test_base;
static const char *test_dsn;
static int test_saved_stderr = -1; /* stderr while test_pg_down catches the log */

/* Record a query's outcome. */
static void
test_store(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct test_result *r = arg;
	struct buf b;
	int i;

	r->done++;
	r->at_ms = util_mono_ms();
	r->status = res != NULL ? (int)PQresultStatus(res) : -1;
	if (error != NULL) {
		r->error = xstrdup(error);
		snprintf(r->sqlstate, sizeof r->sqlstate, "%s", sqlstate);
		return;
	}
	if (PQntuples(res) == 0)
		return;
	buf_init(&b);
	for (i = 0; i < PQnfields(res); i++)
		buf_addf(&b, "%s%s", i > 0 ? "|" : "", PQgetisnull(res, 0, i) ? "NULL" : PQgetvalue(res, 0, i));
	r->value = buf_take(&b);
}

/* Free what test_store kept. */
static void
test_result_clear(struct test_result *r)
{
	free(r->value);
	free(r->error);
	memset(r, 0, sizeof *r);
}

/* Record a notification. */
static void
test_notified(const char *channel, const char *payload, void *arg)
{
	struct test_listener *l = arg;

	if (payload == NULL) {
		l->nulls++;
		return;
	}
	l->payloads++;
	snprintf(l->last, sizeof l->last, "%s", payload);
}

/* Keep the loop turning while a test waits for something. */
static void
test_nudge(evutil_socket_t fd, short what, void *arg)
{
}

/* Run the loop until done(arg) or ms pass; 0 if done, -1 on time out. */
static int
test_loop(int (*done)(void *), void *arg, int ms)
{
	struct timeval tv = { 0, 2000 };
	struct event *nudge = event_new(test_base, -1, EV_PERSIST, test_nudge, NULL);
	uint64_t until = util_mono_ms() + ms;

	event_add(nudge, &tv);
	while (!done(arg) && util_mono_ms() < until)
		event_base_loop(test_base, EVLOOP_ONCE);
	event_free(nudge);
	return done(arg) ? 0 : -1;
}

struct test_count {
	int *counter;
	int want;
};

/* Whether a counter reached its goal. */
static int
test_count_done(void *arg)
{
	struct test_count *c = arg;

	return *c->counter >= c->want;
}

/* Run the loop until *counter >= want; 0, or -1 after ms. */
static int
test_run(int *counter, int want, int ms)
{
	struct test_count c = { counter, want };

	return test_loop(test_count_done, &c, ms);
}

struct test_up {
	struct db *db;
	int want;
};

/* Whether db_up has the wanted value. */
static int
test_up_done(void *arg)
{
	struct test_up *u = arg;

	return db_up(u->db) == u->want;
}

/* Run the loop until db_up(db) == want; 0, or -1 after ms. */
static int
test_wait_up(struct db *db, int want, int ms)
{
	struct test_up u = { db, want };

	return test_loop(test_up_done, &u, ms);
}

/* A server started in a child while the loop runs, and when things happened. */
struct test_restart {
	struct db *db;
	pid_t pid;
	int status;
	uint64_t started_ms;
	uint64_t exited_ms; /* pg_ctl start returned: the server accepts connections */
	uint64_t ready_ms;  /* every connection of the pool is up */
};

/* Whether both pg_ctl start returned and the pool is whole again. */
static int
test_restart_done(void *arg)
{
	struct test_restart *r = arg;
	struct db_stats st;

	db_get_stats(r->db, &st);
	if (r->exited_ms == 0 && waitpid(r->pid, &r->status, WNOHANG) == r->pid)
		r->exited_ms = util_mono_ms();
	if (r->ready_ms == 0 && st.connected == st.size)
		r->ready_ms = util_mono_ms();
	return r->exited_ms != 0 && r->ready_ms != 0;
}

/* A pool of size connections, all of them ready. */
static struct db *
test_pool(int size)
{
	char *cause = NULL;
	struct db *db = db_create(test_base, test_dsn, size, &cause);

	if (db == NULL)
		fail_msg("db_create failed: %s", cause);
	assert_int_equal(test_wait_up(db, size, 5000), 0);
	return db;
}

/* Run one query on db and wait for its callback (which must not come inline). */
static void
test_query(struct db *db, struct test_result *r, const char *sql, int n, const char *const *values)
{
	memset(r, 0, sizeof *r);
	db_query(db, sql, n, values, test_store, r);
	assert_int_equal(r->done, 0);
	assert_int_equal(test_run(&r->done, 1, 10000), 0);
	assert_int_equal(r->done, 1);
}

/* Milliseconds this thread spent runnable but waiting for a CPU (0 if unknown). */
static uint64_t
test_runqueue_ms(void)
{
	FILE *f = fopen("/proc/self/schedstat", "r");
	unsigned long long on_cpu, waited = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%llu %llu", &on_cpu, &waited) != 2)
		waited = 0;
	fclose(f);
	return waited / 1000000;
}

/* One tick: note the gap since the previous one, with and without CPU waits. */
static void
test_tick(evutil_socket_t fd, short what, void *arg)
{
	struct test_ticker *t = arg;
	uint64_t now = util_mono_ms(), wait = test_runqueue_ms();
	uint64_t gap = now - t->last_ms, waited = wait - t->last_wait_ms;
	uint64_t own = gap > waited ? gap - waited : 0;

	if (t->ticks++ > 0) {
		t->max_gap_ms = gap > t->max_gap_ms ? gap : t->max_gap_ms;
		t->max_own_gap_ms = own > t->max_own_gap_ms ? own : t->max_own_gap_ms;
	}
	t->last_ms = now;
	t->last_wait_ms = wait;
}

/* Start a ticker every 10 ms. */
static void
test_ticker_start(struct test_ticker *t)
{
	struct timeval tv = { 0, 10000 };

	memset(t, 0, sizeof *t);
	t->ev = event_new(test_base, -1, EV_PERSIST, test_tick, t);
	t->last_ms = util_mono_ms();
	t->last_wait_ms = test_runqueue_ms();
	event_add(t->ev, &tv);
}

/* Run pg_ctl on the test cluster: "stop", "start" or "status"; its exit status. */
static int
test_pg_ctl(const char *action)
{
	const char *run = getenv("LINBAT_TEST_PGRUN"), *bin = getenv("LINBAT_TEST_PGBIN");
	const char *data = getenv("LINBAT_TEST_PGDATA"), *opts = getenv("LINBAT_TEST_PGCTL_START");
	char host[256] = "127.0.0.1", port[16] = "5432", *cmd, *err = NULL, *start;
	const char *flags = "";
	PQconninfoOption *o, *all;
	int rc;

	if (bin == NULL || data == NULL)
		fail_msg("LINBAT_TEST_PGBIN and LINBAT_TEST_PGDATA must be set (run under tests/with-pg).");
	if ((all = PQconninfoParse(test_dsn, &err)) == NULL)
		fail_msg("LINBAT_TEST_DSN is invalid: %s", err);
	for (o = all; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "host") == 0 && o->val != NULL)
			snprintf(host, sizeof host, "%s", o->val);
		if (strcmp(o->keyword, "port") == 0 && o->val != NULL)
			snprintf(port, sizeof port, "%s", o->val);
	}
	PQconninfoFree(all);
	/* The start options of the cluster: as told, or rebuilt from the DSN. */
	if (opts != NULL)
		start = xstrdup(opts);
	else if (host[0] == '/')
		xasprintf(&start, "-l '%s/restart.log' -o \"-p %s -c listen_addresses='' -c unix_socket_directories=%s\"",
		    data, port, host);
	else
		xasprintf(&start, "-l '%s/restart.log' -o \"-p %s -c listen_addresses=%s -c unix_socket_directories=''\"",
		    data, port, host);
	if (strcmp(action, "start") == 0)
		flags = start;
	else if (strcmp(action, "stop") == 0)
		flags = "-m fast";
	xasprintf(&cmd, "cd '%s' && %s '%s/pg_ctl' -D '%s' -w %s %s >/dev/null", data, run != NULL ? run : "",
	    bin, data, flags, action);
	rc = system(cmd);
	free(cmd);
	free(start);
	return rc == -1 ? -1 : WEXITSTATUS(rc);
}

/* Put stderr back after test_pg_down caught it, and the log level with it. */
static void
test_stderr_restore(void)
{
	if (test_saved_stderr < 0)
		return;
	dup2(test_saved_stderr, STDERR_FILENO);
	close(test_saved_stderr);
	test_saved_stderr = -1;
	log_set_level(LOG_LEVEL_WARN);
}

/* Count the lines of a file that contain needle. */
static int
test_count_lines(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[2048];
	int n = 0;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/* A query returns its value; several statements give the last; an error wins. */
static void
test_simple(void **state)
{
	struct db *db = test_pool(2);
	struct test_result r;

	test_query(db, &r, "select 40 + 2", 0, NULL);
	assert_null(r.error);
	assert_int_equal(r.status, PGRES_TUPLES_OK);
	assert_string_equal(r.value, "42");
	test_result_clear(&r);

	test_query(db, &r, "select 1; select 'last'", 0, NULL);
	assert_null(r.error);
	assert_string_equal(r.value, "last");
	test_result_clear(&r);

	test_query(db, &r, "select 1/0; select 2", 0, NULL);
	assert_non_null(r.error);
	assert_string_equal(r.sqlstate, "22012");
	test_result_clear(&r);
	db_destroy(db);
}

/* Bad arguments to db_create give a sentence, not a pool. */
static void
test_create_errors(void **state)
{
	char *cause = NULL;

	assert_null(db_create(test_base, "this is not a conninfo", 2, &cause));
	assert_non_null(cause);
	assert_non_null(strstr(cause, "The database connection string is invalid"));
	free(cause);
	cause = NULL;
	assert_null(db_create(test_base, test_dsn, 0, &cause));
	assert_non_null(cause);
	free(cause);
}

/* Text parameters, NULL among them. */
static void
test_params(void **state)
{
	struct db *db = test_pool(1);
	const char *values[] = { "40", "2", NULL, "it's \"quoted\"" };
	struct test_result r;

	test_query(db, &r, "select $1::int + $2::int, $3::text is null, $4::text", 4, values);
	assert_null(r.error);
	assert_string_equal(r.value, "42|t|it's \"quoted\"");
	test_result_clear(&r);
	db_destroy(db);
}

/* One statement, 1000 calls on a pool of 4: prepared at most once per connection. */
static void
test_prepared(void **state)
{
	static const struct db_stmt add = { "test_add", "select $1::int + 1" };
	static const struct db_stmt bad = { "test_bad", "select nonsense(" };
	struct db *db = test_pool(4);
	struct test_result *r = xcalloc(1000, sizeof *r), e;
	struct db_stats st;
	char arg[16], want[16];
	const char *values[1] = { arg };
	int i, done = 0;

	for (i = 0; i < 1000; i++) {
		snprintf(arg, sizeof arg, "%d", i);
		db_exec(db, &add, 1, values, test_store, &r[i]);
	}
	for (i = 0; i < 1000; i++) {
		assert_int_equal(test_run(&r[i].done, 1, 10000), 0);
		snprintf(want, sizeof want, "%d", i + 1);
		assert_null(r[i].error);
		assert_string_equal(r[i].value, want);
		done += r[i].done;
		test_result_clear(&r[i]);
	}
	assert_int_equal(done, 1000);
	db_get_stats(db, &st);
	printf("prepared statement: 1000 calls, %llu prepares on a pool of 4\n", st.prepares);
	assert_true(st.prepares >= 1 && st.prepares <= 4);
	assert_int_equal(st.queries, 1000);
	assert_int_equal(st.errors, 0);

	/* A statement that does not prepare fails each time, and is never marked prepared. */
	for (i = 0; i < 2; i++) {
		memset(&e, 0, sizeof e);
		db_exec(db, &bad, 0, NULL, test_store, &e);
		assert_int_equal(test_run(&e.done, 1, 5000), 0);
		assert_string_equal(e.sqlstate, "42601");
		test_result_clear(&e);
	}
	free(r);
	db_destroy(db);
}

/* Errors carry PostgreSQL's message, its SQLSTATE and the error result. */
static void
test_sqlstate(void **state)
{
	struct db *db = test_pool(1);
	struct test_result r;

	test_query(db, &r, "select 'x'::int", 0, NULL);
	assert_non_null(r.error);
	assert_string_equal(r.sqlstate, "22P02");
	assert_int_equal(r.status, PGRES_FATAL_ERROR);
	assert_non_null(strstr(r.error, "invalid input syntax"));
	test_result_clear(&r);

	test_query(db, &r, "select * from linbat_no_such_table", 0, NULL);
	assert_string_equal(r.sqlstate, "42P01");
	test_result_clear(&r);

	/* The connection is still good after an error. */
	test_query(db, &r, "select 'ok'", 0, NULL);
	assert_null(r.error);
	assert_string_equal(r.value, "ok");
	test_result_clear(&r);
	db_destroy(db);
}

/* 200 queries at once on a pool of 4: 196 wait in the queue, all complete. */
static void
test_concurrent(void **state)
{
	struct db *db = test_pool(4);
	struct test_result *r = xcalloc(200, sizeof *r);
	struct db_stats st;
	char arg[16];
	const char *values[1] = { arg };
	uint64_t t0 = util_mono_ms();
	int i, done = 0;

	for (i = 0; i < 200; i++) {
		snprintf(arg, sizeof arg, "%d", i);
		db_query(db, "select $1::int, pg_sleep(0.005)", 1, values, test_store, &r[i]);
	}
	db_get_stats(db, &st);
	assert_int_equal(st.busy, 4);
	assert_int_equal(st.queued, 196);
	for (i = 0; i < 200; i++) {
		assert_int_equal(test_run(&r[i].done, 1, 10000), 0);
		snprintf(arg, sizeof arg, "%d|", i);
		assert_null(r[i].error);
		assert_memory_equal(r[i].value, arg, strlen(arg));
		done += r[i].done;
		test_result_clear(&r[i]);
	}
	assert_int_equal(done, 200);
	db_get_stats(db, &st);
	assert_int_equal(st.queued, 0);
	printf("concurrency: 200 queries of 5 ms on a pool of 4 in %llu ms\n",
	    (unsigned long long)(util_mono_ms() - t0));
	free(r);
	db_destroy(db);
}

/* A NOTIFY sent by a query reaches the listener, whatever the channel's case and spaces. */
static void
test_listen(void **state)
{
	struct db *db = test_pool(1);
	struct test_listener a = { 0 }, b = { 0 };
	const char *va[] = { "Linbat Test", "hello" }, *vb[] = { "second", "world" };
	char toolong[65];
	struct test_result r;

	memset(toolong, 'x', 64);
	toolong[64] = '\0';
	assert_int_equal(db_listen(db, "", test_notified, &a), -1);
	assert_int_equal(db_listen(db, toolong, test_notified, &a), -1);

	assert_int_equal(db_listen(db, "Linbat Test", test_notified, &a), 0);
	assert_int_equal(test_run(&a.nulls, 1, 5000), 0);
	test_query(db, &r, "select pg_notify($1, $2)", 2, va);
	assert_null(r.error);
	test_result_clear(&r);
	assert_int_equal(test_run(&a.payloads, 1, 5000), 0);
	assert_string_equal(a.last, "hello");

	/* A channel added once the connection is up is LISTENed then. */
	assert_int_equal(db_listen(db, "second", test_notified, &b), 0);
	assert_int_equal(test_run(&b.nulls, 1, 5000), 0);
	test_query(db, &r, "select pg_notify($1, $2)", 2, vb);
	test_result_clear(&r);
	assert_int_equal(test_run(&b.payloads, 1, 5000), 0);
	assert_string_equal(b.last, "world");
	assert_int_equal(a.payloads, 1);
	assert_int_equal(a.nulls, 1);
	db_destroy(db);
}

/* What a listener got, every payload in order. */
struct test_log {
	int nulls;
	int payloads;
	struct buf all; /* "p1,p2,..." */
};

/* Record a notification in a test_log. */
static void
test_logged(const char *channel, const char *payload, void *arg)
{
	struct test_log *l = arg;

	if (payload == NULL) {
		l->nulls++;
		return;
	}
	buf_addf(&l->all, "%s%s", l->payloads++ > 0 ? "," : "", payload);
}

/*
 * db_notify_later: the notifications of every call of one pass of the loop
 * go out in one statement, in order; empty and malformed lists send nothing.
 */
static void
test_notify_later(void **state)
{
	struct db *db = test_pool(1);
	struct test_log l = { 0 };
	struct test_result r;
	struct db_stats st;

	buf_init(&l.all);
	assert_int_equal(db_listen(db, "later", test_logged, &l), 0);
	assert_int_equal(test_run(&l.nulls, 1, 5000), 0);
	assert_int_equal(test_wait_up(db, 1, 5000), 0);
	db_notify_later(db, "[[\"later\", \"a\"], [\"later\", \"{\\\"x\\\": 1}\"]]");
	db_notify_later(db, "[]");
	db_notify_later(db, NULL);
	db_notify_later(db, "");
	db_notify_later(db, "not a list");
	db_notify_later(db, " [ [\"elsewhere\", \"z\"], [\"later\", \"c\"] ] ");
	assert_int_equal(test_run(&l.payloads, 3, 5000), 0);
	assert_string_equal(l.all.data, "a,{\"x\": 1},c");
	/* one connection: a query sent now comes back after every batch sent before */
	test_query(db, &r, "select 1", 0, NULL);
	test_result_clear(&r);
	db_get_stats(db, &st);
	assert_int_equal(st.queries, 2);
	assert_int_equal(st.errors, 0);

	/* Those of a later pass go in a later statement, after the first. */
	db_notify_later(db, "[[\"later\", \"d\"]]");
	assert_int_equal(test_run(&l.payloads, 4, 5000), 0);
	assert_string_equal(l.all.data, "a,{\"x\": 1},c,d");
	test_query(db, &r, "select 1", 0, NULL);
	test_result_clear(&r);
	db_get_stats(db, &st);
	assert_int_equal(st.queries, 4);
	buf_free(&l.all);
	db_destroy(db);
}

/* A callback that submits the next query: 100 in a row, each from the previous one's callback. */
static void
test_chain_next(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	static const struct db_stmt one = { "test_one", "select 1" };
	struct test_chain *c = arg;

	c->errors += error != NULL;
	if (++c->n < 100)
		db_exec(c->db, &one, 0, NULL, test_chain_next, c);
}

/* Queries submitted from callbacks run, in order, on the same pool. */
static void
test_chain(void **state)
{
	struct test_chain c = { test_pool(2), 0, 0 };

	test_chain_next(NULL, NULL, "", &c); /* counts as the first */
	assert_int_equal(test_run(&c.n, 100, 5000), 0);
	assert_int_equal(c.errors, 0);
	db_destroy(c.db);
}

/* Past DB_QUEUE_MAX waiting, a query fails as busy; db_destroy fails the rest as closed. */
static void
test_busy_and_destroy(void **state)
{
	struct db *db = test_pool(1);
	struct test_result *r = xcalloc(DB_QUEUE_MAX + 2, sizeof *r);
	int i, closed = 0;

	for (i = 0; i < DB_QUEUE_MAX + 2; i++)
		db_query(db, "select pg_sleep(1)", 0, NULL, test_store, &r[i]);
	assert_int_equal(r[DB_QUEUE_MAX + 1].done, 0);
	assert_int_equal(test_run(&r[DB_QUEUE_MAX + 1].done, 1, 1000), 0);
	assert_string_equal(r[DB_QUEUE_MAX + 1].error, DB_ERROR_BUSY);
	assert_int_equal(r[0].done, 0);
	db_destroy(db);
	for (i = 0; i <= DB_QUEUE_MAX; i++) {
		closed += r[i].done == 1 && r[i].error != NULL && strcmp(r[i].error, DB_ERROR_CLOSED) == 0;
		test_result_clear(&r[i]);
	}
	assert_int_equal(closed, DB_QUEUE_MAX + 1);
	test_result_clear(&r[DB_QUEUE_MAX + 1]);
	free(r);
}

/* A callback that submits its query again when it fails, up to 3 times in all, as a retry would. */
struct test_retry {
	struct db *db;
	int calls;
	int closed;
};

static void
test_retry_again(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct test_retry *t = arg;

	t->calls++;
	t->closed += error != NULL && strcmp(error, DB_ERROR_CLOSED) == 0;
	if (error != NULL && t->calls < 3)
		db_query(t->db, "select 1", 0, NULL, test_retry_again, t);
}

/*
 * db_close fails the query in flight while the caller's state still exists,
 * and a query its callback submits again fails as closed too, its callback
 * also called from db_close, not fatal; the pool is freed by db_destroy.
 */
static void
test_close_then_destroy(void **state)
{
	struct test_retry t = { test_pool(1), 0, 0 };
	struct test_result r = { 0 };
	int never = 0;

	db_query(t.db, "select pg_sleep(5)", 0, NULL, test_retry_again, &t);
	test_run(&never, 1, 300); /* the query is on its way */
	db_close(t.db);
	assert_int_equal(t.calls, 3);
	assert_int_equal(t.closed, 3);
	db_query(t.db, "select 1", 0, NULL, test_store, &r);
	assert_int_equal(r.done, 0);
	db_destroy(t.db);
	assert_int_equal(r.done, 1);
	assert_string_equal(r.error, DB_ERROR_CLOSED);
	test_result_clear(&r);
}

/* Block the loop for 300 ms, as a blocking libpq call would. */
static void
test_block(evutil_socket_t fd, short what, void *arg)
{
	usleep(300 * 1000);
}

/* The gap detector sees a stalled loop: the check below can fail. */
static void
test_gap_detector(void **state)
{
	struct test_ticker t;
	struct timeval tv = { 0, 50000 };
	struct event *block = evtimer_new(test_base, test_block, NULL);
	int never = 0;

	test_ticker_start(&t);
	evtimer_add(block, &tv);
	test_run(&never, 1, 600);
	printf("gap detector: a 300 ms stall measured as a %llu ms gap (%llu ms of it the loop's own)\n",
	    (unsigned long long)t.max_gap_ms, (unsigned long long)t.max_own_gap_ms);
	assert_true(t.max_own_gap_ms >= 250);
	event_free(block);
	event_free(t.ev);
}

/* THE BLOCKING TEST: connecting and a 2 s query never stall a 10 ms timer by 100 ms. */
static void
test_no_blocking(void **state)
{
	struct test_ticker t;
	struct test_result r = { 0 }, p = { 0 };
	static const struct db_stmt slow = { "test_slow", "select pg_sleep($1::float8), 'slept'" };
	const char *values[] = { "0.2" };
	char *cause = NULL;
	struct db *db;

	test_ticker_start(&t);
	db = db_create(test_base, test_dsn, 2, &cause);
	assert_non_null(db);
	db_query(db, "select pg_sleep(2)", 0, NULL, test_store, &r);
	db_exec(db, &slow, 1, values, test_store, &p);
	assert_int_equal(test_run(&r.done, 1, 10000), 0);
	assert_int_equal(test_run(&p.done, 1, 10000), 0);
	printf("blocking test: %d ticks, max timer gap %llu ms (%llu ms without CPU waits) during connect and "
	    "pg_sleep(2)\n", t.ticks, (unsigned long long)t.max_gap_ms, (unsigned long long)t.max_own_gap_ms);
	assert_null(r.error);
	assert_null(p.error);
	assert_string_equal(p.value, "|slept");
	assert_true(t.ticks >= 100);
	assert_true(t.max_own_gap_ms < 100);
	event_free(t.ev);
	test_result_clear(&r);
	test_result_clear(&p);
	db_destroy(db);
}

/* A query over the time limit fails with the timeout error; the pool comes back. */
static void
test_timeout(void **state)
{
	struct db *db = test_pool(1);
	struct test_result slow = { 0 }, next = { 0 }, r;
	struct db_stats st;
	uint64_t t0;

	db_set_query_timeout(db, 300);
	t0 = util_mono_ms();
	db_query(db, "select pg_sleep(5)", 0, NULL, test_store, &slow);
	db_query(db, "select 'after'", 0, NULL, test_store, &next);
	assert_int_equal(test_run(&slow.done, 1, 3000), 0);
	assert_string_equal(slow.error, DB_ERROR_TIMEOUT);
	assert_string_equal(slow.sqlstate, "");
	assert_true(slow.at_ms - t0 >= 290 && slow.at_ms - t0 < 1000);
	/* The query queued behind it waits for the new connection instead of failing. */
	assert_int_equal(test_run(&next.done, 1, 3000), 0);
	assert_null(next.error);
	assert_string_equal(next.value, "after");
	printf("timeout: failed after %llu ms, next query answered %llu ms later\n",
	    (unsigned long long)(slow.at_ms - t0), (unsigned long long)(next.at_ms - slow.at_ms));
	db_get_stats(db, &st);
	assert_int_equal(st.reconnects, 1);
	assert_int_equal(db_up(db), 1);
	test_query(db, &r, "select 'again'", 0, NULL);
	assert_string_equal(r.value, "again");
	test_result_clear(&r);
	test_result_clear(&slow);
	test_result_clear(&next);
	db_destroy(db);
}

/* PostgreSQL stopped: queries fail fast; started again: the pool is back within 2 s. */
static void
test_pg_down(void **state)
{
	struct db *db = test_pool(2);
	struct test_listener l = { 0 };
	struct test_result r[5], busy[4], cold = { 0 }, after;
	struct db *db2;
	struct db_stats st;
	char *cause = NULL;
	const char *values[] = { "linbat_down", "back" };
	char logpath[] = "/tmp/linbat-test-db.XXXXXX";
	struct test_restart rs = { 0 };
	int i, logfd, done = 0, never = 0;
	uint64_t t0, up_ms;

	assert_int_equal(db_listen(db, "linbat_down", test_notified, &l), 0);
	assert_int_equal(test_run(&l.nulls, 1, 5000), 0);
	memset(busy, 0, sizeof busy);
	/* Catch the log to count the outage's lines. */
	log_set_level(LOG_LEVEL_INFO);
	logfd = mkstemp(logpath);
	assert_true(logfd >= 0);
	test_saved_stderr = dup(STDERR_FILENO);
	dup2(logfd, STDERR_FILENO);

	/* Two queries in flight and two queued when the server stops: all fail at once. */
	for (i = 0; i < 4; i++)
		db_query(db, i < 2 ? "select pg_sleep(10)" : "select 1", 0, NULL, test_store, &busy[i]);
	assert_int_equal(test_pg_ctl("stop"), 0);
	t0 = util_mono_ms();
	for (i = 0; i < 4; i++) {
		assert_int_equal(test_run(&busy[i].done, 1, 1000), 0);
		assert_non_null(busy[i].error);
		assert_true(busy[i].at_ms - t0 < 100);
		if (i >= 2)
			assert_string_equal(busy[i].error, DB_ERROR_UNAVAILABLE);
	}
	assert_int_equal(test_wait_up(db, 0, 1000), 0);
	printf("down: pool saw the stop in %llu ms (in flight: \"%s\"; queued: \"%s\")\n",
	    (unsigned long long)(util_mono_ms() - t0), busy[0].error, busy[2].error);
	for (i = 0; i < 4; i++)
		test_result_clear(&busy[i]);

	memset(r, 0, sizeof r);
	t0 = util_mono_ms();
	for (i = 0; i < 5; i++) {
		db_query(db, "select 1", 0, NULL, test_store, &r[i]);
		assert_int_equal(r[i].done, 0);
	}
	for (i = 0; i < 5; i++) {
		assert_int_equal(test_run(&r[i].done, 1, 1000), 0);
		assert_string_equal(r[i].error, DB_ERROR_UNAVAILABLE);
		assert_true(r[i].at_ms - t0 < 100);
		done += r[i].done;
		test_result_clear(&r[i]);
	}
	assert_int_equal(done, 5);
	printf("down: 5 queries failed in %llu ms\n", (unsigned long long)(util_mono_ms() - t0));

	/* A pool made while the server is down: the query waits for the first attempts, then fails. */
	db2 = db_create(test_base, test_dsn, 2, &cause);
	assert_non_null(db2);
	t0 = util_mono_ms();
	db_query(db2, "select 1", 0, NULL, test_store, &cold);
	assert_int_equal(test_run(&cold.done, 1, 1000), 0);
	assert_string_equal(cold.error, DB_ERROR_UNAVAILABLE);
	assert_true(cold.at_ms - t0 < 100);
	test_result_clear(&cold);
	db_destroy(db2);

	/* Stay down 1.5 s with the loop running, so the backoff reaches its 1 s cap,
	 * then start the server in a child while the loop keeps running. */
	test_run(&never, 1, 1500);
	rs.db = db;
	rs.started_ms = util_mono_ms();
	if ((rs.pid = fork()) == 0)
		_exit(test_pg_ctl("start"));
	assert_true(rs.pid > 0);
	assert_int_equal(test_loop(test_restart_done, &rs, 10000), 0);
	assert_true(WIFEXITED(rs.status) && WEXITSTATUS(rs.status) == 0);
	up_ms = rs.ready_ms > rs.exited_ms ? rs.ready_ms - rs.exited_ms : 0;
	printf("up: PostgreSQL ready %llu ms after pg_ctl start began; pool ready %llu ms after that\n",
	    (unsigned long long)(rs.exited_ms - rs.started_ms), (unsigned long long)up_ms);
	assert_true(up_ms < 2000);
	assert_int_equal(test_run(&l.nulls, 2, 2000), 0);
	test_query(db, &after, "select pg_notify($1, $2)", 2, values);
	assert_null(after.error);
	test_result_clear(&after);
	assert_int_equal(test_run(&l.payloads, 1, 2000), 0);
	assert_string_equal(l.last, "back");
	db_get_stats(db, &st);
	assert_int_equal(st.reconnects, 3); /* the two of the pool and the listen one */

	test_stderr_restore();
	close(logfd);
	assert_int_equal(test_count_lines(logpath, "Lost connection to PostgreSQL."), 1);
	assert_int_equal(test_count_lines(logpath, "Cannot connect to PostgreSQL."), 1);
	assert_int_equal(test_count_lines(logpath, "Connection to PostgreSQL restored."), 1);
	unlink(logpath);
	db_destroy(db);
}

/* A fresh loop for each test, so that one that failed half-way (its pools and
 * timers left behind, pointing into its dead stack) cannot touch the next. */
static int
test_base_new(void **state)
{
	test_base = event_base_new();
	return test_base != NULL ? 0 : -1;
}

/* Drop the test's loop; pools a failed test left are abandoned with it. */
static int
test_base_free(void **state)
{
	event_base_free(test_base);
	test_base = NULL;
	return 0;
}

/* Whatever happened in test_pg_down, leave the cluster running and stderr back. */
static int
test_pg_restore(void **state)
{
	test_stderr_restore();
	test_base_free(state);
	if (test_pg_ctl("status") != 0)
		return test_pg_ctl("start") == 0 ? 0 : -1;
	return 0;
}

/* Read the DSN that tests/with-pg exports, and the log level. */
static int
test_setup(void **state)
{
	const char *level = getenv("LINBAT_TEST_LOG");

	log_set_level(level != NULL ? (enum log_level)log_level_parse(level) : LOG_LEVEL_WARN);
	if ((test_dsn = getenv("LINBAT_TEST_DSN")) == NULL) {
		fprintf(stderr, "LINBAT_TEST_DSN is not set: run this test under tests/with-pg.\n");
		return -1;
	}
	return 0;
}

/* Each test with its own loop. */
#define TEST(f) cmocka_unit_test_setup_teardown(f, test_base_new, test_base_free)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_simple),
		TEST(test_create_errors),
		TEST(test_params),
		TEST(test_prepared),
		TEST(test_sqlstate),
		TEST(test_concurrent),
		TEST(test_listen),
		TEST(test_notify_later),
		TEST(test_chain),
		TEST(test_busy_and_destroy),
		TEST(test_close_then_destroy),
		TEST(test_gap_detector),
		TEST(test_no_blocking),
		TEST(test_timeout),
		cmocka_unit_test_setup_teardown(test_pg_down, test_base_new, test_pg_restore),
	};

	return cmocka_run_group_tests_name("db", tests, test_setup, NULL);
}
