/*
 * api-campaign.c: the managers' routes for LKPM reminder campaigns (create,
 * list, read, activate, pause, resume, archive, preview, stats) and the
 * operators' routes for filings (mark a period filed, which also confirms
 * an investor's SUDAH claim) and NIB claims (confirm or reject). Every route
 * is one SQL function of migrations/0009_campaigns.sql that takes the path's
 * id, the request body as jsonb (the database validates it) and the caller,
 * and returns the JSON answer; so the table below is the whole module.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-campaign.h"
#include "api.h"
#include "server.h"
#include "template.h"
#include "util.h"

/* One route: its status on success and its SQL, whose $1 is the {id} (or
 * NULL), $2 the body or the query as jsonb, $3 the caller; the n-th op
 * belongs to the n-th route of api_campaign_routes. */
struct api_campaign_op {
	const char *method;
	const char *pattern;
	enum api_role least;
	int status;
	const char *sql;
};

static const struct api_campaign_op api_campaign_ops[] = {
	{ "GET", "/api/v1/campaigns", API_ROLE_OPERATOR, 200,
	  "select jsonb_build_object('campaigns', coalesce(jsonb_agg(linbat.campaign_json(c) order by c.id), '[]')) "
	  "from linbat.campaign c where $1::text is null and $2::jsonb is not null and $3::bigint is not null" },
	{ "POST", "/api/v1/campaigns", API_ROLE_MANAGER, 201,
	  "select linbat.campaign_create($2::jsonb, $3::bigint) where $1::text is null" },
	{ "GET", "/api/v1/campaigns/{id}", API_ROLE_OPERATOR, 200,
	  "select linbat.campaign_json(c) from linbat.campaign c where c.id = $1::bigint "
	  "and $2::jsonb is not null and $3::bigint is not null" },
	{ "POST", "/api/v1/campaigns/{id}/activate", API_ROLE_MANAGER, 200,
	  "select linbat.campaign_set_status($1::bigint, 'activate', $3::bigint) where $2::jsonb is not null" },
	{ "POST", "/api/v1/campaigns/{id}/pause", API_ROLE_MANAGER, 200,
	  "select linbat.campaign_set_status($1::bigint, 'pause', $3::bigint) where $2::jsonb is not null" },
	{ "POST", "/api/v1/campaigns/{id}/resume", API_ROLE_MANAGER, 200,
	  "select linbat.campaign_set_status($1::bigint, 'resume', $3::bigint) where $2::jsonb is not null" },
	{ "POST", "/api/v1/campaigns/{id}/archive", API_ROLE_MANAGER, 200,
	  "select linbat.campaign_set_status($1::bigint, 'archive', $3::bigint) where $2::jsonb is not null" },
	{ "GET", "/api/v1/campaigns/{id}/preview", API_ROLE_MANAGER, 200,
	  "select case when exists (select 1 from linbat.campaign where id = $1::bigint) then "
	  "jsonb_build_object('reminders', coalesce(jsonb_agg(to_jsonb(p)), '[]')) end "
	  "from linbat.campaign_preview($1::bigint, coalesce(($2::jsonb ->> 'from')::date, "
	  "(now() at time zone 'Asia/Makassar')::date), least(coalesce(($2::jsonb ->> 'days')::integer, 30), 400)) p "
	  "where $3::bigint is not null" },
	{ "GET", "/api/v1/campaigns/{id}/stats", API_ROLE_MANAGER, 200,
	  "select linbat.campaign_stats($1::bigint) || jsonb_build_object('funnel', linbat.campaign_funnel($1::bigint), "
	  "'timeline', linbat.campaign_timeline($1::bigint, $2::jsonb ->> 'bucket')) where $3::bigint is not null" },
	{ "POST", "/api/v1/investors/{id}/filings", API_ROLE_OPERATOR, 200,
	  "select linbat.filing_mark($1::bigint, $2::jsonb ->> 'period', $2::jsonb ->> 'status', "
	  "($2::jsonb ->> 'filed_at')::timestamptz, $3::bigint)" },
	{ "POST", "/api/v1/nib-claims/{id}/confirm", API_ROLE_OPERATOR, 200,
	  "select linbat.nib_claim_decide($1::bigint, true, $3::bigint) where $2::jsonb is not null" },
	{ "POST", "/api/v1/nib-claims/{id}/reject", API_ROLE_OPERATOR, 200,
	  "select linbat.nib_claim_decide($1::bigint, false, $3::bigint) where $2::jsonb is not null" },
};

