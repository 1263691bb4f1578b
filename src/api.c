/*
 * api.c: authentication and the shared machinery of /api/v1. A caller shows
 * a bearer API token or the session cookie of the web inbox; either is looked
 * up by its SHA-256 (stored hashed, so a copy of the database gives no usable
 * credential). A cookie is sent by the browser on its own, so a request that
 * changes state with one must also carry the session's CSRF token in the
 * X-CSRF-Token header. This file also owns the API's state (struct api): the
 * route bindings and the password worker threads, freed by api_free.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <unistd.h>
#include <fcntl.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "api-campaign.h"
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
	"and o.disabled_at is null "
	"returning o.id, o.role",
};

static const struct db_stmt api_stmt_session = {
	"api_session",
	"select operator_id, role, csrf_token from linbat.session_check($1)",
};

/* Worker threads that hash and check passwords (argon2id takes tens of ms). */
#define API_WORKERS 2

/* A route and the server it belongs to, as the http layer's argument. */
struct api_binding {
	struct server *srv;
	const struct api_route *route;
};

/* One piece of password work, queued to the workers, then posted back. */
struct api_job {
	void (*fn)(void *);
	void (*done)(void *);
	void *arg;
	struct api_job *next;
};

/* The API's state in one process. */
struct api {
	struct api_binding **bindings; /* owned: http_route keeps pointers to them */
	size_t nbindings;
	pthread_t threads[API_WORKERS];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct api_job *head, *tail; /* waiting for a worker */
	int stop;
	int pipe[2];                 /* workers write finished jobs, the loop reads them */
	struct event *ev;
	int busy;                    /* jobs not yet done on the loop */
	struct api_events *events;
};

void
api_token_hash(const char *token, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	EVP_Digest(token, strlen(token), md, &n, EVP_sha256(), NULL);
	util_hex(md, n, out);
}

const char *
api_role_name(enum api_role r)
{
	return api_role_names[r];
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

/* Whether the request's method may change state (everything but GET, HEAD and OPTIONS). */
static int
api_changes_state(struct http_req *hr)
{
	const char *m = http_req_method(hr);

	return strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0 && strcmp(m, "OPTIONS") != 0;
}

/* The credential lookup came back: check CSRF and role, then run the handler. */
static void
api_auth_checked(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct api_call *call = arg;
	const char *csrf;

	if (error != NULL) {
		http_reply_error(call->hr, HTTP_ERR_UNAVAILABLE, error);
		return;
	}
	if (PQntuples(res) == 0) {
		http_reply_error(call->hr, HTTP_ERR_UNAUTHORIZED, call->by_cookie ?
		    "The session is unknown or expired." : "The token is unknown or expired.");
		return;
	}
	call->operator_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	snprintf(call->operator_str, sizeof call->operator_str, "%lld", call->operator_id);
	call->role = api_role_parse(PQgetvalue(res, 0, 1));
	if (call->by_cookie && api_changes_state(call->hr)) {
		csrf = http_req_header(call->hr, "X-CSRF-Token");
		if (csrf == NULL || !util_ct_streq(csrf, PQgetvalue(res, 0, 2))) {
			http_reply_error(call->hr, HTTP_ERR_CSRF, "Send the session's X-CSRF-Token header.");
			return;
		}
	}
	if (call->role < call->route->least)
		http_reply_error(call->hr, HTTP_ERR_FORBIDDEN, "Your role may not do this.");
	else
		call->route->fn(call);
}

/* The value of the session cookie in a Cookie header, copied into out; 0 if found. */
static int
api_cookie(const char *header, char *out, size_t outlen)
{
	const char *p = header, *end;
	size_t n = strlen(API_SESSION_COOKIE);

	while (p != NULL && *p != '\0') {
		while (*p == ' ' || *p == ';')
			p++;
		end = strchr(p, ';');
		if (strncmp(p, API_SESSION_COOKIE, n) == 0 && p[n] == '=') {
			p += n + 1;
			n = end != NULL ? (size_t)(end - p) : strlen(p);
			if (n == 0 || n >= outlen)
				return -1;
			memcpy(out, p, n);
			out[n] = '\0';
			return 0;
		}
		p = end;
	}
	return -1;
}

/* Every API request starts here: find who calls, then run the route. */
static void
api_entry(struct http_req *hr, void *arg)
{
	const struct api_binding *b = arg;
	struct api_call *call = xcalloc(1, sizeof *call);
	const char *auth = http_req_header(hr, "Authorization");
	const char *cookie = http_req_header(hr, "Cookie");
	char hash[2 * EVP_MAX_MD_SIZE + 1], value[256];
	const char *params[1] = { hash };

	call->srv = b->srv;
	call->hr = hr;
	call->route = b->route;
	http_req_set_data(hr, call, free);
	if (b->route->least == API_ROLE_ANON) {
		b->route->fn(call);
		return;
	}
	if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0 && auth[7] != '\0') {
		api_token_hash(auth + 7, hash);
		db_exec(b->srv->db, &api_stmt_token, 1, params, api_auth_checked, call);
	} else if (auth == NULL && cookie != NULL && api_cookie(cookie, value, sizeof value) == 0) {
		call->by_cookie = 1;
		api_token_hash(value, hash);
		db_exec(b->srv->db, &api_stmt_session, 1, params, api_auth_checked, call);
	} else
		http_reply_error(hr, HTTP_ERR_UNAUTHORIZED, "Log in, or send Authorization: Bearer TOKEN.");
}

