/*
 * api-desk.c: what the web inbox and the manager pages need beside the
 * inbox core: read markers, attachment bytes, quick replies ("balasan
 * cepat"), the operators' load and the reports, each report as JSON or as
 * CSV. Like api-campaign.c, a route is a row of a table: one SQL expression
 * of migrations/0013_webapi.sql over the path's id, the body (or the listed
 * query parameters) as jsonb, and the caller; the database validates.
 *
 * A report's JSON carries "columns" and "rows" (objects with exactly those
 * keys); its CSV is the same rows, so the two never disagree. CSV cells that
 * a spreadsheet would run as a formula (= + - @, tab, CR first) get a leading
 * apostrophe: report rows hold text that investors wrote.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "api.h"
#include "db.h"
#include "server.h"
#include "util.h"

/* Every op's SQL sees the call as p.id (the path's id or null), p.a (body or
 * query as jsonb), p.caller, p.role and p.addr. */
#define DESK_SQL(expr) "select (" expr ")::text from (select $1::bigint as id, $2::jsonb as a, " \
	"$3::bigint as caller, $4::text as role, $5::text as addr) p"

/* One route: its SQL, status, the query parameters it reads, and for a report
 * the name of its CSV file (a route whose pattern ends in .csv answers CSV). */
struct api_desk_op {
	int status;
	const char *sql;
	const char *query[4];
	const char *csv;
};

static const struct api_desk_op api_desk_ops[] = {
	/* read markers */
	{ 200, DESK_SQL("linbat.conversation_mark_read(p.id, p.caller, p.role, (p.a ->> 'message')::bigint)"),
	  { NULL }, NULL },
	/* quick replies */
	{ 200, DESK_SQL("linbat.quick_reply_list(nullif(p.a ->> 'q', ''), nullif(p.a ->> 'language', ''))"),
	  { "q", "language" }, NULL },
	{ 201, DESK_SQL("linbat.quick_reply_create(p.a, p.caller, p.addr)"), { NULL }, NULL },
	{ 200, DESK_SQL("linbat.quick_reply_update(p.id, p.a, p.caller, p.addr)"), { NULL }, NULL },
	{ 200, DESK_SQL("linbat.quick_reply_delete(p.id, p.caller, p.addr)"), { NULL }, NULL },
	/* operators */
	{ 200, DESK_SQL("linbat.operator_load()"), { NULL }, NULL },
	/* reports, each twice: JSON (or ?format=csv) and .csv */
	{ 200, DESK_SQL("linbat.report_response_times(p.a)"), { "from", "to" }, "response-times" },
	{ 200, DESK_SQL("linbat.report_response_times(p.a)"), { "from", "to" }, "response-times" },
	{ 200, DESK_SQL("linbat.report_satisfaction(p.a)"), { "from", "to" }, "satisfaction" },
	{ 200, DESK_SQL("linbat.report_satisfaction(p.a)"), { "from", "to" }, "satisfaction" },
	{ 200, DESK_SQL("linbat.report_unfiled(p.a)"), { "period", "after", "limit" }, "unfiled" },
	{ 200, DESK_SQL("linbat.report_unfiled(p.a)"), { "period", "after", "limit" }, "unfiled" },
	{ 200, DESK_SQL("linbat.report_campaign_funnel(p.a)"), { "campaign" }, "campaign-funnel" },
	{ 200, DESK_SQL("linbat.report_campaign_funnel(p.a)"), { "campaign" }, "campaign-funnel" },
};

static void api_desk_route(struct api_call *);
static void api_desk_media(struct api_call *);

/* The routes, in the order of api_desk_ops; the media route comes last and has no op. */
static const struct api_route api_desk_routes[] = {
	{ "POST", "/api/v1/conversations/{id}/read", API_ROLE_OPERATOR, api_desk_route },
	{ "GET", "/api/v1/quick-replies", API_ROLE_OPERATOR, api_desk_route },
	{ "POST", "/api/v1/quick-replies", API_ROLE_MANAGER, api_desk_route },
	{ "PATCH", "/api/v1/quick-replies/{id}", API_ROLE_MANAGER, api_desk_route },
	{ "DELETE", "/api/v1/quick-replies/{id}", API_ROLE_MANAGER, api_desk_route },
	{ "GET", "/api/v1/operators/load", API_ROLE_MANAGER, api_desk_route },
	{ "GET", "/api/v1/reports/response-times", API_ROLE_MANAGER, api_desk_route },
	{ "GET", "/api/v1/reports/response-times.csv", API_ROLE_MANAGER, api_desk_route },
	{ "GET", "/api/v1/reports/satisfaction", API_ROLE_MANAGER, api_desk_route },
	{ "GET", "/api/v1/reports/satisfaction.csv", API_ROLE_MANAGER, api_desk_route },
	{ "GET", "/api/v1/reports/unfiled", API_ROLE_MANAGER, api_desk_route },
	{ "GET", "/api/v1/reports/unfiled.csv", API_ROLE_MANAGER, api_desk_route },
	{ "GET", "/api/v1/reports/campaign-funnel", API_ROLE_MANAGER, api_desk_route },
	{ "GET", "/api/v1/reports/campaign-funnel.csv", API_ROLE_MANAGER, api_desk_route },
	{ "GET", "/api/v1/media/{id}", API_ROLE_OPERATOR, api_desk_media },
};

