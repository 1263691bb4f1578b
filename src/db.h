/*
 * db.h: a small pool of non-blocking PostgreSQL connections on the libevent
 * loop, plus one dedicated connection for LISTEN/NOTIFY.
 *
 * Nothing here blocks the loop: connections are made with PQconnectStart and
 * driven by events on their socket; queries are sent with PQsendQueryParams
 * or lazily prepared statements and their results gathered as they arrive.
 * Every query ends in exactly one callback, always called later from the loop
 * (never from inside db_query or db_exec). Lost connections are re-made with
 * a backoff of 100 ms doubling up to 1 s; while no connection is up, queries
 * fail at once with DB_ERROR_UNAVAILABLE instead of waiting, except while an
 * attempt that should succeed is under way (the first ones after db_create,
 * or one after a connection was dropped for a timeout): then they queue.
 *
 * libpq resolves host names itself, blocking: give a numeric host (or
 * hostaddr), or a name in /etc/hosts, so that connecting never waits on DNS.
 */
#ifndef LINBAT_DB_H
#define LINBAT_DB_H

#include <libpq-fe.h>

struct event_base;
struct db;

/* The errors the pool makes itself (their sqlstate is ""); any other error
 * text is PostgreSQL's primary message, with its SQLSTATE. */
#define DB_ERROR_UNAVAILABLE "The database is unavailable."
#define DB_ERROR_BUSY "The database is busy."
#define DB_ERROR_CLOSED "The database pool was closed."
#define DB_ERROR_TIMEOUT "The database query timed out."
#define DB_ERROR_LOST "The database connection was lost."

/* Queries waiting for a free connection, at most; beyond it DB_ERROR_BUSY. */
#define DB_QUEUE_MAX 100000
/* Default for db_set_query_timeout, in milliseconds. */
#define DB_QUERY_TIMEOUT_MS 30000

/*
 * A statement prepared lazily, once per connection, on its first db_exec
 * there. Both the struct and its strings must have static storage (the pool
 * keeps the pointers); name is unique, non-empty and stands for one sql.
 */
struct db_stmt {
	const char *name;
	const char *sql;
};

/*
 * Called exactly once per query, always later from the loop. On success res
 * is the result and error is NULL; on failure res is NULL or PostgreSQL's
 * error result, error is a whole sentence and sqlstate the 5-character
 * SQLSTATE, or "" for the pool's own errors (DB_ERROR_*). res, error and
 * sqlstate are borrowed: they are freed when the callback returns, so copy
 * what you keep. The callback may call db_query, db_exec and db_listen, but
 * not db_close or db_destroy.
 */
typedef void (*db_cb)(const PGresult *res, const char *error, const char *sqlstate, void *arg);

/*
 * Called for each notification on a channel passed to db_listen; channel and
 * payload are borrowed. payload NULL means the listen connection was (re)made
 * and LISTENs again: notifications may have been missed, so re-read state.
 */
typedef void (*db_notify_cb)(const char *channel, const char *payload, void *arg);

/*
 * Make a pool of pool_size (1 to 100) connections and start connecting them
 * without blocking. conninfo is a libpq connection string or URI (copied).
 * Queries submitted before the first connection is ready wait for it. NULL
 * and *cause (caller frees) if conninfo or pool_size is invalid.
 */
struct db *db_create(struct event_base *, const char *conninfo, int pool_size, char **cause);

/*
 * Close every connection, keeping the pool allocated. Callbacks of queries
 * still pending are called from here, with DB_ERROR_CLOSED (or the error
 * they had already met): call it while what they touch still exists. A
 * query submitted from then on fails the same way, its callback called from
 * here or from db_destroy. Not to be called from a db_cb or db_notify_cb:
 * break out of the loop first.
 */
void db_close(struct db *);

/*
 * db_close if not done, then free the pool. Queries that callbacks keep
 * submitting again while it closes (after 100 rounds) are dropped without
 * their callbacks, with a warning. Same restrictions as db_close.
 */
void db_destroy(struct db *);

/*
 * Run sql with nparams text parameters ($1..$n; a NULL value is SQL NULL).
 * sql and values are copied. With no parameters, sql may hold several
 * statements: the callback gets the last result, or the first error.
 */
void db_query(struct db *, const char *sql, int nparams, const char *const *values, db_cb, void *arg);

/* Run a prepared statement (preparing it first on this connection if need be). */
void db_exec(struct db *, const struct db_stmt *, int nparams, const char *const *values, db_cb, void *arg);

/*
 * Listen on channel (copied; case-sensitive, as pg_notify sees it) on the
 * dedicated connection, which is made on the first call and LISTENs again
 * after every reconnect. cb is called with payload NULL each time the
 * LISTEN takes effect. 0, or -1 if channel is empty or over 63 bytes (or the
 * pool is being closed).
 */
int db_listen(struct db *, const char *channel, db_notify_cb, void *arg);

/*
 * Send notifications after the fact. events is a JSON array of [channel,
 * payload] pairs (copied; NULL, "" or "[]": nothing), such as
 * linbat.ingest_inbound_deferred hands back for a transaction that kept its
 * events instead of notifying at commit. Those of every call until the next
 * pass of the loop go out together, in the order of the calls, in one
 * statement on a pool connection (one batch in flight at a time; the next
 * one gathers meanwhile), so that PostgreSQL's NOTIFY lock, which it holds
 * through a notifying transaction's commit, is taken once per batch and not
 * once per transaction. Best effort: a batch that fails (the database is
 * down, linbatd stops or dies first) is logged and dropped. Notifications
 * are hints that something changed; whoever needs the state reads it.
 */
void db_notify_later(struct db *, const char *events);

/* The number of pool connections ready for queries (the listen one aside). */
int db_up(struct db *);

/*
 * Time limit for each query sent from now on, in milliseconds (0: none),
 * counted from when it leaves the queue for a connection.
 * On timeout the connection is dropped and made again, and the callback gets
 * DB_ERROR_TIMEOUT (the server may go on running the statement for a while).
 */
void db_set_query_timeout(struct db *, int ms);

/* Counters since db_create; the last four only grow. */
struct db_stats {
	int size;                     /* connections in the pool */
	int connected;                /* of which ready (idle or busy) */
	int busy;                     /* of which running a query */
	int queued;                   /* queries waiting for a connection */
	unsigned long long queries;   /* callbacks called */
	unsigned long long errors;    /* of which with an error */
	unsigned long long reconnects; /* connections made again after a loss */
	unsigned long long prepares;  /* statements prepared on a connection */
};

void db_get_stats(struct db *, struct db_stats *);

#endif
