/*
 * db.c: the PostgreSQL connection pool. Each connection is a small state
 * machine (down, connecting, idle, busy) driven by one event on its libpq
 * socket and one timer (reconnect delay, connect deadline or query deadline,
 * by state). Queries go to an idle connection or wait in a FIFO queue; every
 * query ends in exactly one callback. Failures found while a caller is still
 * inside db_query (no connection, queue full, a send that fails) are put on a
 * "done" list that an event drains on the next pass of the loop, so callbacks
 * never run inside the call that submitted them. A connection that fails goes
 * through db_conn_fail, the one exit (PgBouncer's disconnect_client): it fails
 * the query in flight, closes, and schedules the next attempt.
 */
#include "config.h"

#include <sys/queue.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "db.h"
#include "log.h"
#include "util.h"

#define DB_POOL_MAX 100
#define DB_CHANNEL_MAX 63
#define DB_BACKOFF_MIN_MS 100
#define DB_BACKOFF_MAX_MS 1000
#define DB_CONNECT_TIMEOUT_MS 5000
#define DB_PARAMS_MAX 65535

#define DB_ERROR_NORESULT "The database returned no result."
#define DB_ERROR_COPY "COPY is not supported by the database pool."

enum db_conn_state {
	DB_CONN_DOWN,       /* no connection; the timer makes the next attempt */
	DB_CONN_CONNECTING, /* PQconnectPoll under way; the timer is its deadline */
	DB_CONN_IDLE,       /* ready for a query */
	DB_CONN_BUSY,       /* a query in flight; the timer is its deadline */
};

static const char *const db_conn_state_names[] = { "down", "connecting", "idle", "busy" };

enum db_phase {
	DB_PHASE_PREPARE, /* PQsendPrepare sent; the execute follows */
	DB_PHASE_EXECUTE, /* the query itself sent */
};

/* One query from submission to callback. */
struct db_query {
	TAILQ_ENTRY(db_query) entry;
	const char *sql;             /* db_query's text, in strings; NULL for db_exec */
	const struct db_stmt *stmt;  /* db_exec's statement (static storage) */
	int nparams;
	const char **values;         /* into strings; NULL entries are SQL NULL */
	char *strings;               /* one block holding the copies */
	db_cb cb;
	void *arg;
	int internal;                /* the pool's own LISTEN: not counted, dropped on failure */
	const char *error;           /* the pool's error, for a query failed before delivery */
	PGresult *res;               /* the result to deliver (owned) */
};
TAILQ_HEAD(db_queries, db_query);

struct db_listener {
	char *channel;
	db_notify_cb cb;
	void *arg;
};

struct db_conn {
	struct db *db;
	char name[12];            /* "0".."99" in the pool, "listen" for the listen one */
	int listen;               /* the dedicated LISTEN connection */
	enum db_conn_state state;
	PGconn *pg;
	struct event *ev;         /* on PQsocket(pg); NULL while down */
	short ev_what;
	struct event *timer;
	int backoff_ms;           /* delay before the next attempt after a failure */
	int trying;               /* an attempt not known to be futile: queries wait for it */
	int ever_up;
	int flushing;             /* PQflush said 1: output is still pending */
	struct db_query *q;       /* in flight, while busy */
	enum db_phase phase;
	PGresult *res;            /* the latest good result of q */
	PGresult *err;            /* the first error result of q */
	const char **prepared;    /* names of statements prepared on this connection */
	int nprepared;
	int prepared_cap;
	int listened;             /* listeners [0, listened) are LISTENed */
	int listening;            /* [listened, listening) are being LISTENed */
};

struct db {
	struct event_base *base;
	char *conninfo;
	int size;
	struct db_conn *conns;
	struct db_conn *lconn;    /* the listen connection, once db_listen was called */
	struct db_queries queue;  /* waiting for an idle connection */
	int nqueued;
	struct db_queries done;   /* failed, callback due on the next pass */
	struct event *done_ev;
	struct db_listener *listeners;
	int nlisteners;
	int timeout_ms;
	int up;                   /* pool connections idle or busy */
	int trying;               /* pool connections with c->trying set */
	int outage;               /* a loss was logged and no recovery yet */
	uint64_t outage_ms;
	int ever_up;
	int depth;                /* callbacks running */
	int closing;
	struct db_stats stats;
	struct buf notify;        /* db_notify_later's pairs, comma-separated, to send */
	struct event *notify_ev;  /* sends them on the next pass of the loop */
	int notify_busy;          /* a batch in flight */
};