_Static_assert(nitems(api_desk_routes) == nitems(api_desk_ops) + 1, "one op per route but media");

/* Append one CSV cell for a JSON value (RFC 4180 quoting, formula guard). */
static void
api_desk_csv_cell(struct buf *b, json_t *v)
{
	const char *s;
	char num[64];

	if (v == NULL || json_is_null(v))
		return;
	if (json_is_integer(v)) {
		buf_addf(b, "%lld", (long long)json_integer_value(v));
		return;
	}
	if (json_is_real(v)) {
		snprintf(num, sizeof num, "%.15g", json_real_value(v));
		buf_adds(b, num);
		return;
	}
	if (json_is_boolean(v)) {
		buf_adds(b, json_is_true(v) ? "true" : "false");
		return;
	}
	if (!json_is_string(v)) {
		char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

		v = json_string(d != NULL ? d : "");
		free(d);
		api_desk_csv_cell(b, v);
		json_decref(v);
		return;
	}
	s = json_string_value(v);
	buf_adds(b, "\"");
	if (strchr("=+-@\t\r", *s) != NULL && *s != '\0')
		buf_adds(b, "'");
	for (; *s != '\0'; s++) {
		if (*s == '"')
			buf_adds(b, "\"\"");
		else
			buf_add(b, s, 1);
	}
	buf_adds(b, "\"");
}

/* The report's rows as CSV with a header row; NULL if the JSON is not a report. */
static char *
api_desk_csv(const char *text)
{
	json_t *doc = json_loads(text, 0, NULL), *cols, *rows, *row, *col;
	struct buf b;
	size_t i, j;

	cols = json_object_get(doc, "columns");
	rows = json_object_get(doc, "rows");
	if (!json_is_array(cols) || !json_is_array(rows)) {
		json_decref(doc);
		return NULL;
	}
	buf_init(&b);
	/* a BOM: spreadsheet programs then read the UTF-8 of Indonesian names right */
	buf_adds(&b, "\xef\xbb\xbf");
	json_array_foreach(cols, j, col) {
		if (j > 0)
			buf_adds(&b, ",");
		api_desk_csv_cell(&b, col);
	}
	buf_adds(&b, "\r\n");
	json_array_foreach(rows, i, row) {
		json_array_foreach(cols, j, col) {
			if (j > 0)
				buf_adds(&b, ",");
			api_desk_csv_cell(&b, json_object_get(row, json_string_value(col)));
		}
		buf_adds(&b, "\r\n");
	}
	json_decref(doc);
	return buf_take(&b);
}

/* Pending state of a CSV report. */
struct api_desk_csv {
	struct http_req *hr;
	const char *name;
};

/* A report came back: send it as CSV. */
static void
api_desk_csv_done(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct api_desk_csv *q = arg;
	char disposition[128], *csv;

	if (error != NULL)
		api_sql_error(q->hr, error, sqlstate);
	else if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0))
		http_reply_error(q->hr, HTTP_ERR_NOT_FOUND, NULL);
	else if ((csv = api_desk_csv(PQgetvalue(res, 0, 0))) == NULL)
		http_reply_error(q->hr, HTTP_ERR_INTERNAL, "The report has no rows to export.");
	else {
		snprintf(disposition, sizeof disposition, "attachment; filename=\"%s.csv\"", q->name);
		http_add_header(q->hr, "Content-Disposition", disposition);
		http_add_header(q->hr, "X-Content-Type-Options", "nosniff");
		http_reply(q->hr, 200, "text/csv; charset=utf-8", csv, strlen(csv));
		free(csv);
	}
	free(q);
}

