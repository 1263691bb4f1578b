/*
 * db.c: the PostgreSQL connection pool. Each connection is a small state
 * machine (down, connecting, idle, busy) driven by one event on its libpq
 * socket and one timer (reconnect delay, connect deadline or query deadline,
 * by state); that machine is in db-conn.c. Here: queries go to an idle
 * connection or wait in a FIFO queue; every query ends in exactly one
 * callback. Failures found while a caller is still inside db_query (no
 * connection, queue full, a send that fails) are put on a "done" list that an
 * event drains on the next pass of the loop, so callbacks never run inside
 * the call that submitted them. Also here: notifications sent after the fact
 * (db_notify_later), and the pool's public calls.
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

#define DB_POOL_MAX 100
#define DB_CHANNEL_MAX 63
#define DB_PARAMS_MAX 65535

#define DB_ERROR_NORESULT "The database returned no result."

/* Copy a libpq message onto one line, without quotes, for a log field. */
void
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
struct db_query *
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
void
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
void
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
void
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
int
db_available(struct db *db)
{
	return db->up > 0 || db->trying > 0;
}

/* Send a query to an idle connection, queue it, or fail it. */
static void
db_submit(struct db *db, struct db_query *q)
{
	int i;

	if (db->closing) {
		db_fail_later(db, q, DB_ERROR_CLOSED);
		return;
	}
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

/* Rounds of callbacks db_close runs before it gives up on queries submitted again. */
#define DB_CLOSE_ROUNDS 100

/*
 * Close the pool's connections and fail every query in flight or waiting
 * with DB_ERROR_CLOSED: their callbacks run from here, so call it while
 * what they touch still exists. A query submitted from then on, from one of
 * those callbacks or later, fails the same way; its callback runs here too,
 * or from db_destroy. Leaves the pool allocated.
 */
void
db_close(struct db *db)
{
	int i, rounds;

	if (db->depth > 0)
		log_fatal("db", "The database pool was closed from one of its callbacks.");
	if (!db->closing) {
		db->closing = 1;
		for (i = 0; i < db->size; i++)
			db_conn_free(&db->conns[i]);
		if (db->lconn != NULL)
			db_conn_free(db->lconn);
		db_fail_queue(db, DB_ERROR_CLOSED);
	}
	for (rounds = 0; !TAILQ_EMPTY(&db->done) && rounds < DB_CLOSE_ROUNDS; rounds++)
		db_done(-1, 0, db);
}

/* Close the pool if db_close has not, and free it. */
void
db_destroy(struct db *db)
{
	struct db_query *q;
	int i, dropped = 0;

	if (db == NULL)
		return;
	db_close(db);
	/* callbacks that keep submitting again: theirs are not called */
	while ((q = TAILQ_FIRST(&db->done)) != NULL) {
		TAILQ_REMOVE(&db->done, q, entry);
		db_query_free(q);
		dropped++;
	}
	if (dropped > 0)
		log_warn("db", "Dropped queries submitted again while the pool closed. count=%d", dropped);
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