static void db_conn_connect(struct db_conn *);
static void db_conn_io(evutil_socket_t, short, void *);
static void db_conn_next(struct db_conn *);
static void db_conn_send(struct db_conn *, struct db_query *);
static void db_listen_sync(struct db_conn *);

/* Copy a libpq message onto one line, without quotes, for a log field. */
static void
db_flatten(const char *msg, char *out, size_t len)
{
	size_t n = 0;
	int space = 0;

	for (; msg != NULL && *msg != '\0' && n + 1 < len; msg++) {
		if (*msg == '\n' || *msg == '\t' || *msg == '\r' || *msg == ' ') {
			space = n > 0;
			continue;
		}
		if (space && n + 2 < len)
			out[n++] = ' ';
		space = 0;
		out[n++] = *msg == '"' ? '\'' : *msg;
	}
	out[n] = '\0';
}

/* Copy a query's text and parameters into one block that the query owns. */
static struct db_query *
db_query_new(const char *sql, const struct db_stmt *stmt, int nparams, const char *const *values,
    db_cb cb, void *arg)
{
	struct db_query *q = xcalloc(1, sizeof *q);
	size_t size = sql != NULL ? strlen(sql) + 1 : 0, off = 0;
	int i;

	if (nparams < 0 || nparams > DB_PARAMS_MAX)
		log_fatal("db", "A query has an invalid number of parameters. nparams=%d", nparams);
	for (i = 0; i < nparams; i++)
		size += values[i] != NULL ? strlen(values[i]) + 1 : 0;
	q->strings = xmalloc(size + 1);
	if (sql != NULL) {
		q->sql = memcpy(q->strings, sql, strlen(sql) + 1);
		off = strlen(sql) + 1;
	}
	q->values = nparams > 0 ? xcalloc(nparams, sizeof *q->values) : NULL;
	for (i = 0; i < nparams; i++) {
		if (values[i] == NULL)
			continue;
		q->values[i] = memcpy(q->strings + off, values[i], strlen(values[i]) + 1);
		off += strlen(values[i]) + 1;
	}
	q->stmt = stmt;
	q->nparams = nparams;
	q->cb = cb;
	q->arg = arg;
	return q;
}

/* Free a query and the result it holds. */
static void
db_query_free(struct db_query *q)
{
	PQclear(q->res);
	free(q->values);
	free(q->strings);
	free(q);
}

/* The error text and SQLSTATE of an error result; NULL if res is not an error. */
static const char *
db_result_error(const PGresult *res, const char **sqlstate)
{
	const char *msg, *state;

	switch (PQresultStatus(res)) {
	case PGRES_BAD_RESPONSE:
	case PGRES_NONFATAL_ERROR:
	case PGRES_FATAL_ERROR:
		break;
	default:
		return NULL;
	}
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	*sqlstate = state != NULL ? state : "";
	/* Errors libpq makes itself (a lost connection) carry no fields. */
	msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	return msg != NULL && *msg != '\0' ? msg : DB_ERROR_LOST;
}

/* Call a query's callback once, count it, and free the query. */
static void
db_deliver(struct db *db, struct db_query *q)
{
	const char *error = q->error, *sqlstate = "";

	if (q->res != NULL)
		error = db_result_error(q->res, &sqlstate);
	else if (error == NULL)
		error = DB_ERROR_NORESULT;
	if (!q->internal) {
		db->stats.queries++;
		if (error != NULL)
			db->stats.errors++;
	}
	db->depth++;
	q->cb(q->res, error, sqlstate, q->arg);
	db->depth--;
	db_query_free(q);
}

/* Fail a query with the pool's own error; its callback runs on the next pass of the loop. */
static void
db_fail_later(struct db *db, struct db_query *q, const char *error)
{
	if (q->internal) {
		db_query_free(q);
		return;
	}
	q->error = error;
	TAILQ_INSERT_TAIL(&db->done, q, entry);
	event_active(db->done_ev, EV_TIMEOUT, 0);
}

/* Deliver the failed queries; those failed meanwhile wait for the next pass. */
static void
db_done(evutil_socket_t fd, short what, void *arg)
{
	struct db *db = arg;
	struct db_queries now = TAILQ_HEAD_INITIALIZER(now);
	struct db_query *q;

	TAILQ_CONCAT(&now, &db->done, entry);
	while ((q = TAILQ_FIRST(&now)) != NULL) {
		TAILQ_REMOVE(&now, q, entry);
		db_deliver(db, q);
	}
}

