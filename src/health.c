/*
 * health.c: GET /healthz. 200 when the database answers and every migration
 * this program knows is applied unchanged; 503 otherwise, within a second even
 * when PostgreSQL hangs rather than refuses.
 */
#include "config.h"

#include <stdlib.h>

#include "log.h"
#include "server.h"
#include "util.h"

#define HEALTH_DEADLINE_MS 1000

/* One probe; owned by the database callback, which always comes once. */
struct health_probe {
	struct server *srv;
	struct http_req *hr; /* NULL once answered */
	struct event *deadline;
};

/* Answer 503 with the reason. */
static void
health_unavailable(struct http_req *hr, const char *database, const char *reason)
{
	http_reply_json(hr, 503, json_pack("{s:s,s:s,s:s,s:s}", "status", "unavailable", "database", database,
	    "error", reason, "version", PACKAGE_VERSION));
}

/* The database did not answer in time. */
static void
health_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct health_probe *p = arg;

	if (p->hr != NULL) {
		health_unavailable(p->hr, "timeout", "The database did not answer within a second.");
		p->hr = NULL;
	}
}

/* The migrations query came back (or failed). */
static void
health_done(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct health_probe *p = arg;
	size_t pending = 0;
	char *cause = NULL;

	if (p->hr == NULL)
		; /* the deadline answered already */
	else if (error != NULL)
		health_unavailable(p->hr, "down", error);
	else if (migrate_check_rows(&p->srv->migrations, res, &pending, &cause) != 0)
		health_unavailable(p->hr, "up", cause);
	else if (pending > 0)
		health_unavailable(p->hr, "up", "Migrations are pending: run linbatctl migrate.");
	else
		http_reply_json(p->hr, 200, json_pack("{s:s,s:s,s:{s:i,s:i},s:s}", "status", "ok", "database", "up",
		    "migrations", "applied", (int)p->srv->migrations.n, "pending", 0, "version", PACKAGE_VERSION));
	free(cause);
	event_free(p->deadline);
	free(p);
}

/* GET /healthz */
static void
health_get(struct http_req *hr, void *arg)
{
	struct server *srv = arg;
	struct health_probe *p = xcalloc(1, sizeof *p);
	struct timeval tv = { 0, HEALTH_DEADLINE_MS * 1000 };

	p->srv = srv;
	p->hr = hr;
	p->deadline = evtimer_new(srv->base, health_timeout, p);
	evtimer_add(p->deadline, &tv);
	db_query(srv->db, MIGRATE_APPLIED_SQL, 0, NULL, health_done, p);
}

void
health_init(struct server *srv)
{
	http_route(srv->http, "GET", "/healthz", health_get, srv);
}
