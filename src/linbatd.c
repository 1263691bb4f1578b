/*
 * linbatd.c: the daemon's main(). It reads the config, checks or applies the
 * migrations, and runs one libevent loop that serves HTTP and talks to
 * PostgreSQL. Signals are loop events: SIGTERM/SIGINT stop accepting and
 * finish what is in flight, SIGHUP reloads the reloadable keys.
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "conf.h"
#include "dispatch.h"
#include "log.h"
#include "metrics.h"
#include "migrate.h"
#include "scheduler.h"
#include "sdnotify.h"
#include "server.h"
#include "util.h"
#include "version.h"
#include "api.h"

#define LINBATD_DRAIN_POLL_MS 20

static struct server srv;
static struct scheduler *linbatd_scheduler;
static struct event *linbatd_drain_timer;
static uint64_t linbatd_stop_deadline;

static const char linbatd_usage[] =
    "usage: linbatd [-t] [--migrate] [-c FILE]\n"
    "\n"
    "  -c, --config FILE  configuration file (default " LINBAT_SYSCONFDIR "/linbat.conf)\n"
    "  -t, --test         check the configuration and exit\n"
    "      --migrate      apply pending database migrations, then run\n"
    "  -V, --version      print the versions of linbatd and its libraries\n"
    "  -h, --help         print this help\n";

/* Apply the keys that may change while running (at start and on SIGHUP). */
static void
linbatd_apply_reloadable(struct conf *conf)
{
	log_set_level(log_level_parse(conf_str(conf, "daemon", "log_level")));
	log_set_format(strcmp(conf_str(conf, "daemon", "log_format"), "json") == 0 ? LOG_FORMAT_JSON :
	    LOG_FORMAT_TEXT);
	if (srv.http != NULL)
		http_set_max_body(srv.http, (size_t)conf_int(conf, "daemon", "max_body"));
}