/* Fail every query waiting in the queue. */
static void
db_fail_queue(struct db *db, const char *error)
{
	struct db_query *q;

	while ((q = TAILQ_FIRST(&db->queue)) != NULL) {
		TAILQ_REMOVE(&db->queue, q, entry);
		db->nqueued--;
		db_fail_later(db, q, error);
	}
}

/* Whether a query can expect a connection: one is up, or an attempt may yet succeed. */
static int
db_available(struct db *db)
{
	return db->up > 0 || db->trying > 0;
}

/* Send a query to an idle connection, queue it, or fail it. */
static void
db_submit(struct db *db, struct db_query *q)
{
	int i;

	if (db->closing)
		log_fatal("db", "A query was submitted to a database pool being closed.");
	if (!db_available(db)) {
		db_fail_later(db, q, DB_ERROR_UNAVAILABLE);
		return;
	}
	/* Only an empty queue lets a query go first: the queue is FIFO. */
	for (i = 0; i < db->size && TAILQ_EMPTY(&db->queue); i++) {
		if (db->conns[i].state == DB_CONN_IDLE) {
			db_conn_send(&db->conns[i], q);
			return;
		}
	}
	if (db->nqueued >= DB_QUEUE_MAX) {
		db_fail_later(db, q, DB_ERROR_BUSY);
		return;
	}
	TAILQ_INSERT_TAIL(&db->queue, q, entry);
	db->nqueued++;
}

/* The one setter of a connection's state; keeps the count of ready ones. */
static void
db_conn_set_state(struct db_conn *c, enum db_conn_state state)
{
	int was_up = c->state == DB_CONN_IDLE || c->state == DB_CONN_BUSY;
	int is_up = state == DB_CONN_IDLE || state == DB_CONN_BUSY;

	if (c->state == state)
		return;
	log_debug("db", "Connection state changed. conn=%s from=%s to=%s", c->name,
	    db_conn_state_names[c->state], db_conn_state_names[state]);
	if (!c->listen)
		c->db->up += is_up - was_up;
	c->state = state;
}

/* Mark whether the connection is on an attempt that queries may wait for. */
static void
db_conn_set_trying(struct db_conn *c, int trying)
{
	if (c->trying == trying)
		return;
	c->trying = trying;
	if (!c->listen)
		c->db->trying += trying ? 1 : -1;
}

/* Start (or restart) the connection's timer. */
static void
db_conn_timer_start(struct db_conn *c, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(c->timer, &tv);
}

/* Wait for what on the connection's socket, making the event again if it changed. */
static void
db_conn_watch(struct db_conn *c, short what)
{
	if (c->ev != NULL && c->ev_what == what)
		return;
	if (c->ev != NULL)
		event_free(c->ev);
	c->ev = event_new(c->db->base, PQsocket(c->pg), what | EV_PERSIST, db_conn_io, c);
	c->ev_what = what;
	event_add(c->ev, NULL);
}

/* Close the connection's socket and forget what belonged to it. */
static void
db_conn_close(struct db_conn *c)
{
	if (c->ev != NULL)
		event_free(c->ev);
	c->ev = NULL;
	evtimer_del(c->timer);
	if (c->pg != NULL)
		PQfinish(c->pg);
	c->pg = NULL;
	PQclear(c->res);
	PQclear(c->err);
	c->res = c->err = NULL;
	c->flushing = 0;
	c->nprepared = 0;
	c->listened = c->listening = 0;
}

/* Log a failure once per outage: the first at WARN, the retries at DEBUG. */
static void
db_conn_log_failure(struct db_conn *c, enum db_conn_state was, const char *reason)
{
	struct db *db = c->db;
	char text[512];

	db_flatten(reason, text, sizeof text);
	if (db->outage) {
		log_debug("db", "Connection attempt failed. conn=%s reason=\"%s\" retry_ms=%d", c->name, text,
		    c->backoff_ms);
		return;
	}
	db->outage = 1;
	db->outage_ms = util_mono_ms();
	if (was == DB_CONN_CONNECTING)
		log_warn("db", "Cannot connect to PostgreSQL. conn=%s reason=\"%s\"", c->name, text);
	else
		log_warn("db", "Lost connection to PostgreSQL. conn=%s reason=\"%s\"", c->name, text);
}

