/*
 * api-admin.c: operators (listed for everyone, created and changed by
 * managers and admins) and investors (searched and edited by operators,
 * merged by managers). A new password is hashed with argon2id on a worker
 * thread, like a login's check. Each change is audited by its SQL function.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "api.h"
#include "server.h"
#include "util.h"

/* Fields of an operator save, as text parameters ($1 caller ... $9 address); each
 * statement names every parameter, the ones it ignores in an unused subquery. */
enum {
	API_OP_ACTOR, API_OP_ID, API_OP_EMAIL, API_OP_NAME, API_OP_ROLE, API_OP_CAPACITY, API_OP_HASH,
	API_OP_DISABLED, API_OP_ADDR, API_OP_N
};

/* An operator create or update in progress. */
struct api_opsave {
	struct api_call *call;
	char *v[API_OP_N];   /* owned copies, NULL for SQL NULL */
	char *password;      /* wiped once hashed */
	int failed;          /* hashing failed */
};

static const char api_op_create_sql[] =
    "select linbat.operator_create($1::bigint, $3, $4, $5, $6::integer, $7, $9) from (select $2::text, $8::text) unused";
static const char api_op_update_sql[] =
    "select linbat.operator_update($1::bigint, $2::bigint, $4, $5, $6::integer, $7, $8::boolean, $9) "
    "from (select $3::text) unused";

/* Free an operator save. */
static void
api_opsave_free(struct api_opsave *s)
{
	for (int i = 0; i < API_OP_N; i++)
		free(s->v[i]);
	if (s->password != NULL) {
		sodium_memzero(s->password, strlen(s->password));
		free(s->password);
	}
	free(s);
}