/* Connect, blocking, before the loop runs; NULL with *cause. */
static PGconn *
linbatd_connect(char **cause)
{
	PGconn *conn = PQconnectdb(conf_str(srv.conf, "database", "url"));

	if (PQstatus(conn) != CONNECTION_OK) {
		xasprintf(cause, "Cannot connect to PostgreSQL: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/* Register the configured instances before any webhook can name them. */
static void
linbatd_register_sync(PGconn *conn)
{
	const struct channel_type *type;
	const char *params[2];
	PGresult *res;
	size_t i;

	for (i = 0; i < conf_channel_count(srv.conf); i++) {
		type = channel_type_find(conf_channel_type(conf_channel(srv.conf, i)));
		params[0] = conf_channel_name(conf_channel(srv.conf, i));
		params[1] = type->kind;
		res = PQexecParams(conn, "select linbat.channel_register($1, $2)", 2, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			log_warn("linbatd", "Could not register a channel instance. instance=%s reason=\"%s\"",
			    params[0], PQresultErrorMessage(res));
		PQclear(res);
	}
}

/* Apply migrations (--migrate) or refuse a database this program cannot run on. */
static int
linbatd_check_schema(int apply, char **cause)
{
	PGconn *conn = linbatd_connect(cause);
	size_t pending = 0;
	PGresult *res;
	int rc;

	if (conn == NULL)
		return apply ? -1 : 0; /* without --migrate, start anyway and reconnect */
	if (apply)
		rc = migrate_apply(conn, &srv.migrations, 0, NULL, NULL, cause);

	else {
		res = PQexec(conn, MIGRATE_APPLIED_SQL);
		rc = 0;
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			rc = migrate_check_rows(&srv.migrations, res, &pending, cause);
		else
			pending = srv.migrations.n;
		if (rc == 0 && pending > 0)
			log_warn("linbatd", "Migrations are pending; /healthz answers 503 until they are applied. "
			    "pending=%zu", pending);
		PQclear(res);
	}
	if (rc == 0 && pending == 0)
		linbatd_register_sync(conn);
	PQfinish(conn);
	return rc;
}

/* Every few ms while stopping: exit the loop once nothing is in flight, or at the deadline. */
static void
linbatd_drain(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv = { 0, LINBATD_DRAIN_POLL_MS * 1000 };

	int busy = http_inflight(srv.http) + dispatch_inflight(srv.dispatch);

	if (busy == 0 || util_mono_ms() >= linbatd_stop_deadline) {
		if (busy > 0)
			log_warn("linbatd", "Stopping with work still in flight. requests=%d sends=%d",
			    http_inflight(srv.http), dispatch_inflight(srv.dispatch));
		event_base_loopexit(srv.base, NULL);
		return;
	}
	evtimer_add(linbatd_drain_timer, &tv);
}

/* SIGTERM or SIGINT: stop accepting, let in-flight work finish. */
static void
linbatd_sigterm(evutil_socket_t sig, short what, void *arg)
{
	if (srv.stopping)
		return;
	srv.stopping = 1;
	log_info("linbatd", "Stopping. signal=%d", (int)sig);
	sdnotify_send("STOPPING=1");
	http_stop_accepting(srv.http);
	api_stop(&srv);
	dispatch_stop(srv.dispatch);
	scheduler_stop(linbatd_scheduler);
	for (size_t i = 0; i < srv.nchannels; i++)
		channel_stop(srv.channels[i], 1);
	linbatd_stop_deadline = util_mono_ms() + (uint64_t)conf_int(srv.conf, "daemon", "shutdown_timeout");
	linbatd_drain_timer = evtimer_new(srv.base, linbatd_drain, NULL);
	linbatd_drain(-1, 0, NULL);
}

/* SIGHUP: read the file again and apply what may change without a restart. */
static void
linbatd_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct conf *next;
	char *cause = NULL;

	sdnotify_send("RELOADING=1");
	next = conf_load(srv.conf_path, channel_schema, &cause);
	if (next != NULL && conf_check_reload(srv.conf, next, &cause) != 0) {
		conf_free(next);
		next = NULL;
	}
	if (next == NULL) {
		log_error("linbatd", "Reload refused; the old configuration stays. reason=\"%s\"", cause);
		free(cause);
		sdnotify_send("READY=1");
		return;
	}
	conf_free(srv.conf);
	srv.conf = next;
	linbatd_apply_reloadable(srv.conf);
	log_info("linbatd", "Configuration reloaded. file=%s", srv.conf_path);
	sdnotify_send("READY=1");
}

struct channel *
server_channel(struct server *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->nchannels; i++) {
		if (strcmp(s->channels[i]->name, name) == 0)
			return s->channels[i];
	}
	return NULL;
}

/* /webhooks/NAME and below: hand the request to the instance's adapter. */
static void
linbatd_webhook(struct http_req *hr, void *arg)
{
	struct channel *ch = server_channel(&srv, http_req_param(hr, "name"));

	if (ch == NULL || ch->type->inbound == NULL || !ch->enabled)
		http_reply_error(hr, HTTP_ERR_NOT_FOUND, "No channel instance of that name takes webhooks.");
	else if (srv.stopping)
		http_reply_error(hr, HTTP_ERR_UNAVAILABLE, "The daemon is stopping.");
	else
		ch->type->inbound(ch, hr);
}

/* The database knows the instance after this (fallback looks for one of a kind). */
static void
linbatd_registered(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct channel *ch = arg;

	if (error != NULL)
		log_warn("linbatd", "Could not register a channel instance; it is retried at the next start. "
		    "instance=%s reason=\"%s\"", ch->name, error);
}

/* Make and start one instance per [channel NAME] section. */
static int
linbatd_channels(char **cause)
{
	const struct conf_section *sec;
	const char *params[2];
	struct channel *ch;
	size_t i;

	srv.env.base = srv.base;
	srv.env.db = srv.db;
	srv.env.curl = srv.curl;
	srv.env.public_url = conf_str(srv.conf, "daemon", "public_url");
	srv.channels = xcalloc(conf_channel_count(srv.conf) + 1, sizeof *srv.channels);
	for (i = 0; i < conf_channel_count(srv.conf); i++) {
		sec = conf_channel(srv.conf, i);
		if ((ch = channel_create(sec, &srv.env, cause)) == NULL)
			return -1;
		srv.channels[srv.nchannels++] = ch;
		if (channel_start(ch, cause) != 0)
			return -1;
		params[0] = ch->name;
		params[1] = ch->type->kind;
		db_query(srv.db, "select linbat.channel_register($1, $2)", 2, params, linbatd_registered, ch);
	}
	return 0;
}

/* Escape a value for libpq's options: spaces and backslashes take a backslash. */
static void
linbatd_options_add(struct buf *b, const char *name, const char *value)
{
	buf_addf(b, "%s-c %s=", b->len > 0 ? " " : "", name);
	for (; *value != '\0'; value++) {
		if (*value == ' ' || *value == '\\')
			buf_add(b, "\\", 1);
		buf_add(b, value, 1);
	}
}

/*
 * The routing functions read their settings (linbat.sla, the acknowledgement
 * texts) with current_setting(): give them to every connection at its start
 * through PGOPTIONS, which libpq uses unless the URL sets options itself.
 */
static void
linbatd_session_settings(void)
{
	struct buf b;
	char sla[64];

	buf_init(&b);
	snprintf(sla, sizeof sla, "%lld milliseconds", conf_int(srv.conf, "routing", "sla"));
	linbatd_options_add(&b, "linbat.sla", sla);
	linbatd_options_add(&b, "linbat.ack_text_id", conf_str(srv.conf, "routing", "ack_text_id"));
	linbatd_options_add(&b, "linbat.ack_text_en", conf_str(srv.conf, "routing", "ack_text_en"));
	setenv("PGOPTIONS", b.data, 1);
	buf_free(&b);
}

/* Make the loop, the pool and the HTTP server; -1 with *cause. */
static int
linbatd_start(char **cause)
{
	char host[64];

	srv.base = event_base_new();
	if (srv.base == NULL) {
		*cause = xstrdup("Could not create the event loop.");
		return -1;
	}
	gethostname(host, sizeof host);
	host[sizeof host - 1] = '\0';
	snprintf(srv.owner, sizeof srv.owner, "%s:%ld", host, (long)getpid());
	linbatd_session_settings();
	srv.db = db_create(srv.base, conf_str(srv.conf, "database", "url"),
	    (int)conf_int(srv.conf, "database", "pool_size"), cause);
	if (srv.db == NULL)
		return -1;
	db_set_query_timeout(srv.db, (int)conf_int(srv.conf, "database", "query_timeout"));
	if ((srv.http = http_create(srv.base, cause)) == NULL)
		return -1;
	if ((srv.curl = curlev_create(srv.base, cause)) == NULL)
		return -1;
	/* Every send in flight keeps its connection, plus room for media fetches and polls. */
	curlev_set_max_connections(srv.curl, conf_int(srv.conf, "dispatch", "in_flight") + 16);
	linbatd_apply_reloadable(srv.conf);
	health_init(&srv);
	api_init(&srv);
	metrics_init(&srv);
	http_route(srv.http, NULL, "/webhooks/{name}", linbatd_webhook, NULL);
	http_route(srv.http, NULL, "/webhooks/{name}/*", linbatd_webhook, NULL);
	http_set_static_dir(srv.http, conf_str(srv.conf, "daemon", "web_dir"));
	if (linbatd_channels(cause) != 0)
		return -1;
	if ((srv.dispatch = dispatch_create(&srv, cause)) == NULL)
		return -1;
	dispatch_start(srv.dispatch);
	if ((linbatd_scheduler = scheduler_create(&srv, cause)) == NULL)
		return -1;
	scheduler_start(linbatd_scheduler);
	if (http_listen(srv.http, conf_str(srv.conf, "daemon", "listen"), cause) != 0)
		return -1;
	return 0;
}

/* Run the loop until a stop signal; returns the exit status. */
static int
linbatd_run(void)
{
	struct event *sigs[3];

	signal(SIGPIPE, SIG_IGN);
	sigs[0] = evsignal_new(srv.base, SIGTERM, linbatd_sigterm, NULL);
	sigs[1] = evsignal_new(srv.base, SIGINT, linbatd_sigterm, NULL);
	sigs[2] = evsignal_new(srv.base, SIGHUP, linbatd_sighup, NULL);
	for (size_t i = 0; i < nitems(sigs); i++)
		evsignal_add(sigs[i], NULL);
	log_info("linbatd", "Started. version=%s pid=%ld", PACKAGE_VERSION, (long)getpid());
	sdnotify_send("READY=1");
	sdnotify_watchdog_start(srv.base);
	event_base_dispatch(srv.base);
	sdnotify_watchdog_stop();
	for (size_t i = 0; i < nitems(sigs); i++)
		event_free(sigs[i]);
	if (linbatd_drain_timer != NULL)
		event_free(linbatd_drain_timer);
	/*
	 * What the deadline left in flight ends here, while everything its
	 * callbacks touch still exists: the queries first (a webhook still
	 * waiting for its ingest fails, and its connection closes unanswered),
	 * then the transfers (an aborted send's record fails on the closed pool,
	 * so the message stays leased), and what those submitted meanwhile.
	 */
	db_close(srv.db);
	curlev_destroy(srv.curl);
	db_close(srv.db);
	http_destroy(srv.http);
	api_free(&srv);
	dispatch_destroy(srv.dispatch);
	scheduler_destroy(linbatd_scheduler);
	for (size_t i = 0; i < srv.nchannels; i++)
		channel_destroy(srv.channels[i]);
	free(srv.channels);
	db_destroy(srv.db);
	metrics_reset();
	log_info("linbatd", "Stopped.");
	event_base_free(srv.base);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "migrate", no_argument, NULL, 'm' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, test = 0, migrate = 0, rc;
	char *cause = NULL;

	srv.conf_path = xstrdup(LINBAT_SYSCONFDIR "/linbat.conf");
	while ((ch = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			free(srv.conf_path);
			srv.conf_path = xstrdup(optarg);
			break;
		case 't': test = 1; break;
		case 'm': migrate = 1; break;
		case 'V': version_print(stdout, "linbatd"); return 0;
		case 'h': fputs(linbatd_usage, stdout); return 0;
		default: fputs(linbatd_usage, stderr); return 2;
		}
	}
	if (optind != argc) {
		fputs(linbatd_usage, stderr);
		return 2;
	}
	if ((srv.conf = conf_load(srv.conf_path, channel_schema, &cause)) == NULL) {
		fprintf(stderr, "linbatd: %s\n", cause);
		return 1;
	}
	if (test) {
		printf("linbatd: the configuration %s is valid.\n", srv.conf_path);
		return 0;
	}
	linbatd_apply_reloadable(srv.conf);
	rc = migrate_scan(conf_str(srv.conf, "daemon", "migrations_dir"), &srv.migrations, &cause);
	if (rc == 0)
		rc = linbatd_check_schema(migrate, &cause);
	if (rc == 0)
		rc = linbatd_start(&cause);
	if (rc != 0) {
		log_error("linbatd", "Cannot start. reason=\"%s\"", cause);
		return 1;
	}
	rc = linbatd_run();
	migrate_free(&srv.migrations);
	conf_free(srv.conf);
	free(srv.conf_path);
	return rc;
}
