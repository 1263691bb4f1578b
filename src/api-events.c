/*
 * api-events.c: GET /api/v1/events, the inbox's live feed as Server-Sent
 * Events. Every business function says what changed with
 * pg_notify('linbat_event', json); each linbatd process LISTENs, so an
 * operator connected to one process sees what another ingested. A
 * notification about a conversation costs one query per process (who has it
 * now), then goes to the streams allowed to see it: managers and admins all,
 * operators their own conversations, the unassigned queue, and hand-overs
 * away from them, and every assignment out of the queue (it leaves the list
 * every operator sees). Each stream is also a row of linbat.live_connection: when
 * an operator's last stream closes, a timer of [routing] away_grace asks the
 * database whether any process still has one, and if none sets them away.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "api.h"
#include "db.h"
#include "log.h"
#include "server.h"
#include "util.h"

/* Seconds between heartbeat comments (proxies drop idle connections). */
#define API_EVENTS_HEARTBEAT_S 15

/* One open event stream. */
struct api_client {
	struct api_events *ev;
	struct http_req *hr;
	long long operator_id;
	enum api_role role;
	long long live_id; /* its linbat.live_connection row, 0 until stored */
	int closed;        /* the stream ended before its row was stored */
	TAILQ_ENTRY(api_client) entry;
};

/* A grace period running for an operator whose last stream here closed. */
struct api_grace {
	struct api_events *ev;
	long long operator_id;
	struct event *timer;
	LIST_ENTRY(api_grace) entry;
};

struct api_events {
	struct server *srv;
	TAILQ_HEAD(, api_client) clients;
	LIST_HEAD(, api_grace) graces;
	struct event *heartbeat;
};

/* A notification waiting for its conversation's assignee. */
struct api_note {
	struct api_events *ev;
	char *type;
	char *payload;
	long long mentioned[2]; /* "operator" and "previous" of the payload */
	int from_queue;         /* an assignment out of the queue every operator sees */
};

/* Whether client c may see an event about a conversation now with assignee (0: none). */
static int
api_events_visible(const struct api_client *c, long long assignee, const struct api_note *n)
{
	return c->role >= API_ROLE_MANAGER || assignee == 0 || assignee == c->operator_id ||
	    n->mentioned[0] == c->operator_id || n->mentioned[1] == c->operator_id || n->from_queue;
}

/* Send one event to every stream that may see it (assignee -1: everyone). */
static void
api_events_fanout(struct api_events *ev, const struct api_note *n, long long assignee)
{
	struct api_client *c;
	char *frame;
	int len = xasprintf(&frame, "event: %s\ndata: %s\n\n", n->type, n->payload);

	TAILQ_FOREACH(c, &ev->clients, entry) {
		if (assignee < 0 || api_events_visible(c, assignee, n))
			http_stream_write(c->hr, frame, (size_t)len);
	}
	free(frame);
}

/* Free a pending notification. */
static void
api_note_free(struct api_note *n)
{
	free(n->type);
	free(n->payload);
	free(n);
}

/* The conversation's assignee came back: fan the event out. */
static void
api_events_assignee(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct api_note *n = arg;

	if (error == NULL && n->ev != NULL && PQntuples(res) == 1)
		api_events_fanout(n->ev, n, PQgetisnull(res, 0, 0) ? 0 : strtoll(PQgetvalue(res, 0, 0), NULL, 10));
	api_note_free(n);
}

/* Whether every stream belongs to a manager or an admin (no need to ask who has it). */
static int
api_events_all_managers(struct api_events *ev)
{
	struct api_client *c;

	TAILQ_FOREACH(c, &ev->clients, entry) {
		if (c->role < API_ROLE_MANAGER)
			return 0;
	}
	return 1;
}

