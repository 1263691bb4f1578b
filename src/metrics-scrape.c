/*
 * metrics-scrape.c: GET /metrics. Besides the in-process families of
 * metrics.c it reports, in the Prometheus text format:
 * - this process's pool and dispatcher counters (db_get_stats,
 *   dispatch_get_stats), which start at zero with the process;
 * - the database's figures, for totals that must agree whichever process is
 *   scraped (messages by instance and status, outbox, operators, the queue,
 *   reminders): one grouped query per scrape, sent through the pool so the
 *   loop never waits. If it does not answer within a deadline the scrape
 *   still answers, with linbat_metrics_database_ok 0 and no SQL families.
 *
 * The optional bearer token [daemon] metrics_token is compared in constant
 * time; the config loader registers it as a log secret.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dispatch.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "util.h"

#define METRICS_DEADLINE_MS 5000
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The families the scrape query returns, in the order of its rows' first column. */
static const struct metrics_family metrics_scrape_families[] = {
	{ "linbat_conversations_waiting", "gauge", { NULL },
	  "Open conversations waiting in the queue for a free operator (database, all processes)." },
	{ "linbat_messages", "gauge", { "direction", "instance", "status", NULL },
	  "Messages stored, by direction, channel instance and current status (database, all processes)." },
	{ "linbat_operators", "gauge", { "presence", NULL },
	  "Operators by presence (database)." },
	{ "linbat_outbox_depth", "gauge", { NULL },
	  "Outbound messages queued or being sent (database, all processes)." },
	{ "linbat_outbox_oldest_due_seconds", "gauge", { NULL },
	  "Age of the oldest queued outbound message whose time has come; 0 if none (database)." },
	{ "linbat_reminders", "gauge", { "state", NULL },
	  "Campaign reminders planned, and of them those whose message has left (database); absent "
	  "until the reminder table exists." },
};

/*
 * One round trip, cheap enough for every scrape: the outbox parts use its
 * partial indexes; the message count is one grouped scan. Reminders are read
 * through query_to_xml so that the statement still plans before the
 * campaign migration has made linbat.reminder; "sent" needs its message_id.
 */
static const char metrics_scrape_query[] =
    "select 'linbat_messages' as name, direction as a, coalesce(channel_instance, '') as b, status as c,"
    " count(*)::float8 as v from linbat.message where content_type <> 'note'"
    " group by direction, channel_instance, status"
    " union all select 'linbat_outbox_depth', '', '', '', count(*)::float8 from linbat.message"
    " where direction = 'out' and status in ('queued', 'sending')"
    " union all select 'linbat_outbox_oldest_due_seconds', '', '', '',"
    " coalesce(extract(epoch from now() - min(next_attempt_at)), 0)::float8 from linbat.message"
    " where direction = 'out' and status = 'queued' and next_attempt_at <= now()"
    " union all select 'linbat_operators', v.p, '', '', count(o.id)::float8"
    " from (values ('online'), ('away'), ('offline')) v (p)"
    " left join linbat.operator o on o.presence = v.p group by v.p"
    " union all select 'linbat_conversations_waiting', '', '', '', count(*)::float8"
    " from linbat.conversation where status <> 'resolved' and assigned_operator is null"
    " union all select 'linbat_reminders', q.state, '', '', r.n from (values"
    " ('planned', to_regclass('linbat.reminder') is not null,"
    "  'select count(*) as n from linbat.reminder'),"
    " ('sent', exists (select 1 from pg_attribute where attrelid = to_regclass('linbat.reminder')"
    "  and attname = 'message_id' and not attisdropped),"
    "  'select count(*) as n from linbat.reminder r join linbat.message m on m.id = r.message_id"
    "  where m.status in (''sent'', ''delivered'', ''read'')')) q (state, ok, sql),"
    " lateral (select (xpath('/row/n/text()', query_to_xml(q.sql, false, true, '')))[1]::text::float8 as n"
    "  where q.ok) r"
    " order by 1, 2, 3, 4";

/* A scrape waiting for the database; owned by the query callback, which always comes. */
struct metrics_scrape {
	struct server *srv;
	struct http_req *hr; /* NULL once answered */
	struct event *deadline;
};

/* Append one unlabelled sample with its HELP and TYPE. */
static void
metrics_scrape_add_one(struct buf *out, const char *name, const char *type, const char *help, double v)
{
	metrics_add_header(out, name, type, help);
	buf_addf(out, "%s %.15g\n", name, v);
}

/* Append this process's pool and dispatcher figures. */
static void
metrics_scrape_process(struct buf *out, struct server *srv)
{
	struct db_stats db;
	struct dispatch_stats ds;

	db_get_stats(srv->db, &db);
	metrics_scrape_add_one(out, "linbat_db_pool_size", "gauge", "Connections in this process's pool.", db.size);
	metrics_scrape_add_one(out, "linbat_db_pool_connected", "gauge", "Pool connections ready for queries.",
	    db.connected);
	metrics_scrape_add_one(out, "linbat_db_pool_in_use", "gauge", "Pool connections running a query.", db.busy);
	metrics_scrape_add_one(out, "linbat_db_queued", "gauge", "Queries waiting for a free connection.", db.queued);
	metrics_scrape_add_one(out, "linbat_db_queries_total", "counter", "Queries this process finished.",
	    (double)db.queries);
	metrics_scrape_add_one(out, "linbat_db_errors_total", "counter", "Queries of this process that ended in "
	    "an error.", (double)db.errors);
	metrics_scrape_add_one(out, "linbat_db_reconnects_total", "counter", "Pool connections made again after "
	    "a loss.", (double)db.reconnects);
	if (srv->dispatch == NULL)
		return;
	dispatch_get_stats(srv->dispatch, &ds);
	metrics_scrape_add_one(out, "linbat_dispatch_claimed_total", "counter", "Outbound messages this process "
	    "claimed.", (double)ds.claimed);
	metrics_scrape_add_one(out, "linbat_dispatch_sent_total", "counter", "Sends this process's adapters "
	    "reported accepted.", (double)ds.sent);
	metrics_scrape_add_one(out, "linbat_dispatch_failed_total", "counter", "Sends this process's adapters "
	    "reported failed.", (double)ds.failed);
	metrics_scrape_add_one(out, "linbat_dispatch_inflight", "gauge", "Outbound messages this process holds "
	    "between claim and recorded answer.", ds.inflight);
}

