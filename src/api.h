/*
 * api.h: the JSON API under /api/v1. Each route names the least role that
 * may call it; api.c authenticates the caller (a bearer API token, or the
 * session cookie of the web inbox, which must bring its CSRF token on every
 * state-changing request) before the handler runs. Handlers are short: the
 * work is a SQL function or a query that builds the JSON itself.
 *
 * The modules: api.c (authentication, shared machinery, the route table's
 * owner), api-auth.c (login, logout, presence, the password worker threads),
 * api-inbox.c (conversations and messages), api-admin.c (operators and
 * investors), api-events.c (Server-Sent Events fed by NOTIFY), api-desk.c (read
 * markers, attachment bytes, quick replies, operators' load, reports as JSON or CSV).
 */
#ifndef LINBAT_API_H
#define LINBAT_API_H

#include <libpq-fe.h>

#include "http.h"

struct server;

enum api_role {
	API_ROLE_ANON,     /* no authentication needed */
	API_ROLE_OPERATOR,
	API_ROLE_MANAGER,
	API_ROLE_ADMIN,
};

/* One authenticated call in progress; freed with its request. */
struct api_call {
	struct server *srv;
	struct http_req *hr;
	long long operator_id; /* 0 when anonymous */
	enum api_role role;
	char operator_str[24]; /* operator_id as text, for query parameters */
	const struct api_route *route;
	int by_cookie;         /* authenticated by the session cookie (not a bearer token) */
};

struct api_route {
	const char *method;
	const char *pattern;
	enum api_role least;
	void (*fn)(struct api_call *);
};

/* The cookie that carries a browser session. */
#define API_SESSION_COOKIE "linbat_session"

/* Register every API route and start the password workers. */
void api_init(struct server *);
/* SIGTERM: end the event streams so that the daemon can drain. */
void api_stop(struct server *);
/* Free what api_init made (bindings, workers, streams); after the loop has ended. */
void api_free(struct server *);
/* Register a table of routes (each module of the API has one); the table must be static. */
void api_add_routes(struct server *, const struct api_route *, size_t);

/*
 * Run a query whose single row and column is the JSON answer, and send it with
 * status (or 404 when the query returns no row or SQL NULL). SQL errors of
 * class 22 and CHECK violations become 400, P0002 404, other class 23 and P0001
 * 409, 42501 403, each with PostgreSQL's message.
 */
void api_json_query(struct api_call *, int status, const char *sql, int nparams, const char *const *params);
/* Parse an id path parameter ("{id}"); 0 and a 404 answer if it is not a positive integer. */
long long api_param_id(struct api_call *, const char *name);
/* SHA-256 hex of a token (65 bytes out): tokens are stored hashed. */
void api_token_hash(const char *token, char *out);
/* The caller's role as the database names it ("operator", "manager", "admin"). */
const char *api_role_name(enum api_role);
/* Answer a SQL error of a query the API ran (see api_json_query). */
void api_sql_error(struct http_req *, const char *error, const char *sqlstate);

/*
 * Password work off the loop: fn runs on a worker thread (it must touch
 * nothing of the loop's), then done runs on the loop with the same arg.
 */
void api_work(struct server *, void (*fn)(void *), void (*done)(void *), void *arg);

/* The route tables of the modules, and their setup. */
void api_auth_init(struct server *);
void api_inbox_init(struct server *);
void api_admin_init(struct server *);
void api_desk_init(struct server *);
void api_events_init(struct server *);
void api_events_stop(struct server *);
void api_events_free(struct server *);
/* Module state kept in struct api (api.c owns it). */
struct api_events;
struct api_events **api_events_state(struct server *);

#endif
