/*
 * api.h: the JSON API under /api/v1. Each route names the least role that
 * may call it; api.c authenticates the caller (a bearer API token, or the
 * session cookie of the web inbox) before the handler runs. Handlers are
 * short: the work is a SQL function or a query that builds the JSON itself.
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
};

struct api_route {
	const char *method;
	const char *pattern;
	enum api_role least;
	void (*fn)(struct api_call *);
};

/* Register every API route. */
void api_init(struct server *);
/* Register a table of routes (each module of the API has one). */
void api_add_routes(struct server *, const struct api_route *, size_t);

/*
 * Run a query whose single row and column is the JSON answer, and send it with
 * status (or 404 when the query returns no row or SQL NULL). SQL errors of
 * class 22/23/P0 become 400/404/409 with PostgreSQL's message.
 */
void api_json_query(struct api_call *, int status, const char *sql, int nparams, const char *const *params);
/* Parse an id path parameter ("{id}"); 0 and a 404 answer if it is not a positive integer. */
long long api_param_id(struct api_call *, const char *name);
/* SHA-256 hex of a token (65 bytes out): tokens are stored hashed. */
void api_token_hash(const char *token, char *out);

#endif
