/*
 * statuses.c: delivery statuses by linbat's own message id (Kannel's DLRs,
 * see statuses.h), recorded in batches.
 *
 * Kannel posts two DLRs per message (8, then 1). One transaction each made
 * PostgreSQL commit thousands of times a second, one at a time behind the
 * lock that a commit with pg_notify takes, and filled the pool's queue ahead
 * of the dispatcher's claims and records, which then held their messages in
 * flight longer. Now a status that comes while STATUSES_PARALLEL statements
 * run waits and goes with the others in the next one; a lone status goes at
 * once, so a quiet daemon answers as fast as before. A batch locks its
 * messages in id order, as linbat.outbound_sent_batch does, so batches do not
 * wait for each other in a circle. A batch the server refuses (a bad row, a
 * deadlock) is tried again row by row, so only the row at fault fails; the
 * pool's own errors (the database is away) fail the whole batch.
 */
#include "config.h"

#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "statuses.h"
#include "util.h"

#define STATUSES_BATCH 256   /* most statuses in one statement */
#define STATUSES_PARALLEL 2  /* batch statements at once, of the pool's connections */

static const struct db_stmt statuses_stmt = {
	"statuses_by_id",
	"select linbat.status_update_by_id(t.id, t.status, to_timestamp(t.at), t.code, t.text) "
	"from unnest($1::bigint[], $2::text[], $3::float8[], $4::text[], $5::text[]) "
	"with ordinality as t (id, status, at, code, text, n) order by t.n",
};

struct statuses_item {
	struct db *db;
	long long id;
	unsigned long seq; /* arrival order, among statuses of one message */
	char *status;
	char *at;          /* unix seconds, NULL: now */
	char *code;
	char *text;
	db_cb cb;
	void *arg;
	TAILQ_ENTRY(statuses_item) entry;
};

/* One statement in flight. */
struct statuses_run {
	int alone; /* a row of a refused batch, tried again on its own */
	int n;
	struct statuses_item *items[];
};

static TAILQ_HEAD(, statuses_item) statuses_queue = TAILQ_HEAD_INITIALIZER(statuses_queue);
static int statuses_running;
static unsigned long statuses_seq;

static void statuses_flush(void);

static char *
statuses_dup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/* Tell the webhook of an item how its row went, and free the item. */
static void
statuses_item_done(struct statuses_item *it, const char *error, const char *sqlstate)
{
	it->cb(NULL, error, sqlstate, it->arg);
	free(it->status);
	free(it->at);
	free(it->code);
	free(it->text);
	free(it);
}

/* qsort order of a batch: by message id, then as they came. */
static int
statuses_cmp(const void *a, const void *b)
{
	const struct statuses_item *x = *(struct statuses_item *const *)a, *y = *(struct statuses_item *const *)b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void statuses_done(const PGresult *, const char *, const char *, void *);

/* Send a run's statement: one array element per item, in id order. */
static void
statuses_send(struct statuses_run *r)
{
	struct buf a[5];
	const char *v[5];
	char num[32];
	int i, k;

	qsort(r->items, (size_t)r->n, sizeof r->items[0], statuses_cmp);
	for (k = 0; k < 5; k++) {
		buf_init(&a[k]);
		buf_adds(&a[k], "{");
	}
	for (i = 0; i < r->n; i++) {
		snprintf(num, sizeof num, "%lld", r->items[i]->id);
		buf_add_pgarray(&a[0], num);
		buf_add_pgarray(&a[1], r->items[i]->status);
		buf_add_pgarray(&a[2], r->items[i]->at);
		buf_add_pgarray(&a[3], r->items[i]->code);
		buf_add_pgarray(&a[4], r->items[i]->text);
	}
	for (k = 0; k < 5; k++) {
		buf_adds(&a[k], "}");
		v[k] = a[k].data;
	}
	if (!r->alone)
		statuses_running++;
	db_exec(r->items[0]->db, &statuses_stmt, 5, v, statuses_done, r);
	for (k = 0; k < 5; k++)
		buf_free(&a[k]);
}

/* A statement came back: answer its rows, or try a refused batch row by row. */
static void
statuses_done(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct statuses_run *r = arg, *one;
	struct statuses_item *it, *next;
	struct db *db = r->items[0]->db;
	int i;

	if (!r->alone)
		statuses_running--;
	if (error != NULL && sqlstate[0] != '\0' && r->n > 1) {
		for (i = 0; i < r->n; i++) {
			one = xmalloc(sizeof *one + sizeof one->items[0]);
			one->alone = 1;
			one->n = 1;
			one->items[0] = r->items[i];
			statuses_send(one);
		}
	} else {
		for (i = 0; i < r->n; i++)
			statuses_item_done(r->items[i], error, sqlstate);
	}
	free(r);
	if (error != NULL && strcmp(error, DB_ERROR_CLOSED) == 0) {
		/* the pool is going away: what waits for it gets its error, not a query */
		for (it = TAILQ_FIRST(&statuses_queue); it != NULL; it = next) {
			next = TAILQ_NEXT(it, entry);
			if (it->db == db) {
				TAILQ_REMOVE(&statuses_queue, it, entry);
				statuses_item_done(it, error, sqlstate);
			}
		}
	}
	statuses_flush();
}

/* Start batches of what waits while fewer than STATUSES_PARALLEL run. */
static void
statuses_flush(void)
{
	struct statuses_item *it, *next;
	struct statuses_run *r;
	struct db *db;

	while (statuses_running < STATUSES_PARALLEL && !TAILQ_EMPTY(&statuses_queue)) {
		db = TAILQ_FIRST(&statuses_queue)->db;
		r = xmalloc(sizeof *r + STATUSES_BATCH * sizeof r->items[0]);
		r->alone = 0;
		r->n = 0;
		for (it = TAILQ_FIRST(&statuses_queue); it != NULL && r->n < STATUSES_BATCH; it = next) {
			next = TAILQ_NEXT(it, entry);
			if (it->db != db)
				continue;
			TAILQ_REMOVE(&statuses_queue, it, entry);
			r->items[r->n++] = it;
		}
		statuses_send(r);
	}
}

void
statuses_by_id(struct db *db, long long id, const char *status, const char *at, const char *code,
    const char *text, db_cb cb, void *arg)
{
	struct statuses_item *it = xcalloc(1, sizeof *it);

	it->db = db;
	it->id = id;
	it->seq = statuses_seq++;
	it->status = xstrdup(status);
	it->at = statuses_dup(at);
	it->code = statuses_dup(code);
	it->text = statuses_dup(text);
	it->cb = cb;
	it->arg = arg;
	TAILQ_INSERT_TAIL(&statuses_queue, it, entry);
	statuses_flush();
}
