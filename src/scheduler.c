/*
 * scheduler.c: the timer of linbatd's periodic chores (see scheduler.h).
 * A round runs the chores of scheduler_chores in order, one query at a time
 * on the pool; a round still under way when the timer fires again is not
 * doubled, the tick is skipped. Like PgBouncer's main loop chores, the list
 * is fixed and each chore is short.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "conf.h"
#include "db.h"
#include "log.h"
#include "scheduler.h"
#include "server.h"
#include "util.h"

/* One chore: a statement whose single value is a count, and what it counts. */
struct scheduler_chore {
	const char *what;
	struct db_stmt stmt;
};

static const struct scheduler_chore scheduler_chores[] = {
	{ "reminders planned", { "sched_plan", "select linbat.plan_reminders(now())" } },
	{ "reminders handed to the outbox", { "sched_remind", "select linbat.reminder_send_due(now())" } },
	{ "conversations past their SLA", { "sched_sla", "select linbat.sweep_sla(now())" } },
	{ "stray early statuses dropped", { "sched_early", "select linbat.status_early_sweep('1 day')" } },
};

struct scheduler {
	struct server *srv;
	struct event *timer;
	size_t next;   /* the chore under way, or nitems(...) when idle */
	int running;
	int stopped;
};

static void scheduler_run(struct scheduler *);

/* A chore came back: log what it did, then run the next one. */
static void
scheduler_done(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct scheduler *s = arg;
	const struct scheduler_chore *c = &scheduler_chores[s->next];
	long n;

	if (error != NULL)
		log_warn("scheduler", "A chore failed. chore=%s sqlstate=%s reason=\"%s\"", c->stmt.name, sqlstate,
		    error);
	else if ((n = strtol(PQgetvalue(res, 0, 0), NULL, 10)) > 0)
		log_info("scheduler", "A chore did some work. chore=%s what=\"%s\" count=%ld", c->stmt.name,
		    c->what, n);
	s->next++;
	scheduler_run(s);
}

/* Send the next chore of the round, or end the round. */
static void
scheduler_run(struct scheduler *s)
{
	if (s->stopped || s->next >= nitems(scheduler_chores)) {
		s->running = 0;
		return;
	}
	db_exec(s->srv->db, &scheduler_chores[s->next].stmt, 0, NULL, scheduler_done, s);
}

/* The timer: start a round unless one is under way. */
static void
scheduler_tick(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;

	if (s->running || s->stopped)
		return;
	s->running = 1;
	s->next = 0;
	scheduler_run(s);
}

struct scheduler *
scheduler_create(struct server *srv, char **cause)
{
	struct scheduler *s = xcalloc(1, sizeof *s);

	s->srv = srv;
	s->timer = event_new(srv->base, -1, EV_PERSIST, scheduler_tick, s);
	if (s->timer == NULL) {
		xasprintf(cause, "Cannot make the scheduler's timer.");
		free(s);
		return NULL;
	}
	return s;
}

void
scheduler_start(struct scheduler *s)
{
	long long ms = conf_int(s->srv->conf, "scheduler", "interval");
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(s->timer, &tv);
	log_info("scheduler", "The scheduler started. interval_ms=%lld", ms);
}

void
scheduler_stop(struct scheduler *s)
{
	if (s == NULL)
		return;
	s->stopped = 1;
	evtimer_del(s->timer);
}

void
scheduler_destroy(struct scheduler *s)
{
	if (s == NULL)
		return;
	event_free(s->timer);
	free(s);
}
