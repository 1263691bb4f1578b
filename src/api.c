/*
 * api.c: authentication and the shared machinery of /api/v1, plus the
 * conversation routes an operator needs to read and reply. A caller shows a
 * bearer API token; its SHA-256 is looked up (tokens are stored hashed, so a
 * copy of the database gives no usable token).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "api.h"
#include "db.h"
#include "log.h"
#include "server.h"
#include "util.h"

static const char *const api_role_names[] = {
	[API_ROLE_ANON] = "anonymous",
	[API_ROLE_OPERATOR] = "operator",
	[API_ROLE_MANAGER] = "manager",
	[API_ROLE_ADMIN] = "admin",
};

static const struct db_stmt api_stmt_token = {
	"api_token",
	"update linbat.api_token t set last_used_at = now() from linbat.operator o "
	"where t.token_hash = $1 and o.id = t.operator_id and (t.expires_at is null or t.expires_at > now()) "
	"returning o.id, o.role",
};

/* A route and the server it belongs to, as the http layer's argument. */
struct api_binding {
	struct server *srv;
	const struct api_route *route;
};

void
api_token_hash(const char *token, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	EVP_Digest(token, strlen(token), md, &n, EVP_sha256(), NULL);
	util_hex(md, n, out);
}

/* The role named s, or API_ROLE_ANON. */
static enum api_role
api_role_parse(const char *s)
{
	size_t i;

	for (i = 0; i < nitems(api_role_names); i++) {
		if (strcmp(s, api_role_names[i]) == 0)
			return (enum api_role)i;
	}
	return API_ROLE_ANON;
}

/* Run the handler if the caller's role suffices. */
static void
api_authorised(struct api_call *call, const struct api_route *route)
{
	if (call->role < route->least)
		http_reply_error(call->hr, HTTP_ERR_FORBIDDEN, "Your role may not do this.");
	else
		route->fn(call);
}

/* The token lookup came back. */
static void
api_token_checked(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct api_call *call = arg;

	if (error != NULL)
		http_reply_error(call->hr, HTTP_ERR_UNAVAILABLE, error);
	else if (PQntuples(res) == 0)
		http_reply_error(call->hr, HTTP_ERR_UNAUTHORIZED, "The token is unknown or expired.");
	else {
		call->operator_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		snprintf(call->operator_str, sizeof call->operator_str, "%lld", call->operator_id);
		call->role = api_role_parse(PQgetvalue(res, 0, 1));
		api_authorised(call, call->route);
	}
}

/* Every API request starts here: find who calls, then run the route. */
static void
api_entry(struct http_req *hr, void *arg)
{
	const struct api_binding *b = arg;
	struct api_call *call = xcalloc(1, sizeof *call);
	const char *auth = http_req_header(hr, "Authorization");
	char hash[2 * EVP_MAX_MD_SIZE + 1];
	const char *params[1] = { hash };

	call->srv = b->srv;
	call->hr = hr;
	call->route = b->route;
	http_req_set_data(hr, call, free);
	if (b->route->least == API_ROLE_ANON) {
		b->route->fn(call);
		return;
	}
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0 || auth[7] == '\0') {
		http_reply_error(hr, HTTP_ERR_UNAUTHORIZED, "Send Authorization: Bearer TOKEN.");
		return;
	}
	api_token_hash(auth + 7, hash);
	db_exec(b->srv->db, &api_stmt_token, 1, params, api_token_checked, call);
}

void
api_add_routes(struct server *srv, const struct api_route *routes, size_t n)
{
	struct api_binding *b;
	size_t i;

	for (i = 0; i < n; i++) {
		/* Bindings live as long as the process: the route table holds them. */
		b = xmalloc(sizeof *b);
		b->srv = srv;
		b->route = &routes[i];
		http_route(srv->http, routes[i].method, routes[i].pattern, api_entry, b);
	}
}

/* Map a SQL error to an API answer. */
static void
api_sql_error(struct http_req *hr, const char *error, const char *sqlstate)
{
	if (strcmp(sqlstate, "P0002") == 0)
		http_reply_error(hr, HTTP_ERR_NOT_FOUND, error);
	else if (strncmp(sqlstate, "23", 2) == 0 || strcmp(sqlstate, "40001") == 0)
		http_reply_error(hr, HTTP_ERR_CONFLICT, error);
	else if (strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "P0", 2) == 0)
		http_reply_error(hr, HTTP_ERR_BAD_REQUEST, error);
	else if (*sqlstate == '\0' || strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "57", 2) == 0)
		http_reply_error(hr, HTTP_ERR_UNAVAILABLE, error);
	else {
		log_error("api", "A query failed. path=%s sqlstate=%s reason=\"%s\"", http_req_path(hr), sqlstate, error);
		http_reply_error(hr, HTTP_ERR_INTERNAL, NULL);
	}
}