void
api_add_routes(struct server *srv, const struct api_route *routes, size_t n)
{
	struct api *api = srv->api;
	struct api_binding *b;
	size_t i;

	api->bindings = xrealloc(api->bindings, (api->nbindings + n) * sizeof *api->bindings);
	for (i = 0; i < n; i++) {
		b = xmalloc(sizeof *b);
		b->srv = srv;
		b->route = &routes[i];
		api->bindings[api->nbindings++] = b;
		http_route(srv->http, routes[i].method, routes[i].pattern, api_entry, b);
	}
}

void
api_sql_error(struct http_req *hr, const char *error, const char *sqlstate)
{
	if (strcmp(sqlstate, "P0002") == 0)
		http_reply_error(hr, HTTP_ERR_NOT_FOUND, error);
	else if (strcmp(sqlstate, "42501") == 0)
		http_reply_error(hr, HTTP_ERR_FORBIDDEN, error);
	else if (strcmp(sqlstate, "23514") == 0 || strcmp(sqlstate, "23502") == 0)
		http_reply_error(hr, HTTP_ERR_BAD_REQUEST, error); /* a CHECK or NOT NULL: bad input */
	else if (strncmp(sqlstate, "23", 2) == 0 || strcmp(sqlstate, "40001") == 0 ||
	    strcmp(sqlstate, "P0001") == 0)
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

/* A worker thread: run queued jobs until told to stop, posting each back. */
static void *
api_worker(void *arg)
{
	struct api *api = arg;
	struct api_job *job;

	pthread_mutex_lock(&api->lock);
	for (;;) {
		while (api->head == NULL && !api->stop)
			pthread_cond_wait(&api->cond, &api->lock);
		if (api->head == NULL)
			break;
		job = api->head;
		api->head = job->next;
		if (api->head == NULL)
			api->tail = NULL;
		pthread_mutex_unlock(&api->lock);
		job->fn(job->arg);
		/* a pointer is under PIPE_BUF: the write is atomic */
		if (write(api->pipe[1], &job, sizeof job) != sizeof job)
			log_fatal("api", "Could not post a finished job to the loop.");
		pthread_mutex_lock(&api->lock);
	}
	pthread_mutex_unlock(&api->lock);
	return NULL;
}

/* The loop side of the pipe: finish the jobs the workers posted. */
static void
api_work_done(evutil_socket_t fd, short what, void *arg)
{
	struct api *api = arg;
	struct api_job *jobs[64];
	ssize_t n;
	size_t i;

	while ((n = read(fd, jobs, sizeof jobs)) > 0) {
		for (i = 0; i < (size_t)n / sizeof jobs[0]; i++) {
			api->busy--;
			jobs[i]->done(jobs[i]->arg);
			free(jobs[i]);
		}
	}
}

void
api_work(struct server *srv, void (*fn)(void *), void (*done)(void *), void *arg)
{
	struct api *api = srv->api;
	struct api_job *job = xcalloc(1, sizeof *job);

	job->fn = fn;
	job->done = done;
	job->arg = arg;
	api->busy++;
	pthread_mutex_lock(&api->lock);
	if (api->tail != NULL)
		api->tail->next = job;
	else
		api->head = job;
	api->tail = job;
	pthread_cond_signal(&api->cond);
	pthread_mutex_unlock(&api->lock);
}

/* Start the worker threads and the pipe that brings their results back. */
static void
api_workers_start(struct server *srv)
{
	struct api *api = srv->api;
	int i;

	if (pipe(api->pipe) != 0)
		log_fatal("api", "Could not make the workers' pipe. reason=\"%s\"", strerror(errno));
	fcntl(api->pipe[0], F_SETFL, O_NONBLOCK);
	fcntl(api->pipe[0], F_SETFD, FD_CLOEXEC);
	fcntl(api->pipe[1], F_SETFD, FD_CLOEXEC);
	api->ev = event_new(srv->base, api->pipe[0], EV_READ | EV_PERSIST, api_work_done, api);
	event_add(api->ev, NULL);
	pthread_mutex_init(&api->lock, NULL);
	pthread_cond_init(&api->cond, NULL);
	for (i = 0; i < API_WORKERS; i++) {
		if (pthread_create(&api->threads[i], NULL, api_worker, api) != 0)
			log_fatal("api", "Could not start a password worker thread.");
	}
}

struct api_events **
api_events_state(struct server *srv)
{
	return &srv->api->events;
}

/* Anything else under /api/: a JSON 404, never the static files. */
static void
api_unknown(struct http_req *hr, void *arg)
{
	http_reply_error(hr, HTTP_ERR_NOT_FOUND, "No such API route.");
}

void
api_init(struct server *srv)
{
	srv->api = xcalloc(1, sizeof *srv->api);
	api_workers_start(srv);
	api_auth_init(srv);
	api_inbox_init(srv);
	api_admin_init(srv);
	api_events_init(srv);
	api_campaign_init(srv);
	api_desk_init(srv);
	http_route(srv->http, NULL, "/api/*", api_unknown, NULL);
}

void
api_stop(struct server *srv)
{
	if (srv->api != NULL)
		api_events_stop(srv);
}

void
api_free(struct server *srv)
{
	struct api *api = srv->api;
	struct api_job *job;
	size_t i;

	if (api == NULL)
		return;
	api_events_free(srv);
	pthread_mutex_lock(&api->lock);
	api->stop = 1;
	pthread_cond_broadcast(&api->cond);
	pthread_mutex_unlock(&api->lock);
	for (i = 0; i < API_WORKERS; i++)
		pthread_join(api->threads[i], NULL);
	/* jobs the workers posted but the loop never read: their requests are gone with evhttp */
	while (read(api->pipe[0], &job, sizeof job) == sizeof job)
		free(job);
	for (job = api->head; job != NULL; job = api->head) {
		api->head = job->next;
		free(job);
	}
	event_free(api->ev);
	close(api->pipe[0]);
	close(api->pipe[1]);
	pthread_mutex_destroy(&api->lock);
	pthread_cond_destroy(&api->cond);
	for (i = 0; i < api->nbindings; i++)
		free(api->bindings[i]);
	free(api->bindings);
	free(api);
	srv->api = NULL;
}