/* Append the families of the scrape query's rows (name, up to 3 labels, value). */
static void
metrics_scrape_sql(struct buf *out, const PGresult *res)
{
	const struct metrics_family *f;
	const char *values[3];
	int row, n, k;
	size_t i;

	for (i = 0; i < nitems(metrics_scrape_families); i++) {
		f = &metrics_scrape_families[i];
		metrics_add_header(out, f->name, f->type, f->help);
		for (n = 0; f->labels[n] != NULL; n++)
			;
		for (row = 0; row < PQntuples(res); row++) {
			if (strcmp(PQgetvalue(res, row, 0), f->name) != 0)
				continue;
			for (k = 0; k < n; k++)
				values[k] = PQgetvalue(res, row, 1 + k);
			buf_adds(out, f->name);
			metrics_add_labels(out, f->labels, values, (size_t)n, NULL);
			buf_addf(out, " %.15g\n", strtod(PQgetvalue(res, row, 4), NULL));
		}
	}
}

/* Answer a scrape; res NULL if the database did not answer. */
static void
metrics_scrape_answer(struct metrics_scrape *s, const PGresult *res)
{
	struct buf out;

	buf_init(&out);
	metrics_add_header(&out, "linbat_build_info", "gauge", "Always 1; the version of this linbatd.");
	buf_addf(&out, "linbat_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
	metrics_format_local(&out);
	metrics_scrape_process(&out, s->srv);
	if (res != NULL)
		metrics_scrape_sql(&out, res);
	metrics_scrape_add_one(&out, "linbat_metrics_database_ok", "gauge", "1 if this scrape read the "
	    "database figures, 0 if the database did not answer in time.", res != NULL);
	http_reply(s->hr, 200, METRICS_CONTENT_TYPE, out.data, out.len);
	buf_free(&out);
	s->hr = NULL;
}

/* The database did not answer in time: answer without its figures. */
static void
metrics_scrape_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct metrics_scrape *s = arg;

	if (s->hr != NULL)
		metrics_scrape_answer(s, NULL);
}

/* The scrape query came back (or failed). */
static void
metrics_scrape_done(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct metrics_scrape *s = arg;

	if (error != NULL)
		log_warn("metrics", "The metrics query failed; the scrape has no database figures. "
		    "reason=\"%s\"", error);
	if (s->hr != NULL)
		metrics_scrape_answer(s, error == NULL ? res : NULL);
	event_free(s->deadline);
	free(s);
}

/* True if the request carries the configured bearer token, or none is configured. */
static int
metrics_scrape_authorized(struct server *srv, struct http_req *hr)
{
	const char *token = conf_str(srv->conf, "daemon", "metrics_token");
	const char *auth = http_req_header(hr, "Authorization");

	if (token == NULL || *token == '\0')
		return 1;
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
		return 0;
	return util_ct_streq(auth + 7, token);
}

/* GET /metrics */
static void
metrics_scrape_get(struct http_req *hr, void *arg)
{
	struct server *srv = arg;
	struct metrics_scrape *s;
	struct timeval tv = { METRICS_DEADLINE_MS / 1000, (METRICS_DEADLINE_MS % 1000) * 1000 };

	if (!metrics_scrape_authorized(srv, hr)) {
		http_add_header(hr, "WWW-Authenticate", "Bearer realm=\"linbat metrics\"");
		http_reply_error(hr, HTTP_ERR_UNAUTHORIZED, "Send Authorization: Bearer with the metrics token.");
		return;
	}
	s = xcalloc(1, sizeof *s);
	s->srv = srv;
	s->hr = hr;
	s->deadline = evtimer_new(srv->base, metrics_scrape_timeout, s);
	evtimer_add(s->deadline, &tv);
	db_query(srv->db, metrics_scrape_query, 0, NULL, metrics_scrape_done, s);
}

/* Every finished request: time the webhooks, by status class. */
static void
metrics_scrape_http_done(const char *pattern, int status, unsigned long long us, void *arg)
{
	char code[16];

	if (pattern == NULL || strncmp(pattern, "/webhooks/", 10) != 0)
		return;
	snprintf(code, sizeof code, "%dxx", status / 100);
	metrics_observe("linbat_webhook_duration_seconds", code, (double)us / 1e6);
}

void
metrics_init(struct server *srv)
{
	http_route(srv->http, "GET", "/metrics", metrics_scrape_get, srv);
	http_set_done_cb(srv->http, metrics_scrape_http_done, srv);
}