/* Fail the query in flight with error, or with the error result already received. */
static void
db_conn_drop_query(struct db_conn *c, const char *error)
{
	struct db_query *q = c->q;

	if (q == NULL)
		return;
	c->q = NULL;
	q->res = c->err;
	c->err = NULL;
	db_fail_later(c->db, q, error);
}

/*
 * The one exit for a failed connection: fail its query with error (or the
 * error result already received), close, and schedule the next attempt.
 * reason is libpq's text for a failure; NULL for a connection dropped on
 * purpose (a timeout), which is made again at once.
 */
static void
db_conn_fail(struct db_conn *c, const char *error, const char *reason)
{
	struct db *db = c->db;
	enum db_conn_state was = c->state;

	db_conn_drop_query(c, error);
	if (reason != NULL)
		db_conn_log_failure(c, was, reason);
	db_conn_close(c);
	db_conn_set_state(c, DB_CONN_DOWN);
	db_conn_set_trying(c, reason == NULL);
	if (reason == NULL) {
		db_conn_timer_start(c, 0);
	} else {
		db_conn_timer_start(c, c->backoff_ms);
		c->backoff_ms = c->backoff_ms * 2 > DB_BACKOFF_MAX_MS ? DB_BACKOFF_MAX_MS : c->backoff_ms * 2;
	}
	if (!c->listen && !db_available(db))
		db_fail_queue(db, DB_ERROR_UNAVAILABLE);
}

/* Fail the connection with libpq's own account of what went wrong. */
static void
db_conn_lose(struct db_conn *c, const char *error)
{
	db_conn_fail(c, error, PQerrorMessage(c->pg));
}

/* Route PostgreSQL's notices to the log: warnings at WARN, the rest at DEBUG. */
static void
db_notice(void *arg, const PGresult *res)
{
	struct db_conn *c = arg;
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	char text[512];

	db_flatten(PQresultErrorMessage(res), text, sizeof text);
	if (severity != NULL && strcmp(severity, "WARNING") == 0)
		log_warn("db", "PostgreSQL sent a warning. conn=%s text=\"%s\"", c->name, text);
	else
		log_debug("db", "PostgreSQL sent a notice. conn=%s text=\"%s\"", c->name, text);
}

/* The server is back: connections waiting out their backoff try again at once. */
static void
db_kick(struct db *db)
{
	int i;

	for (i = 0; i < db->size; i++) {
		if (db->conns[i].state == DB_CONN_DOWN) {
			db->conns[i].backoff_ms = DB_BACKOFF_MIN_MS;
			db_conn_timer_start(&db->conns[i], 0);
		}
	}
	if (db->lconn != NULL && db->lconn->state == DB_CONN_DOWN) {
		db->lconn->backoff_ms = DB_BACKOFF_MIN_MS;
		db_conn_timer_start(db->lconn, 0);
	}
}

/* The connection is made: log a recovery, then take work. */
static void
db_conn_ready(struct db_conn *c)
{
	struct db *db = c->db;

	if (PQsetnonblocking(c->pg, 1) != 0) {
		db_conn_lose(c, DB_ERROR_UNAVAILABLE);
		return;
	}
	evtimer_del(c->timer);
	c->backoff_ms = DB_BACKOFF_MIN_MS;
	db_conn_set_trying(c, 0);
	if (c->ever_up)
		db->stats.reconnects++;
	c->ever_up = 1;
	if (db->outage) {
		log_info("db", "Connection to PostgreSQL restored. conn=%s down_ms=%llu", c->name,
		    (unsigned long long)(util_mono_ms() - db->outage_ms));
		db_kick(db);
	} else if (!db->ever_up) {
		log_info("db", "Connected to PostgreSQL. server_version=%d", PQserverVersion(c->pg));
	}
	db->outage = 0;
	db->ever_up = 1;
	db_conn_set_state(c, DB_CONN_IDLE);
	db_conn_watch(c, EV_READ);
	db_conn_next(c);
}

/* One step of the connection handshake, then wait for what libpq asks. */
static void
db_conn_poll(struct db_conn *c)
{
	/* libpq may close its socket and open another one (next address, SSL
	 * refused), even under the same number: always make the event again. */
	if (c->ev != NULL)
		event_free(c->ev);
	c->ev = NULL;
	switch (PQconnectPoll(c->pg)) {
	case PGRES_POLLING_READING:
		db_conn_watch(c, EV_READ);
		break;
	case PGRES_POLLING_WRITING:
		db_conn_watch(c, EV_WRITE);
		break;
	case PGRES_POLLING_OK:
		db_conn_ready(c);
		break;
	default:
		db_conn_lose(c, DB_ERROR_UNAVAILABLE);
		break;
	}
}