/* The listed query parameters as a JSON object; a CSV wants every row. */
static char *
api_desk_query_json(struct api_call *call, const struct api_desk_op *op, int csv)
{
	json_t *o = json_object();
	const char *v;
	char *s;

	for (size_t i = 0; i < nitems(op->query) && op->query[i] != NULL; i++) {
		if ((v = http_req_query(call->hr, op->query[i])) != NULL)
			json_object_set_new(o, op->query[i], json_string(v));
	}
	if (csv)
		json_object_set_new(o, "limit", json_string("all"));
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

/* Every route of the table: bind the id, the body or query and the caller. */
static void
api_desk_route(struct api_call *call)
{
	const struct api_desk_op *op = &api_desk_ops[call->route - api_desk_routes];
	const char *params[5], *format = http_req_query(call->hr, "format");
	struct api_desk_csv *q;
	const unsigned char *body;
	char *query = NULL;
	int csv = 0;
	json_t *req;
	size_t len;

	params[0] = NULL;
	if (strstr(call->route->pattern, "{id}") != NULL) {
		if (api_param_id(call, "id") == 0)
			return;
		params[0] = http_req_param(call->hr, "id");
	}
	if (op->csv != NULL) {
		csv = strstr(call->route->pattern, ".csv") != NULL;
		if (format != NULL && strcmp(format, "csv") == 0)
			csv = 1;
		else if (format != NULL && strcmp(format, "json") != 0) {
			http_reply_error(call->hr, HTTP_ERR_BAD_REQUEST, "format is json or csv.");
			return;
		}
	}
	if (strcmp(call->route->method, "GET") == 0)
		params[1] = query = api_desk_query_json(call, op, csv);
	else {
		body = http_req_body(call->hr, &len);
		if (body != NULL && len > 0) {
			if ((req = http_req_json(call->hr)) == NULL)
				return;
			json_decref(req);
			params[1] = (const char *)body;
		} else
			params[1] = "{}";
	}
	params[2] = call->operator_str;
	params[3] = api_role_name(call->role);
	params[4] = http_req_peer(call->hr);
	if (csv) {
		q = xmalloc(sizeof *q);
		q->hr = call->hr;
		q->name = op->csv;
		db_query(call->srv->db, op->sql, 5, params, api_desk_csv_done, q);
	} else
		api_json_query(call, op->status, op->sql, 5, params);
	free(query);
}

/* Whether a stored MIME type may be shown in the page (inline) rather than
 * downloaded: raster images, audio and video; never HTML, SVG or scripts. */
static int
api_desk_inline(const char *type)
{
	static const char *const ok[] = { "image/png", "image/jpeg", "image/gif", "image/webp" };

	for (size_t i = 0; i < nitems(ok); i++) {
		if (strcmp(type, ok[i]) == 0)
			return 1;
	}
	return strncmp(type, "audio/", 6) == 0 || strncmp(type, "video/", 6) == 0;
}

/* A Content-Disposition with the file name, percent-encoded (RFC 6266, 5987),
 * and a plain ASCII fallback with anything unsafe replaced. */
static void
api_desk_disposition(struct buf *b, int inline_, const char *name, long long id)
{
	const unsigned char *s;
	char fallback[24];

	if (name == NULL || *name == '\0') {
		snprintf(fallback, sizeof fallback, "lampiran-%lld", id);
		name = fallback;
	}
	buf_adds(b, inline_ ? "inline; filename=\"" : "attachment; filename=\"");
	for (s = (const unsigned char *)name; *s != '\0' && s - (const unsigned char *)name < 200; s++)
		buf_add(b, *s >= 0x20 && *s < 0x7f && *s != '"' && *s != '\\' && *s != ';' ? (const char *)s : "_", 1);
	buf_adds(b, "\"; filename*=UTF-8''");
	for (s = (const unsigned char *)name; *s != '\0' && s - (const unsigned char *)name < 200; s++) {
		if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		    strchr("!#$&+-.^_`|~", *s) != NULL)
			buf_add(b, s, 1);
		else
			buf_addf(b, "%%%02X", *s);
	}
}

/* The attachment's row came back: send its bytes. */
static void
api_desk_media_done(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct http_req *hr = arg;
	const char *type;
	unsigned char *data;
	size_t len;
	struct buf d;

	if (error != NULL) {
		api_sql_error(hr, error, sqlstate);
		return;
	}
	if (PQntuples(res) == 0) {
		http_reply_error(hr, HTTP_ERR_NOT_FOUND, NULL);
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 2), "stored") != 0 || PQgetisnull(res, 0, 3)) {
		http_reply_error(hr, HTTP_ERR_CONFLICT, strcmp(PQgetvalue(res, 0, 2), "failed") == 0 ?
		    "Lampiran gagal diambil dari penyedia / The attachment could not be fetched from the provider." :
		    "Lampiran belum diambil dari penyedia / The attachment is not fetched from the provider yet.");
		return;
	}
	if ((data = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 3), &len)) == NULL) {
		http_reply_error(hr, HTTP_ERR_INTERNAL, NULL);
		return;
	}
	type = PQgetvalue(res, 0, 0);
	buf_init(&d);
	api_desk_disposition(&d, api_desk_inline(type), PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1),
	    strtoll(http_req_param(hr, "id"), NULL, 10));
	http_add_header(hr, "Content-Disposition", d.data);
	http_add_header(hr, "X-Content-Type-Options", "nosniff");
	http_add_header(hr, "Content-Security-Policy", "default-src 'none'; sandbox");
	http_add_header(hr, "Cache-Control", "private, max-age=3600");
	http_reply(hr, 200, type, data, len);
	buf_free(&d);
	PQfreemem(data);
}

/* GET /api/v1/media/{id}: an attachment's bytes, if the caller may read its conversation. */
static void
api_desk_media(struct api_call *call)
{
	const char *params[3] = { http_req_param(call->hr, "id"), call->operator_str, api_role_name(call->role) };

	if (api_param_id(call, "id") != 0)
		db_query(call->srv->db, "select mime_type, filename, status, data "
		    "from linbat.media_get($1::bigint, $2::bigint, $3)", 3, params, api_desk_media_done, call->hr);
}

void
api_desk_init(struct server *srv)
{
	api_add_routes(srv, api_desk_routes, nitems(api_desk_routes));
}