/* A NOTIFY on linbat_event (payload NULL: the listen connection was made again). */
static void
api_events_notified(const char *channel, const char *payload, void *arg)
{
	struct api_events *ev = arg;
	struct api_note *n;
	json_t *j, *conv;
	const char *reason;
	char id[24];
	const char *params[1] = { id };

	if (TAILQ_EMPTY(&ev->clients))
		return;
	n = xcalloc(1, sizeof *n);
	n->ev = ev;
	if (payload == NULL) {
		/* notifications may have been missed: tell the pages to read again */
		n->type = xstrdup("reset");
		n->payload = xstrdup("{}");
		api_events_fanout(ev, n, -1);
		api_note_free(n);
		return;
	}
	j = json_loads(payload, 0, NULL);
	n->type = xstrdup(json_is_string(json_object_get(j, "type")) ? json_string_value(json_object_get(j, "type")) :
	    "event");
	n->payload = xstrdup(payload);
	for (char *p = n->payload; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	n->mentioned[0] = json_integer_value(json_object_get(j, "operator"));
	n->mentioned[1] = json_integer_value(json_object_get(j, "previous"));
	/* it leaves the queue that every operator's list shows */
	reason = json_string_value(json_object_get(j, "reason"));
	n->from_queue = strcmp(n->type, "assignment") == 0 && n->mentioned[1] == 0 && reason != NULL &&
	    (strcmp(reason, "queue") == 0 || strcmp(reason, "take") == 0);
	conv = json_object_get(j, "conversation");
	if (!json_is_integer(conv) || api_events_all_managers(ev)) {
		api_events_fanout(ev, n, -1);
		api_note_free(n);
	} else {
		snprintf(id, sizeof id, "%lld", (long long)json_integer_value(conv));
		db_query(ev->srv->db, "select assigned_operator from linbat.conversation where id = $1::bigint", 1,
		    params, api_events_assignee, n);
	}
	json_decref(j);
}

/* Every API_EVENTS_HEARTBEAT_S: a comment on every stream, which also finds dead peers. */
static void
api_events_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	struct api_events *ev = arg;
	struct api_client *c;

	TAILQ_FOREACH(c, &ev->clients, entry)
		http_stream_write(c->hr, ": heartbeat\n\n", 13);
}

/* A query whose answer does not matter beyond a log line. */
static void
api_events_logged(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	if (error != NULL)
		log_warn("api", "A live connection could not be recorded. what=%s reason=\"%s\"", (const char *)arg,
		    error);
}

/* Forget a live connection row. */
static void
api_events_live_close(struct api_events *ev, long long id)
{
	char s[24];
	const char *params[1] = { s };

	snprintf(s, sizeof s, "%lld", id);
	db_query(ev->srv->db, "select linbat.live_close($1::bigint)", 1, params, api_events_logged, "close");
}

/* The grace period of an operator ran out: away, unless a stream is open somewhere. */
static void
api_events_grace_over(evutil_socket_t fd, short what, void *arg)
{
	struct api_grace *g = arg;
	char s[24];
	const char *params[1] = { s };

	snprintf(s, sizeof s, "%lld", g->operator_id);
	db_query(g->ev->srv->db, "select linbat.live_idle($1::bigint)", 1, params, api_events_logged, "idle");
	LIST_REMOVE(g, entry);
	event_free(g->timer);
	free(g);
}

/* Start the grace period of an operator with no stream left in this process. */
static void
api_events_grace(struct api_events *ev, long long operator_id)
{
	struct api_client *c;
	struct api_grace *g;
	long long ms = conf_int(ev->srv->conf, "routing", "away_grace");
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	TAILQ_FOREACH(c, &ev->clients, entry) {
		if (c->operator_id == operator_id)
			return;
	}
	g = xcalloc(1, sizeof *g);
	g->ev = ev;
	g->operator_id = operator_id;
	g->timer = evtimer_new(ev->srv->base, api_events_grace_over, g);
	LIST_INSERT_HEAD(&ev->graces, g, entry);
	evtimer_add(g->timer, &tv);
}