/* Start an attempt to connect, without blocking. */
static void
db_conn_connect(struct db_conn *c)
{
	static const char *const keys[] = { "dbname", "fallback_application_name", NULL };
	const char *values[] = { c->db->conninfo, "linbatd", NULL };

	c->pg = PQconnectStartParams(keys, values, 1);
	if (c->pg == NULL)
		log_fatal("db", "Out of memory.");
	PQsetNoticeReceiver(c->pg, db_notice, c);
	db_conn_set_state(c, DB_CONN_CONNECTING);
	if (PQstatus(c->pg) == CONNECTION_BAD) {
		db_conn_lose(c, DB_ERROR_UNAVAILABLE);
		return;
	}
	db_conn_timer_start(c, DB_CONNECT_TIMEOUT_MS);
	/* Before the first PQconnectPoll, act as if it had said "writing". */
	db_conn_watch(c, EV_WRITE);
}

/* Send what libpq holds; watch for writability while some is left. 0, or -1 if the connection failed. */
static int
db_conn_flush(struct db_conn *c)
{
	int r = PQflush(c->pg);

	if (r < 0) {
		db_conn_lose(c, DB_ERROR_LOST);
		return -1;
	}
	c->flushing = r == 1;
	db_conn_watch(c, c->flushing ? EV_READ | EV_WRITE : EV_READ);
	return 0;
}

/* Whether stmt is prepared on this connection. */
static int
db_conn_prepared(struct db_conn *c, const struct db_stmt *stmt)
{
	int i;

	for (i = 0; i < c->nprepared; i++) {
		if (strcmp(c->prepared[i], stmt->name) == 0)
			return 1;
	}
	return 0;
}

/* Remember that stmt is prepared on this connection (until it closes). */
static void
db_conn_set_prepared(struct db_conn *c, const struct db_stmt *stmt)
{
	if (c->nprepared == c->prepared_cap) {
		c->prepared_cap = c->prepared_cap > 0 ? c->prepared_cap * 2 : 16;
		c->prepared = xrealloc(c->prepared, c->prepared_cap * sizeof *c->prepared);
	}
	c->prepared[c->nprepared++] = stmt->name;
	c->db->stats.prepares++;
}

/* Send the current phase of the query in flight: the prepare, or the query. */
static void
db_conn_send_phase(struct db_conn *c)
{
	struct db_query *q = c->q;
	int ok;

	if (c->phase == DB_PHASE_PREPARE)
		ok = PQsendPrepare(c->pg, q->stmt->name, q->stmt->sql, 0, NULL);
	else if (q->stmt != NULL)
		ok = PQsendQueryPrepared(c->pg, q->stmt->name, q->nparams, q->values, NULL, NULL, 0);
	else if (q->nparams == 0)
		ok = PQsendQuery(c->pg, q->sql);
	else
		ok = PQsendQueryParams(c->pg, q->sql, q->nparams, NULL, q->values, NULL, NULL, 0);
	if (!ok) {
		db_conn_lose(c, DB_ERROR_LOST);
		return;
	}
	db_conn_flush(c);
}

/* Put a query in flight on an idle connection. */
static void
db_conn_send(struct db_conn *c, struct db_query *q)
{
	c->q = q;
	db_conn_set_state(c, DB_CONN_BUSY);
	if (c->db->timeout_ms > 0)
		db_conn_timer_start(c, c->db->timeout_ms);
	c->phase = q->stmt != NULL && !db_conn_prepared(c, q->stmt) ? DB_PHASE_PREPARE : DB_PHASE_EXECUTE;
	db_conn_send_phase(c);
}

/* Give an idle connection its next work: a queued query, or LISTENs. */
static void
db_conn_next(struct db_conn *c)
{
	struct db *db = c->db;
	struct db_query *q;

	if (c->state != DB_CONN_IDLE)
		return;
	if (c->listen) {
		db_listen_sync(c);
		return;
	}
	if ((q = TAILQ_FIRST(&db->queue)) == NULL)
		return;
	TAILQ_REMOVE(&db->queue, q, entry);
	db->nqueued--;
	db_conn_send(c, q);
}