/* Pending state of api_json_query. */
struct api_json {
	struct http_req *hr;
	int status;
};

/* The JSON query came back: send its single value. */
static void
api_json_done(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct api_json *q = arg;
	const char *v;

	if (error != NULL)
		api_sql_error(q->hr, error, sqlstate);
	else if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0))
		http_reply_error(q->hr, HTTP_ERR_NOT_FOUND, NULL);
	else {
		v = PQgetvalue(res, 0, 0);
		http_reply(q->hr, q->status, "application/json", v, strlen(v));
	}
	free(q);
}

void
api_json_query(struct api_call *call, int status, const char *sql, int nparams, const char *const *params)
{
	struct api_json *q = xmalloc(sizeof *q);

	q->hr = call->hr;
	q->status = status;
	db_query(call->srv->db, sql, nparams, params, api_json_done, q);
}

long long
api_param_id(struct api_call *call, const char *name)
{
	const char *s = http_req_param(call->hr, name);
	char *end;
	long long id = s != NULL ? strtoll(s, &end, 10) : 0;

	if (s == NULL || *end != '\0' || id <= 0) {
		http_reply_error(call->hr, HTTP_ERR_NOT_FOUND, "No such id.");
		return 0;
	}
	return id;
}

/* GET /api/v1/conversations */
static void
api_conversations(struct api_call *call)
{
	api_json_query(call, 200, "select json_build_object('conversations', coalesce(json_agg(c), '[]')) from ("
	    "select c.id, c.status, c.assigned_operator as assignee, c.last_instance as channel, "
	    "ci.kind as channel_kind, json_build_object('id', i.id, 'name', coalesce(i.company_name, i.display_name), "
	    "'nib', i.nib) as investor, c.last_message_at, "
	    "case when c.status <> 'resolved' and c.assigned_operator is null then c.queued_since end as waiting_since "
	    "from linbat.conversation c join linbat.investor i on i.id = c.investor_id "
	    "left join linbat.channel_instance ci on ci.name = c.last_instance "
	    "order by c.last_message_at desc nulls last, c.id desc limit 100) c", 0, NULL);
}

/* GET /api/v1/conversations/{id}/messages */
static void
api_messages(struct api_call *call)
{
	const char *params[1] = { http_req_param(call->hr, "id") };

	if (api_param_id(call, "id") == 0)
		return;
	api_json_query(call, 200, "select case when exists (select 1 from linbat.conversation where id = $1::bigint) "
	    "then json_build_object('messages', coalesce(json_agg(m order by m.id), '[]')) end from ("
	    "select m.id, m.direction, m.channel_instance as channel, m.content_type, m.body, m.status, "
	    "m.error_code, m.error_text, m.fallback_of, m.created_at from linbat.message m "
	    "where m.conversation_id = $1::bigint order by m.id) m", 1, params);
}

/* POST /api/v1/conversations/{id}/messages {"body": "..."} */
static void
api_reply(struct api_call *call)
{
	json_t *req, *body;
	const char *params[3];

	if (api_param_id(call, "id") == 0 || (req = http_req_json(call->hr)) == NULL)
		return;
	body = json_object_get(req, "body");
	if (!json_is_string(body) || json_string_length(body) == 0 || json_string_length(body) > 4096) {
		json_decref(req);
		http_reply_error(call->hr, HTTP_ERR_BAD_REQUEST, "\"body\" must be text of 1 to 4096 characters.");
		return;
	}
	params[0] = http_req_param(call->hr, "id");
	params[1] = json_string_value(body);
	params[2] = call->operator_str;
	api_json_query(call, 201, "select json_build_object('id', linbat.enqueue_reply($1::bigint, $2, $3::bigint))",
	    3, params);
	json_decref(req);
}

static const struct api_route api_conversation_routes[] = {
	{ "GET", "/api/v1/conversations", API_ROLE_OPERATOR, api_conversations },
	{ "GET", "/api/v1/conversations/{id}/messages", API_ROLE_OPERATOR, api_messages },
	{ "POST", "/api/v1/conversations/{id}/messages", API_ROLE_OPERATOR, api_reply },
};

/* Anything else under /api/: a JSON 404, never the static files. */
static void
api_unknown(struct http_req *hr, void *arg)
{
	http_reply_error(hr, HTTP_ERR_NOT_FOUND, "No such API route.");
}

void
api_init(struct server *srv)
{
	api_add_routes(srv, api_conversation_routes, nitems(api_conversation_routes));
	http_route(srv->http, NULL, "/api/*", api_unknown, NULL);
}