static void api_campaign_route(struct api_call *);

/* The routes, in the order of api_campaign_ops. */
static const struct api_route api_campaign_routes[] = {
	{ "GET", "/api/v1/campaigns", API_ROLE_OPERATOR, api_campaign_route },
	{ "POST", "/api/v1/campaigns", API_ROLE_MANAGER, api_campaign_route },
	{ "GET", "/api/v1/campaigns/{id}", API_ROLE_OPERATOR, api_campaign_route },
	{ "POST", "/api/v1/campaigns/{id}/activate", API_ROLE_MANAGER, api_campaign_route },
	{ "POST", "/api/v1/campaigns/{id}/pause", API_ROLE_MANAGER, api_campaign_route },
	{ "POST", "/api/v1/campaigns/{id}/resume", API_ROLE_MANAGER, api_campaign_route },
	{ "POST", "/api/v1/campaigns/{id}/archive", API_ROLE_MANAGER, api_campaign_route },
	{ "GET", "/api/v1/campaigns/{id}/preview", API_ROLE_MANAGER, api_campaign_route },
	{ "GET", "/api/v1/campaigns/{id}/stats", API_ROLE_MANAGER, api_campaign_route },
	{ "POST", "/api/v1/investors/{id}/filings", API_ROLE_OPERATOR, api_campaign_route },
	{ "POST", "/api/v1/nib-claims/{id}/confirm", API_ROLE_OPERATOR, api_campaign_route },
	{ "POST", "/api/v1/nib-claims/{id}/reject", API_ROLE_OPERATOR, api_campaign_route },
};

_Static_assert(nitems(api_campaign_routes) == nitems(api_campaign_ops), "one op per route");

/* The query's from and days of a preview, and the bucket of the stats' timeline, as a JSON object. */
static char *
api_campaign_query_json(struct api_call *call)
{
	json_t *o = json_object();
	const char *from = http_req_query(call->hr, "from"), *days = http_req_query(call->hr, "days");
	const char *bucket = http_req_query(call->hr, "bucket");
	char *s;

	if (from != NULL)
		json_object_set_new(o, "from", json_string(from));
	if (days != NULL)
		json_object_set_new(o, "days", json_string(days));
	if (bucket != NULL)
		json_object_set_new(o, "bucket", json_string(bucket));
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

/* Whether a campaign's JSON has a placeholder that does not exist; if so, answer 400 naming it. */
static int
api_campaign_texts_bad(struct api_call *call, const char *body, size_t len)
{
	json_t *doc = json_loadb(body, len, 0, NULL);
	char *cause = NULL;
	int bad = doc != NULL && template_campaign_check(doc, &cause) != 0;

	if (bad)
		http_reply_error(call->hr, HTTP_ERR_BAD_REQUEST, cause);
	free(cause);
	json_decref(doc);
	return bad;
}

/* Every route: find its op by pattern, bind the id, the body and the caller. */
static void
api_campaign_route(struct api_call *call)
{
	const struct api_campaign_op *op = &api_campaign_ops[call->route - api_campaign_routes];
	const unsigned char *body;
	const char *params[3];
	char *query = NULL;
	size_t len;

	params[0] = NULL;
	if (strstr(op->pattern, "{id}") != NULL) {
		if (api_param_id(call, "id") == 0)
			return;
		params[0] = http_req_param(call->hr, "id");
	}
	if (strcmp(op->method, "GET") == 0)
		params[1] = query = api_campaign_query_json(call);
	else {
		body = http_req_body(call->hr, &len);
		params[1] = body != NULL && len > 0 ? (const char *)body : "{}";
		/* a new campaign's placeholders are checked before anything is saved */
		if (strcmp(op->pattern, "/api/v1/campaigns") == 0 && api_campaign_texts_bad(call, params[1], len))
			return;
	}
	params[2] = call->operator_str;
	api_json_query(call, op->status, op->sql, 3, params);
	free(query);
}

void
api_campaign_init(struct server *srv)
{
	api_add_routes(srv, api_campaign_routes, nitems(api_campaign_routes));
}