/* Keep one result of the query in flight: the first error, else the latest. */
static int
db_conn_collect(struct db_conn *c, PGresult *res)
{
	switch (PQresultStatus(res)) {
	case PGRES_COPY_IN:
	case PGRES_COPY_OUT:
	case PGRES_COPY_BOTH:
		PQclear(res);
		db_conn_fail(c, DB_ERROR_COPY, NULL);
		return -1;
	case PGRES_BAD_RESPONSE:
	case PGRES_NONFATAL_ERROR:
	case PGRES_FATAL_ERROR:
		if (c->err == NULL)
			c->err = res;
		else
			PQclear(res);
		return 0;
	default:
		if (c->phase == DB_PHASE_PREPARE) {
			PQclear(res);
		} else {
			PQclear(c->res);
			c->res = res;
		}
		return 0;
	}
}

/* The query in flight has all its results: execute after a prepare, or deliver. */
static void
db_conn_complete(struct db_conn *c)
{
	struct db_query *q = c->q;

	if (c->phase == DB_PHASE_PREPARE && c->err == NULL) {
		db_conn_set_prepared(c, q->stmt);
		c->phase = DB_PHASE_EXECUTE;
		db_conn_send_phase(c);
		return;
	}
	q->res = c->err != NULL ? c->err : c->res;
	if (q->res != c->res)
		PQclear(c->res);
	c->q = NULL;
	c->res = c->err = NULL;
	evtimer_del(c->timer);
	db_conn_set_state(c, DB_CONN_IDLE);
	/* The next queued query goes before the callback runs, so that queries
	 * the callback submits line up behind it. */
	db_conn_next(c);
	db_deliver(c->db, q);
}

/* Hand each notification received to the listeners of its channel. */
static void
db_conn_notifies(struct db_conn *c)
{
	struct db *db = c->db;
	PGnotify *n;
	int i;

	/* A callback may fail this connection (c->pg becomes NULL). */
	while (c->pg != NULL && (n = PQnotifies(c->pg)) != NULL) {
		for (i = 0; i < db->nlisteners; i++) {
			if (strcmp(db->listeners[i].channel, n->relname) != 0)
				continue;
			db->depth++;
			db->listeners[i].cb(n->relname, n->extra, db->listeners[i].arg);
			db->depth--;
		}
		PQfreemem(n);
	}
}

/* Read what the server sent: results of the query in flight, notifications, or a goodbye. */
static void
db_conn_read(struct db_conn *c)
{
	PGresult *res;

	if (!PQconsumeInput(c->pg)) {
		db_conn_lose(c, DB_ERROR_LOST);
		return;
	}
	if (c->flushing && db_conn_flush(c) != 0)
		return;
	while (c->state == DB_CONN_BUSY && !PQisBusy(c->pg)) {
		if ((res = PQgetResult(c->pg)) == NULL)
			db_conn_complete(c);
		else if (db_conn_collect(c, res) != 0)
			return;
	}
	db_conn_notifies(c);
	if (c->pg != NULL && PQstatus(c->pg) == CONNECTION_BAD)
		db_conn_lose(c, DB_ERROR_LOST);
}

/* The socket is ready: advance the handshake, or flush and read. */
static void
db_conn_io(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn *c = arg;

	if (c->state == DB_CONN_CONNECTING) {
		db_conn_poll(c);
		return;
	}
	if ((what & EV_WRITE) && db_conn_flush(c) != 0)
		return;
	if (what & EV_READ)
		db_conn_read(c);
}

/* The timer: next attempt when down, deadline when connecting or busy. */
static void
db_conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn *c = arg;

	switch (c->state) {
	case DB_CONN_DOWN:
		db_conn_connect(c);
		break;
	case DB_CONN_CONNECTING:
		db_conn_fail(c, DB_ERROR_UNAVAILABLE, "The connection attempt timed out.");
		break;
	case DB_CONN_BUSY:
		log_warn("db", "A query timed out; its connection is dropped. conn=%s timeout_ms=%d stmt=%s",
		    c->name, c->db->timeout_ms, c->q->stmt != NULL ? c->q->stmt->name : "-");
		db_conn_fail(c, DB_ERROR_TIMEOUT, NULL);
		break;
	case DB_CONN_IDLE:
		break;
	}
}

/* Set a connection up, down, with its timer; listen tells the dedicated one. */
static void
db_conn_init(struct db *db, struct db_conn *c, int id, int listen)
{
	c->db = db;
	c->listen = listen;
	if (listen)
		snprintf(c->name, sizeof c->name, "listen");
	else
		snprintf(c->name, sizeof c->name, "%d", id);
	c->state = DB_CONN_DOWN;
	c->timer = evtimer_new(db->base, db_conn_timer, c);
	c->backoff_ms = DB_BACKOFF_MIN_MS;
}