/* On a worker thread: hash the new password. */
static void
api_opsave_hash(void *arg)
{
	struct api_opsave *s = arg;
	char *out = xmalloc(crypto_pwhash_STRBYTES);

	if (crypto_pwhash_str(out, s->password, strlen(s->password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
		free(out);
		s->failed = 1;
		return;
	}
	s->v[API_OP_HASH] = out;
}

/* Back on the loop: store the operator. */
static void
api_opsave_store(void *arg)
{
	struct api_opsave *s = arg;

	if (s->failed)
		http_reply_error(s->call->hr, HTTP_ERR_INTERNAL, "The password could not be hashed.");
	else
		api_json_query(s->call, s->v[API_OP_ID] == NULL ? 201 : 200,
		    s->v[API_OP_ID] == NULL ? api_op_create_sql : api_op_update_sql, API_OP_N,
		    (const char *const *)s->v);
	api_opsave_free(s);
}

/* Copy field name of req into s->v[i] as text; -1 if present with the wrong type. */
static int
api_opsave_field(struct api_opsave *s, json_t *req, const char *name, int i)
{
	json_t *v = json_object_get(req, name);

	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_string(v))
		s->v[i] = xstrdup(json_string_value(v));
	else if (json_is_integer(v))
		xasprintf(&s->v[i], "%lld", (long long)json_integer_value(v));
	else if (json_is_boolean(v))
		s->v[i] = xstrdup(json_is_true(v) ? "true" : "false");
	else
		return -1;
	return 0;
}

/* POST /api/v1/operators and PATCH /api/v1/operators/{id}. */
static void
api_operator_save(struct api_call *call)
{
	static const struct { const char *name; int i; } fields[] = {
		{ "email", API_OP_EMAIL }, { "name", API_OP_NAME }, { "role", API_OP_ROLE },
		{ "capacity", API_OP_CAPACITY }, { "disabled", API_OP_DISABLED },
	};
	int update = http_req_param(call->hr, "id") != NULL, bad = 0;
	struct api_opsave *s;
	json_t *req, *pw;

	if ((update && api_param_id(call, "id") == 0) || (req = http_req_json(call->hr)) == NULL)
		return;
	s = xcalloc(1, sizeof *s);
	s->call = call;
	s->v[API_OP_ACTOR] = xstrdup(call->operator_str);
	s->v[API_OP_ID] = update ? xstrdup(http_req_param(call->hr, "id")) : NULL;
	s->v[API_OP_ADDR] = xstrdup(http_req_peer(call->hr));
	for (size_t i = 0; i < nitems(fields); i++)
		bad |= api_opsave_field(s, req, fields[i].name, fields[i].i);
	pw = json_object_get(req, "password");
	if (json_is_string(pw))
		s->password = xstrdup(json_string_value(pw));
	if (bad || (pw != NULL && (!json_is_string(pw) || json_string_length(pw) < 8 || json_string_length(pw) > 1024))) {
		http_reply_error(call->hr, HTTP_ERR_BAD_REQUEST, "Check the fields; a password has 8 to 1024 characters.");
		api_opsave_free(s);
	} else if (!update && (s->v[API_OP_EMAIL] == NULL || s->v[API_OP_NAME] == NULL)) {
		http_reply_error(call->hr, HTTP_ERR_BAD_REQUEST, "A new operator needs \"email\" and \"name\".");
		api_opsave_free(s);
	} else if (s->password != NULL)
		api_work(call->srv, api_opsave_hash, api_opsave_store, s);
	else
		api_opsave_store(s);
	json_decref(req);
}

/* GET /api/v1/operators */
static void
api_operators(struct api_call *call)
{
	api_json_query(call, 200, "select json_build_object('operators', coalesce(json_agg(linbat.operator_json(id) "
	    "order by id), '[]')) from linbat.operator", 0, NULL);
}

/* GET /api/v1/investors?q=&after=&limit= */
static void
api_investors(struct api_call *call)
{
	const char *params[3] = { http_req_query(call->hr, "q"), http_req_query(call->hr, "after"),
		http_req_query(call->hr, "limit") };

	api_json_query(call, 200, "select linbat.investor_search(nullif($1, ''), nullif($2, '')::bigint, "
	    "nullif($3, '')::integer)", 3, params);
}

/* GET /api/v1/investors/{id} */
static void
api_investor(struct api_call *call)
{
	const char *params[1] = { http_req_param(call->hr, "id") };

	if (api_param_id(call, "id") != 0)
		api_json_query(call, 200, "select linbat.investor_json($1::bigint)", 1, params);
}

/* PATCH /api/v1/investors/{id} {fields}: the body is handed to SQL as it is. */
static void
api_investor_patch(struct api_call *call)
{
	const char *params[4] = { http_req_param(call->hr, "id"), NULL, call->operator_str, http_req_peer(call->hr) };
	json_t *req;

	if (api_param_id(call, "id") == 0 || (req = http_req_json(call->hr)) == NULL)
		return;
	json_decref(req);
	params[1] = (const char *)http_req_body(call->hr, NULL);
	api_json_query(call, 200, "select linbat.investor_update($1::bigint, $2::jsonb, $3::bigint, $4)", 4, params);
}

/* POST /api/v1/investors/{id}/merge {"from": ID} */
static void
api_investor_merge(struct api_call *call)
{
	const char *params[4] = { http_req_param(call->hr, "id"), NULL, call->operator_str, http_req_peer(call->hr) };
	char from[24];
	json_t *req, *f;

	if (api_param_id(call, "id") == 0 || (req = http_req_json(call->hr)) == NULL)
		return;
	f = json_object_get(req, "from");
	if (!json_is_integer(f) || json_integer_value(f) <= 0) {
		json_decref(req);
		http_reply_error(call->hr, HTTP_ERR_BAD_REQUEST, "Send {\"from\": ID}.");
		return;
	}
	snprintf(from, sizeof from, "%lld", (long long)json_integer_value(f));
	params[1] = from;
	json_decref(req);
	api_json_query(call, 200, "select linbat.investor_merge($1::bigint, $2::bigint, $3::bigint, $4)", 4, params);
}

static const struct api_route api_admin_routes[] = {
	{ "GET", "/api/v1/operators", API_ROLE_OPERATOR, api_operators },
	{ "POST", "/api/v1/operators", API_ROLE_MANAGER, api_operator_save },
	{ "PATCH", "/api/v1/operators/{id}", API_ROLE_MANAGER, api_operator_save },
	{ "GET", "/api/v1/investors", API_ROLE_OPERATOR, api_investors },
	{ "GET", "/api/v1/investors/{id}", API_ROLE_OPERATOR, api_investor },
	{ "PATCH", "/api/v1/investors/{id}", API_ROLE_OPERATOR, api_investor_patch },
	{ "POST", "/api/v1/investors/{id}/merge", API_ROLE_MANAGER, api_investor_merge },
};

void
api_admin_init(struct server *srv)
{
	api_add_routes(srv, api_admin_routes, nitems(api_admin_routes));
}
