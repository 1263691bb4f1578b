/*
 * api-inbox.c: the conversations of the inbox and what an operator does with
 * them: list (filtered, by cursor), read with the investor's profile, page
 * through messages, reply, add an internal note, resolve, take, transfer and
 * release. Each is one SQL function of migrations 0004 and 0008, which also
 * decides what the caller may see: managers and admins everything, operators
 * their own conversations and the unassigned queue.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "server.h"
#include "util.h"

/* An action on one conversation: its SQL and the JSON field it takes, if any. */
struct api_inbox_action {
	const char *pattern;
	const char *sql;    /* $1 conversation, $2 caller, $3 role, $4 the field */
	const char *field;  /* NULL: no body */
	int integer;        /* the field is an id, not text */
	int status;
};

static const struct api_inbox_action api_inbox_actions[] = {
	{ "/api/v1/conversations/{id}/messages",
	  "select linbat.inbox_reply($1::bigint, $2::bigint, $3, $4)", "body", 0, 201 },
	{ "/api/v1/conversations/{id}/notes",
	  "select linbat.inbox_note($1::bigint, $2::bigint, $3, $4)", "body", 0, 201 },
	{ "/api/v1/conversations/{id}/resolve",
	  "select linbat.inbox_resolve($1::bigint, $2::bigint, $3)", NULL, 0, 200 },
	{ "/api/v1/conversations/{id}/take",
	  "select json_build_object('id', $1::bigint, 'assignee', linbat.take_conversation($1::bigint, $2::bigint)) "
	  "where $3::text is not null", NULL, 0, 200 },
	{ "/api/v1/conversations/{id}/release",
	  "select json_build_object('id', $1::bigint, 'assigned_from_queue', "
	  "linbat.release_conversation($1::bigint, $2::bigint)) where $3::text is not null", NULL, 0, 200 },
	{ "/api/v1/conversations/{id}/transfer",
	  "select linbat.inbox_transfer($1::bigint, $2::bigint, $3, $4::bigint)", "operator", 1, 200 },
};

/* The value of a body field as text into out; -1 (and a 400 sent) if it is missing or bad. */
static int
api_inbox_field(struct api_call *call, json_t *req, const struct api_inbox_action *a, char *out, size_t len,
    const char **value)
{
	json_t *v = json_object_get(req, a->field);

	if (a->integer && json_is_integer(v) && json_integer_value(v) > 0) {
		snprintf(out, len, "%lld", (long long)json_integer_value(v));
		*value = out;
		return 0;
	}
	if (!a->integer && json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= 4096) {
		*value = json_string_value(v);
		return 0;
	}
	http_reply_error(call->hr, HTTP_ERR_BAD_REQUEST, a->integer ? "Send {\"operator\": ID}." :
	    "\"body\" must be text of 1 to 4096 characters.");
	return -1;
}

/* POST /api/v1/conversations/{id}/ACTION: the action of the route's pattern. */
static void
api_inbox_act(struct api_call *call)
{
	const struct api_inbox_action *a = NULL;
	const char *params[4] = { http_req_param(call->hr, "id"), call->operator_str, api_role_name(call->role),
		NULL };
	json_t *req = NULL;
	char num[24];
	size_t i;

	for (i = 0; i < nitems(api_inbox_actions); i++) {
		if (strcmp(api_inbox_actions[i].pattern, call->route->pattern) == 0)
			a = &api_inbox_actions[i];
	}
	if (api_param_id(call, "id") == 0)
		return;
	if (a->field != NULL) {
		if ((req = http_req_json(call->hr)) == NULL)
			return;
		if (api_inbox_field(call, req, a, num, sizeof num, &params[3]) != 0) {
			json_decref(req);
			return;
		}
	}
	api_json_query(call, a->status, a->sql, a->field != NULL ? 4 : 3, params);
	json_decref(req);
}

/* GET /api/v1/conversations?status=&assigned=me|none|any&channel=&q=&cursor=&limit= */
static void
api_conversations(struct api_call *call)
{
	const char *params[8] = {
		call->operator_str, api_role_name(call->role), http_req_query(call->hr, "status"),
		http_req_query(call->hr, "assigned"), http_req_query(call->hr, "channel"),
		http_req_query(call->hr, "q"), http_req_query(call->hr, "cursor"), http_req_query(call->hr, "limit"),
	};

	for (size_t i = 2; i < nitems(params); i++) {
		if (params[i] != NULL && params[i][0] == '\0')
			params[i] = NULL;
	}
	api_json_query(call, 200, "select linbat.conversation_list($1::bigint, $2, $3, $4, $5, $6, $7, $8::integer)",
	    8, params);
}

/* GET /api/v1/conversations/{id}: with the investor's profile and identities. */
static void
api_conversation(struct api_call *call)
{
	const char *params[3] = { http_req_param(call->hr, "id"), call->operator_str, api_role_name(call->role) };

	if (api_param_id(call, "id") != 0)
		api_json_query(call, 200, "select linbat.conversation_detail($1::bigint, $2::bigint, $3)", 3, params);
}

/* GET /api/v1/conversations/{id}/messages?after=ID&limit=N */
static void
api_messages(struct api_call *call)
{
	const char *params[5] = { http_req_param(call->hr, "id"), call->operator_str, api_role_name(call->role),
		http_req_query(call->hr, "after"), http_req_query(call->hr, "limit") };

	if (api_param_id(call, "id") != 0)
		api_json_query(call, 200, "select linbat.inbox_messages($1::bigint, $2::bigint, $3, "
		    "nullif($4, '')::bigint, nullif($5, '')::integer)", 5, params);
}

static const struct api_route api_inbox_routes[] = {
	{ "GET", "/api/v1/conversations", API_ROLE_OPERATOR, api_conversations },
	{ "GET", "/api/v1/conversations/{id}", API_ROLE_OPERATOR, api_conversation },
	{ "GET", "/api/v1/conversations/{id}/messages", API_ROLE_OPERATOR, api_messages },
	{ "POST", "/api/v1/conversations/{id}/messages", API_ROLE_OPERATOR, api_inbox_act },
	{ "POST", "/api/v1/conversations/{id}/notes", API_ROLE_OPERATOR, api_inbox_act },
	{ "POST", "/api/v1/conversations/{id}/resolve", API_ROLE_OPERATOR, api_inbox_act },
	{ "POST", "/api/v1/conversations/{id}/take", API_ROLE_OPERATOR, api_inbox_act },
	{ "POST", "/api/v1/conversations/{id}/release", API_ROLE_OPERATOR, api_inbox_act },
	{ "POST", "/api/v1/conversations/{id}/transfer", API_ROLE_OPERATOR, api_inbox_act },
};

void
api_inbox_init(struct server *srv)
{
	api_add_routes(srv, api_inbox_routes, nitems(api_inbox_routes));
}