/* Close a connection for good, failing its query with DB_ERROR_CLOSED. */
static void
db_conn_free(struct db_conn *c)
{
	db_conn_drop_query(c, DB_ERROR_CLOSED);
	db_conn_close(c);
	event_free(c->timer);
	free(c->prepared);
}

/* The LISTEN batch came back: tell its listeners, then LISTEN any added since. */
static void
db_listen_done(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct db_conn *c = arg;
	struct db *db = c->db;
	int i;

	if (error != NULL)
		log_error("db", "LISTEN failed. error=\"%s\" sqlstate=%s", error, sqlstate);
	for (i = c->listened; i < c->listening; i++)
		db->listeners[i].cb(db->listeners[i].channel, NULL, db->listeners[i].arg);
	c->listened = c->listening;
	db_conn_next(c);
}

/* LISTEN, in one batch, the channels this idle connection does not listen on yet. */
static void
db_listen_sync(struct db_conn *c)
{
	struct db *db = c->db;
	struct db_query *q;
	struct buf sql;
	char *quoted;
	int i;

	if (c->state != DB_CONN_IDLE || c->listening != c->listened || c->listened == db->nlisteners)
		return;
	buf_init(&sql);
	for (i = c->listened; i < db->nlisteners; i++) {
		quoted = PQescapeIdentifier(c->pg, db->listeners[i].channel, strlen(db->listeners[i].channel));
		if (quoted == NULL) {
			log_error("db", "A channel name cannot be quoted. channel=\"%s\"", db->listeners[i].channel);
			continue;
		}
		buf_addf(&sql, "LISTEN %s;", quoted);
		PQfreemem(quoted);
	}
	c->listening = db->nlisteners;
	q = db_query_new(sql.len > 0 ? sql.data : "", NULL, 0, NULL, db_listen_done, c);
	q->internal = 1;
	buf_free(&sql);
	db_conn_send(c, q);
}

/*
 * The notifications of db_notify_later, in order; a statement that needs no
 * schema, so that it works on any database the pool reaches. PostgreSQL runs
 * pg_notify after the sort (a volatile function in the select list).
 */
#define DB_NOTIFY_SQL "select pg_notify(e->>0, e->>1) from jsonb_array_elements($1::jsonb) " \
	"with ordinality as t(e, i) order by i"

static void db_notify_flush(evutil_socket_t, short, void *);

/* A batch of notifications went out (or not); send what gathered meanwhile. */
static void
db_notify_sent(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct db *db = arg;

	db->notify_busy = 0;
	if (error != NULL)
		log_warn("db", "Could not send notifications after their commit; live updates may miss them. "
		    "reason=\"%s\" sqlstate=%s", error, sqlstate);
	if (db->notify.len > 0 && !db->closing)
		event_active(db->notify_ev, EV_TIMEOUT, 0);
}

/* The next pass of the loop after db_notify_later: send what gathered, in one statement. */
static void
db_notify_flush(evutil_socket_t fd, short what, void *arg)
{
	struct db *db = arg;
	const char *params[1];
	char *sql;

	if (db->notify_busy || db->notify.len == 0 || db->closing)
		return;
	buf_add(&db->notify, "]", 1);
	sql = buf_take(&db->notify);
	params[0] = sql;
	db->notify_busy = 1;
	db_query(db, DB_NOTIFY_SQL, 1, params, db_notify_sent, db);
	free(sql);
}

void
db_notify_later(struct db *db, const char *events)
{
	size_t len;

	if (events == NULL || db->closing)
		return;
	/* the array's elements, without its brackets */
	while (*events == ' ' || *events == '\n')
		events++;
	len = strlen(events);
	while (len > 0 && (events[len - 1] == ' ' || events[len - 1] == '\n'))
		len--;
	if (len < 2 || events[0] != '[' || events[len - 1] != ']') {
		if (len > 0)
			log_warn("db", "Notifications to send are not a JSON array; dropped.");
		return;
	}
	events++;
	len -= 2;
	while (len > 0 && *events == ' ') {
		events++;
		len--;
	}
	if (len == 0)
		return;
	buf_add(&db->notify, db->notify.len == 0 ? "[" : ",", 1);
	buf_add(&db->notify, events, len);
	if (!db->notify_busy)
		event_active(db->notify_ev, EV_TIMEOUT, 0);
}

