/*
 * db-conn.c: one connection of the PostgreSQL pool, a small state machine
 * (down, connecting, idle, busy) driven by one event on its libpq socket and
 * one timer (reconnect delay, connect deadline or query deadline, by state).
 * It connects without blocking, sends a query (preparing its statement first
 * if need be), gathers the results and hands them to db.c for delivery. A
 * connection that fails goes through db_conn_fail, the one exit (PgBouncer's
 * disconnect_client): it fails the query in flight, closes, and schedules the
 * next attempt. The dedicated LISTEN connection LISTENs in batches.
 */
#include "config.h"

#include <sys/queue.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "db-int.h"
#include "db.h"
#include "log.h"
#include "util.h"

#define DB_BACKOFF_MIN_MS 100
#define DB_BACKOFF_MAX_MS 1000
#define DB_CONNECT_TIMEOUT_MS 5000

#define DB_ERROR_COPY "COPY is not supported by the database pool."

static const char *const db_conn_state_names[] = { "down", "connecting", "idle", "busy" };

static void db_conn_io(evutil_socket_t, short, void *);
static void db_listen_sync(struct db_conn *);

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
void
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
void
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
void
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
void
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
void
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
void
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
