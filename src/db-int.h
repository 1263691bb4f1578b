/*
 * db-int.h: what the two files of the PostgreSQL pool share: db.c (queries
 * from submission to callback, notifications sent after the fact, the pool's
 * public calls) and db-conn.c (each connection's state machine, and the
 * LISTEN connection's batches). Nothing outside src/db*.c includes it.
 */
#ifndef LINBAT_DB_INT_H
#define LINBAT_DB_INT_H

#include <sys/queue.h>

#include <stdint.h>

#include <libpq-fe.h>

#include "db.h"
#include "util.h"

enum db_conn_state {
	DB_CONN_DOWN,       /* no connection; the timer makes the next attempt */
	DB_CONN_CONNECTING, /* PQconnectPoll under way; the timer is its deadline */
	DB_CONN_IDLE,       /* ready for a query */
	DB_CONN_BUSY,       /* a query in flight; the timer is its deadline */
};

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

/* db.c */
/* Copy a libpq message onto one line, without quotes, for a log field. */
void db_flatten(const char *msg, char *out, size_t len);
/* Copy a query's text and parameters into one block that the query owns. */
struct db_query *db_query_new(const char *sql, const struct db_stmt *stmt, int nparams,
    const char *const *values, db_cb cb, void *arg);
/* Call a query's callback once, count it, and free the query. */
void db_deliver(struct db *db, struct db_query *q);
/* Fail a query with the pool's own error; its callback runs on the next pass of the loop. */
void db_fail_later(struct db *db, struct db_query *q, const char *error);
/* Fail every query waiting in the queue. */
void db_fail_queue(struct db *db, const char *error);
/* Whether a query can expect a connection: one is up, or an attempt may yet succeed. */
int db_available(struct db *db);

/* db-conn.c */
/* Mark whether the connection is on an attempt that queries may wait for. */
void db_conn_set_trying(struct db_conn *c, int trying);
/* Start an attempt to connect, without blocking. */
void db_conn_connect(struct db_conn *c);
/* Put a query in flight on an idle connection. */
void db_conn_send(struct db_conn *c, struct db_query *q);
/* Give an idle connection its next work: a queued query, or LISTENs. */
void db_conn_next(struct db_conn *c);
/* Set a connection up, down, with its timer; listen tells the dedicated one. */
void db_conn_init(struct db *db, struct db_conn *c, int id, int listen);
/* Close a connection for good, failing its query with DB_ERROR_CLOSED. */
void db_conn_free(struct db_conn *c);

#endif