/* Make the pool and start connecting each connection. */
struct db *
db_create(struct event_base *base, const char *conninfo, int pool_size, char **cause)
{
	PQconninfoOption *opts;
	char *err = NULL, text[512];
	struct db *db;
	int i;

	if ((opts = PQconninfoParse(conninfo, &err)) == NULL) {
		db_flatten(err != NULL ? err : "out of memory", text, sizeof text);
		xasprintf(cause, "The database connection string is invalid (%s).", text);
		PQfreemem(err);
		return NULL;
	}
	PQconninfoFree(opts);
	if (pool_size < 1 || pool_size > DB_POOL_MAX) {
		xasprintf(cause, "The database pool size must be between 1 and %d.", DB_POOL_MAX);
		return NULL;
	}
	db = xcalloc(1, sizeof *db);
	db->base = base;
	db->conninfo = xstrdup(conninfo);
	db->size = pool_size;
	db->timeout_ms = DB_QUERY_TIMEOUT_MS;
	TAILQ_INIT(&db->queue);
	TAILQ_INIT(&db->done);
	db->done_ev = event_new(base, -1, 0, db_done, db);
	buf_init(&db->notify);
	db->notify_ev = event_new(base, -1, 0, db_notify_flush, db);
	db->conns = xcalloc(pool_size, sizeof *db->conns);
	for (i = 0; i < pool_size; i++)
		db_conn_init(db, &db->conns[i], i, 0);
	for (i = 0; i < pool_size; i++) {
		db_conn_set_trying(&db->conns[i], 1);
		db_conn_connect(&db->conns[i]);
	}
	return db;
}

/* Close the pool; pending callbacks run from here. */
void
db_destroy(struct db *db)
{
	int i;

	if (db == NULL)
		return;
	if (db->depth > 0)
		log_fatal("db", "The database pool was destroyed from one of its callbacks.");
	db->closing = 1;
	for (i = 0; i < db->size; i++)
		db_conn_free(&db->conns[i]);
	if (db->lconn != NULL)
		db_conn_free(db->lconn);
	db_fail_queue(db, DB_ERROR_CLOSED);
	db_done(-1, 0, db);
	for (i = 0; i < db->nlisteners; i++)
		free(db->listeners[i].channel);
	free(db->listeners);
	free(db->lconn);
	free(db->conns);
	event_free(db->done_ev);
	event_free(db->notify_ev);
	buf_free(&db->notify);
	free(db->conninfo);
	free(db);
}

/* Submit a query with text parameters. */
void
db_query(struct db *db, const char *sql, int nparams, const char *const *values, db_cb cb, void *arg)
{
	db_submit(db, db_query_new(sql, NULL, nparams, values, cb, arg));
}

/* Submit a prepared statement with text parameters. */
void
db_exec(struct db *db, const struct db_stmt *stmt, int nparams, const char *const *values, db_cb cb,
    void *arg)
{
	db_submit(db, db_query_new(NULL, stmt, nparams, values, cb, arg));
}

/* Register a listener and LISTEN on its channel. */
int
db_listen(struct db *db, const char *channel, db_notify_cb cb, void *arg)
{
	size_t len = strlen(channel);
	struct db_listener *l;

	if (len == 0 || len > DB_CHANNEL_MAX || db->closing)
		return -1;
	db->listeners = xrealloc(db->listeners, (db->nlisteners + 1) * sizeof *db->listeners);
	l = &db->listeners[db->nlisteners++];
	l->channel = xstrdup(channel);
	l->cb = cb;
	l->arg = arg;
	if (db->lconn == NULL) {
		db->lconn = xcalloc(1, sizeof *db->lconn);
		db_conn_init(db, db->lconn, 0, 1);
		db_conn_connect(db->lconn);
	} else {
		db_conn_next(db->lconn);
	}
	return 0;
}

/* Count the pool connections ready for queries. */
int
db_up(struct db *db)
{
	return db->up;
}

/* Set the deadline of queries sent from now on. */
void
db_set_query_timeout(struct db *db, int ms)
{
	db->timeout_ms = ms > 0 ? ms : 0;
}

/* Fill in the pool's counters. */
void
db_get_stats(struct db *db, struct db_stats *st)
{
	int i;

	*st = db->stats;
	st->size = db->size;
	st->connected = db->up;
	st->queued = db->nqueued;
	st->busy = 0;
	for (i = 0; i < db->size; i++)
		st->busy += db->conns[i].state == DB_CONN_BUSY;
}