/* End a stream: forget it here and in the database. */
static void
api_events_end(struct api_client *c, int grace)
{
	struct api_events *ev = c->ev;
	struct http_req *hr = c->hr;
	long long operator_id = c->operator_id;

	TAILQ_REMOVE(&ev->clients, c, entry);
	if (c->live_id != 0) {
		if (c->live_id > 0)
			api_events_live_close(ev, c->live_id);
		free(c);
	} else
		c->closed = 1; /* api_events_opened frees it */
	if (grace)
		api_events_grace(ev, operator_id);
	http_stream_end(hr);
}

/* The client went away. */
static void
api_events_closed(struct http_req *hr, void *arg)
{
	struct api_client *c = arg;

	log_info("api", "An event stream closed. operator=%lld", c->operator_id);
	api_events_end(c, 1);
}

/* The live connection row was stored. */
static void
api_events_opened(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct api_client *c = arg;
	long long id = error == NULL && PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;

	if (error != NULL)
		log_warn("api", "A live connection could not be recorded. reason=\"%s\"", error);
	if (c->closed) {
		if (id > 0)
			api_events_live_close(c->ev, id);
		free(c);
		return;
	}
	c->live_id = id > 0 ? id : -1;
}

/* GET /api/v1/events */
static void
api_events_open(struct api_call *call)
{
	struct api_events *ev = *api_events_state(call->srv);
	struct api_client *c = xcalloc(1, sizeof *c);
	const char *params[2] = { call->operator_str, call->srv->owner };
	char hello[96];
	int n;

	c->ev = ev;
	c->hr = call->hr;
	c->operator_id = call->operator_id;
	c->role = call->role;
	TAILQ_INSERT_TAIL(&ev->clients, c, entry);
	http_stream_start(call->hr, 200, "text/event-stream", api_events_closed, c);
	n = snprintf(hello, sizeof hello, "retry: 2000\nevent: hello\ndata: {\"operator\":%lld}\n\n",
	    call->operator_id);
	http_stream_write(call->hr, hello, (size_t)n);
	db_query(call->srv->db, "select linbat.live_open($1::bigint, $2)", 2, params, api_events_opened, c);
	log_info("api", "An event stream opened. operator=%lld", call->operator_id);
}

static const struct api_route api_events_routes[] = {
	{ "GET", "/api/v1/events", API_ROLE_OPERATOR, api_events_open },
};

void
api_events_init(struct server *srv)
{
	struct api_events *ev = xcalloc(1, sizeof *ev);
	struct timeval tv = { API_EVENTS_HEARTBEAT_S, 0 };
	const char *params[1] = { srv->owner };

	ev->srv = srv;
	TAILQ_INIT(&ev->clients);
	LIST_INIT(&ev->graces);
	*api_events_state(srv) = ev;
	ev->heartbeat = event_new(srv->base, -1, EV_PERSIST, api_events_heartbeat, ev);
	evtimer_add(ev->heartbeat, &tv);
	if (db_listen(srv->db, "linbat_event", api_events_notified, ev) != 0)
		log_warn("api", "Could not listen for events; live updates are off.");
	/* rows a previous process of this name left behind */
	db_query(srv->db, "select linbat.live_forget($1)", 1, params, api_events_logged, "forget");
	api_add_routes(srv, api_events_routes, nitems(api_events_routes));
}

void
api_events_stop(struct server *srv)
{
	struct api_events *ev = *api_events_state(srv);
	struct api_client *c;

	while ((c = TAILQ_FIRST(&ev->clients)) != NULL)
		api_events_end(c, 0);
}

void
api_events_free(struct server *srv)
{
	struct api_events *ev = *api_events_state(srv);
	struct api_grace *g;

	if (ev == NULL)
		return;
	while ((g = LIST_FIRST(&ev->graces)) != NULL) {
		LIST_REMOVE(g, entry);
		event_free(g->timer);
		free(g);
	}
	event_free(ev->heartbeat);
	free(ev);
	*api_events_state(srv) = NULL;
}
