/*
 * http.c: evhttp server with a route table, per-request state that survives
 * an asynchronous answer, JSON errors, a body cap, static files and one access
 * log line per request. The query string never reaches the log: webhooks of
 * some providers carry their shared secret there.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "http.h"
#include "log.h"
#include "util.h"

#define HTTP_MAX_PARAMS 4

struct http_route_entry {
	const char *method;
	const char *pattern;
	http_handler_cb cb;
	void *arg;
};

struct http_server {
	struct event_base *base;
	struct evhttp *evhttp;
	struct evhttp_bound_socket *bound;
	struct http_route_entry *routes;
	size_t nroutes;
	char *static_dir;
	http_done_cb done_cb;
	void *done_arg;
	int inflight;
};

struct http_req {
	struct http_server *srv;
	struct evhttp_request *ev; /* NULL once the client has gone */
	struct evhttp_connection *evcon;
	const char *pattern;
	char *path;
	struct evkeyvalq query;
	const char *pnames[HTTP_MAX_PARAMS];
	char *pvalues[HTTP_MAX_PARAMS];
	int nparams;
	unsigned char *body;
	size_t body_len;
	char peer[64];
	uint64_t start_us;
	void *data;
	void (*data_free)(void *);
	/* a streamed answer: the evhttp request (kept after a close, for libevent
	 * to free at http_stream_end) and who to tell when the client goes away */
	struct evhttp_request *stream;
	http_closed_cb closed_cb;
	void *closed_arg;
};

static const struct {
	int status;
	const char *code;
	const char *message;
} http_errors[] = {
	[HTTP_ERR_BAD_REQUEST] = { 400, "bad_request", "Permintaan tidak valid / Bad request" },
	[HTTP_ERR_UNAUTHORIZED] = { 401, "unauthorized", "Perlu masuk / Authentication required" },
	[HTTP_ERR_BAD_SIGNATURE] = { 401, "bad_signature", "Tanda tangan tidak valid / Invalid signature" },
	[HTTP_ERR_FORBIDDEN] = { 403, "forbidden", "Tidak diizinkan / Forbidden" },
	[HTTP_ERR_CSRF] = { 403, "csrf", "Token CSRF tidak valid / Invalid CSRF token" },
	[HTTP_ERR_NOT_FOUND] = { 404, "not_found", "Tidak ditemukan / Not found" },
	[HTTP_ERR_METHOD] = { 405, "method_not_allowed", "Metode tidak diizinkan / Method not allowed" },
	[HTTP_ERR_CONFLICT] = { 409, "conflict", "Konflik dengan keadaan saat ini / Conflict" },
	[HTTP_ERR_TOO_LARGE] = { 413, "payload_too_large", "Isi permintaan terlalu besar / Payload too large" },
	[HTTP_ERR_RATE_LIMITED] = { 429, "rate_limited", "Terlalu banyak permintaan / Too many requests" },
	[HTTP_ERR_INTERNAL] = { 500, "internal", "Kesalahan internal / Internal error" },
	[HTTP_ERR_UNAVAILABLE] = { 503, "unavailable", "Layanan sedang tidak tersedia / Service unavailable" },
};

static const struct {
	const char *ext;
	const char *type;
} http_mime[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".mjs", "text/javascript; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".json", "application/json" },
	{ ".svg", "image/svg+xml" },
	{ ".png", "image/png" },
	{ ".jpg", "image/jpeg" },
	{ ".webp", "image/webp" },
	{ ".webmanifest", "application/manifest+json" },
	{ ".ico", "image/x-icon" },
	{ ".txt", "text/plain; charset=utf-8" },
	{ ".woff2", "font/woff2" },
};

static void http_handle(struct evhttp_request *, void *);
static void http_finish(struct http_req *, int, struct evbuffer *);

struct http_server *
http_create(struct event_base *base, char **cause)
{
	struct http_server *srv = xcalloc(1, sizeof *srv);

	srv->base = base;
	srv->evhttp = evhttp_new(base);
	if (srv->evhttp == NULL) {
		free(srv);
		*cause = xstrdup("Could not create the HTTP server.");
		return NULL;
	}
	evhttp_set_allowed_methods(srv->evhttp, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
	    EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS);
	evhttp_set_timeout(srv->evhttp, 60);
	evhttp_set_max_headers_size(srv->evhttp, 64 * 1024);
	evhttp_set_max_body_size(srv->evhttp, 1024 * 1024);
	evhttp_set_gencb(srv->evhttp, http_handle, srv);
	return srv;
}

/* Read back the port actually bound (the config may say port 0). */
static int
http_bound_port(struct evhttp_bound_socket *bound)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	evutil_socket_t fd = evhttp_bound_socket_get_fd(bound);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return -1;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int
http_listen(struct http_server *srv, const char *addr, char **cause)
{
	char host[256];
	int port;

	if (util_parse_hostport(addr, host, sizeof host, &port) != 0) {
		xasprintf(cause, "Bad listen address \"%s\": expected host:port.", addr);
		return -1;
	}
	srv->bound = evhttp_bind_socket_with_handle(srv->evhttp, host, (ev_uint16_t)port);
	if (srv->bound == NULL) {
		xasprintf(cause, "Could not listen on %s: %s.", addr, strerror(errno));
		return -1;
	}
	log_info("http", "Listening for HTTP. addr=%s port=%d", host, http_bound_port(srv->bound));
	return 0;
}

void
http_set_max_body(struct http_server *srv, size_t n)
{
	evhttp_set_max_body_size(srv->evhttp, (ev_ssize_t)n);
}

void
http_set_done_cb(struct http_server *srv, http_done_cb cb, void *arg)
{
	srv->done_cb = cb;
	srv->done_arg = arg;
}

void
http_set_static_dir(struct http_server *srv, const char *dir)
{
	free(srv->static_dir);
	srv->static_dir = dir != NULL ? xstrdup(dir) : NULL;
}

void
http_route(struct http_server *srv, const char *method, const char *pattern, http_handler_cb cb, void *arg)
{
	struct http_route_entry *r;

	srv->routes = xrealloc(srv->routes, (srv->nroutes + 1) * sizeof *srv->routes);
	r = &srv->routes[srv->nroutes++];
	r->method = method;
	r->pattern = pattern;
	r->cb = cb;
	r->arg = arg;
}

void
http_stop_accepting(struct http_server *srv)
{
	if (srv->bound != NULL) {
		evhttp_del_accept_socket(srv->evhttp, srv->bound);
		srv->bound = NULL;
		log_info("http", "Stopped accepting connections. inflight=%d", srv->inflight);
	}
}

int
http_inflight(struct http_server *srv)
{
	return srv->inflight;
}

void
http_destroy(struct http_server *srv)
{
	if (srv == NULL)
		return;
	evhttp_free(srv->evhttp);
	free(srv->routes);
	free(srv->static_dir);
	free(srv);
}

/* Release a request's own memory (the evhttp request belongs to libevent). */
static void
http_req_free(struct http_req *hr)
{
	int i;

	if (hr->data_free != NULL)
		hr->data_free(hr->data);
	for (i = 0; i < hr->nparams; i++)
		free(hr->pvalues[i]);
	evhttp_clear_headers(&hr->query);
	free(hr->body);
	free(hr->path);
	hr->srv->inflight--;
	free(hr);
}

/* The client closed the connection before the answer: forget the evhttp request. */
static void
http_conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct http_req *hr = arg;

	hr->ev = NULL;
	hr->evcon = NULL;
	if (hr->closed_cb != NULL)
		hr->closed_cb(hr, hr->closed_arg);
}

/* Match one pattern against path, filling the request's parameters. */
static int
http_match(const char *pattern, const char *path, struct http_req *hr)
{
	const char *p = pattern, *s = path, *pe, *se;

	hr->nparams = 0;
	while (*p != '\0') {
		if (p[0] == '*' && p[1] == '\0') {
			hr->pnames[hr->nparams] = "*";
			hr->pvalues[hr->nparams++] = xstrdup(s);
			return 1;
		}
		if (*p == '{') {
			pe = strchr(p, '}');
			se = strchr(s, '/');
			if (se == NULL)
				se = s + strlen(s);
			if (pe == NULL || se == s || hr->nparams == HTTP_MAX_PARAMS - 1)
				return 0;
			hr->pnames[hr->nparams] = p + 1; /* ends at '}': compared with a length below */
			hr->pvalues[hr->nparams++] = xstrndup(s, (size_t)(se - s));
			p = pe + 1;
			s = se;
			continue;
		}
		if (*p != *s)
			return 0;
		p++;
		s++;
	}
	return *s == '\0';
}

/* Forget parameters of a failed match attempt. */
static void
http_clear_params(struct http_req *hr)
{
	int i;

	for (i = 0; i < hr->nparams; i++)
		free(hr->pvalues[i]);
	hr->nparams = 0;
}

/* Fill the request's decoded path, query, peer and body from evhttp. */
static int
http_req_parse(struct http_req *hr)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(hr->ev);
	const char *path = evhttp_uri_get_path(uri), *query = evhttp_uri_get_query(uri);
	struct evbuffer *in = evhttp_request_get_input_buffer(hr->ev);
	char *peer = NULL;
	ev_uint16_t port;

	TAILQ_INIT(&hr->query);
	size_t n;

	hr->path = evhttp_uridecode(path != NULL && *path != '\0' ? path : "/", 0, &n);
	/* An encoded NUL would cut the path short of what was checked. */
	if (hr->path == NULL || strlen(hr->path) != n)
		return -1;
	if (query != NULL && evhttp_parse_query_str(query, &hr->query) != 0)
		return -1;
	evhttp_connection_get_peer(hr->evcon, &peer, &port);
	snprintf(hr->peer, sizeof hr->peer, "%s", peer != NULL ? peer : "");
	hr->body_len = evbuffer_get_length(in);
	hr->body = xmalloc(hr->body_len + 1);
	evbuffer_copyout(in, hr->body, hr->body_len);
	hr->body[hr->body_len] = '\0';
	return 0;
}

/* Content type for a file name, by extension. */
static const char *
http_mime_type(const char *path)
{
	const char *dot = strrchr(path, '.');
	size_t i;

	for (i = 0; dot != NULL && i < nitems(http_mime); i++) {
		if (strcasecmp(dot, http_mime[i].ext) == 0)
			return http_mime[i].type;
	}
	return "application/octet-stream";
}

/*
 * The policy of the pages: scripts, styles and connections only from this
 * origin (no inline script or style, no eval), no plugins, no <base>, and no
 * framing by anyone (clickjacking). Images may also be data: and blob: URLs,
 * which the page makes for previews.
 */
#define HTTP_CSP_PAGES \
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " \
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
/* Every other answer (JSON, media, events) is no page: it may load nothing and run nothing. */
#define HTTP_CSP_DATA "default-src 'none'; frame-ancestors 'none'; sandbox"

/* Whether a decoded path may name a static file: no "..", no hidden file or directory. */
static int
http_static_path_ok(const char *path)
{
	return path[0] == '/' && strstr(path, "..") == NULL && strstr(path, "/.") == NULL &&
	    strchr(path, '\\') == NULL;
}

/* Whether an If-None-Match header lists etag (or is "*"). */
static int
http_etag_matches(const char *header, const char *etag)
{
	const char *p = header;
	size_t n = strlen(etag);

	if (header == NULL)
		return 0;
	if (strcmp(header, "*") == 0)
		return 1;
	while ((p = strstr(p, etag)) != NULL) {
		if ((p == header || p[-1] == ' ' || p[-1] == ',') && (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
			return 1;
		p += n;
	}
	return 0;
}

/*
 * Serve one file of the static directory, or 404. Files are revalidated on
 * each use (no-cache with a weak ETag of size and mtime, answered 304 when it
 * still matches): the names carry no version, and an upgrade must show at once.
 */
static void
http_serve_static(struct http_req *hr)
{
	struct evbuffer *out;
	struct stat st;
	char *file, etag[64];
	int fd;

	if (!http_static_path_ok(hr->path)) {
		http_reply_error(hr, HTTP_ERR_NOT_FOUND, NULL);
		return;
	}
	xasprintf(&file, "%s%s%s", hr->srv->static_dir, hr->path,
	    hr->path[strlen(hr->path) - 1] == '/' ? "index.html" : "");
	fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		free(file);
		http_reply_error(hr, HTTP_ERR_NOT_FOUND, NULL);
		return;
	}
	snprintf(etag, sizeof etag, "W/\"%llx-%llx\"", (unsigned long long)st.st_size,
	    (unsigned long long)st.st_mtime);
	http_add_header(hr, "Content-Type", http_mime_type(file));
	http_add_header(hr, "Cache-Control", "no-cache");
	http_add_header(hr, "ETag", etag);
	http_add_header(hr, "Content-Security-Policy", HTTP_CSP_PAGES);
	free(file);
	hr->pattern = "static";
	out = evbuffer_new();
	if (http_etag_matches(http_req_header(hr, "If-None-Match"), etag)) {
		close(fd);
		http_finish(hr, 304, out);
		return;
	}
	evbuffer_add_file(out, fd, 0, st.st_size);
	http_finish(hr, 200, out);
}

/* Headers every answer carries; a CSP for data unless the answer set its own. */
static void
http_security_headers(struct http_req *hr)
{
	struct evkeyvalq *h;

	if (hr->ev == NULL)
		return;
	h = evhttp_request_get_output_headers(hr->ev);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	if (evhttp_find_header(h, "Content-Security-Policy") == NULL)
		evhttp_add_header(h, "Content-Security-Policy", HTTP_CSP_DATA);
}

/* Find the route for a request and run it. */
static void
http_dispatch(struct http_req *hr)
{
	const char *method = http_req_method(hr);
	int path_matched = 0;
	size_t i;

	for (i = 0; i < hr->srv->nroutes; i++) {
		struct http_route_entry *r = &hr->srv->routes[i];

		if (!http_match(r->pattern, hr->path, hr)) {
			http_clear_params(hr);
			continue;
		}
		path_matched = 1;
		if (r->method != NULL && strcmp(r->method, method) != 0 &&
		    !(strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)) {
			http_clear_params(hr);
			continue;
		}
		hr->pattern = r->pattern;
		r->cb(hr, r->arg);
		return;
	}
	if (path_matched)
		http_reply_error(hr, HTTP_ERR_METHOD, NULL);
	else if (hr->srv->static_dir != NULL && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
		http_serve_static(hr);
	else
		http_reply_error(hr, HTTP_ERR_NOT_FOUND, NULL);
}

/* evhttp's entry point: every request starts here. */
static void
http_handle(struct evhttp_request *ev, void *arg)
{
	struct http_server *srv = arg;
	struct http_req *hr = xcalloc(1, sizeof *hr);

	hr->srv = srv;
	hr->ev = ev;
	hr->evcon = evhttp_request_get_connection(ev);
	hr->start_us = util_mono_us();
	hr->pattern = "-";
	srv->inflight++;
	evhttp_connection_set_closecb(hr->evcon, http_conn_closed, hr);
	if (http_req_parse(hr) != 0) {
		if (hr->path == NULL)
			hr->path = xstrdup("-");
		http_reply_error(hr, HTTP_ERR_BAD_REQUEST, "The request line could not be parsed.");
		return;
	}
	http_dispatch(hr);
}

const char *
http_req_method(struct http_req *hr)
{
	if (hr->ev == NULL)
		return "-";
	switch (evhttp_request_get_command(hr->ev)) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	default: return "OTHER";
	}
}

const char *
http_req_path(struct http_req *hr)
{
	return hr->path;
}

const char *
http_req_uri(struct http_req *hr)
{
	return hr->ev != NULL ? evhttp_request_get_uri(hr->ev) : "";
}

const char *
http_req_param(struct http_req *hr, const char *name)
{
	size_t n = strlen(name);
	int i;

	for (i = 0; i < hr->nparams; i++) {
		const char *pn = hr->pnames[i];
		if (strncmp(pn, name, n) == 0 && (pn[n] == '}' || pn[n] == '\0'))
			return hr->pvalues[i];
	}
	return NULL;
}

const char *
http_req_query(struct http_req *hr, const char *name)
{
	return evhttp_find_header(&hr->query, name);
}

const char *
http_req_header(struct http_req *hr, const char *name)
{
	if (hr->ev == NULL)
		return NULL;
	return evhttp_find_header(evhttp_request_get_input_headers(hr->ev), name);
}

const char *
http_req_peer(struct http_req *hr)
{
	return hr->peer;
}

const unsigned char *
http_req_body(struct http_req *hr, size_t *len)
{
	if (len != NULL)
		*len = hr->body_len;
	return hr->body;
}

json_t *
http_req_json(struct http_req *hr)
{
	json_error_t err;
	json_t *j = json_loadb((const char *)hr->body, hr->body_len, 0, &err);

	if (j == NULL || !json_is_object(j)) {
		json_decref(j);
		http_reply_error(hr, HTTP_ERR_BAD_REQUEST, j == NULL ? err.text : "The body must be a JSON object.");
		return NULL;
	}
	return j;
}

int
http_req_aborted(struct http_req *hr)
{
	return hr->ev == NULL;
}

void
http_req_set_data(struct http_req *hr, void *data, void (*free_cb)(void *))
{
	hr->data = data;
	hr->data_free = free_cb;
}

void *
http_req_data(struct http_req *hr)
{
	return hr->data;
}

void
http_add_header(struct http_req *hr, const char *name, const char *value)
{
	if (hr->ev != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(hr->ev), name, value);
}

/* End a request: send out (freed here), log it, report it and free the request. */
static void
http_finish(struct http_req *hr, int status, struct evbuffer *out)
{
	unsigned long long us = util_mono_us() - hr->start_us;
	const char *method = http_req_method(hr);
	size_t len = evbuffer_get_length(out);

	if (hr->ev != NULL) {
		evhttp_connection_set_closecb(hr->evcon, NULL, NULL);
		http_security_headers(hr);
		evhttp_send_reply(hr->ev, status, NULL, out);
	} else
		status = 499; /* nginx's "client closed request" */
	evbuffer_free(out);
	log_info("http", "Request served. method=%s path=%s status=%d bytes=%zu us=%llu peer=%s", method,
	    hr->path, status, len, us, hr->peer);
	if (hr->srv->done_cb != NULL)
		hr->srv->done_cb(hr->pattern, status, us, hr->srv->done_arg);
	http_req_free(hr);
}

void
http_reply(struct http_req *hr, int status, const char *content_type, const void *body, size_t len)
{
	struct evbuffer *out = evbuffer_new();

	if (len > 0)
		evbuffer_add(out, body, len);
	if (content_type != NULL)
		http_add_header(hr, "Content-Type", content_type);
	http_finish(hr, status, out);
}

void
http_reply_json(struct http_req *hr, int status, json_t *body)
{
	char *s = json_dumps(body, JSON_COMPACT);

	json_decref(body);
	http_reply(hr, status, "application/json", s, s != NULL ? strlen(s) : 0);
	free(s);
}

void
http_reply_error(struct http_req *hr, enum http_err e, const char *detail)
{
	json_t *err = json_pack("{s:s,s:s}", "code", http_errors[e].code, "message", http_errors[e].message);

	if (detail != NULL)
		json_object_set_new(err, "detail", json_string(detail));
	http_reply_json(hr, http_errors[e].status, json_pack("{s:o}", "error", err));
}

void
http_stream_start(struct http_req *hr, int status, const char *content_type, http_closed_cb cb, void *arg)
{
	hr->closed_cb = cb;
	hr->closed_arg = arg;
	hr->stream = hr->ev;
	if (hr->ev == NULL)
		return;
	http_add_header(hr, "Content-Type", content_type);
	http_add_header(hr, "Cache-Control", "no-cache");
	http_security_headers(hr);
	/* a stream is quiet between heartbeats: the server's 60 s timeout would cut it */
	evhttp_connection_set_timeout(hr->evcon, 24 * 3600);
	evhttp_send_reply_start(hr->ev, status, NULL);
}

void
http_stream_write(struct http_req *hr, const void *data, size_t len)
{
	struct evbuffer *b;

	if (hr->ev == NULL)
		return;
	b = evbuffer_new();
	evbuffer_add(b, data, len);
	evhttp_send_reply_chunk(hr->ev, b);
	evbuffer_free(b);
}

void
http_stream_end(struct http_req *hr)
{
	unsigned long long us = util_mono_us() - hr->start_us;
	int status = hr->ev != NULL ? 200 : 499;

	hr->closed_cb = NULL;
	if (hr->ev != NULL)
		evhttp_connection_set_closecb(hr->evcon, NULL, NULL);
	/* after a close libevent keeps the request for us: this frees it */
	if (hr->stream != NULL)
		evhttp_send_reply_end(hr->stream);
	log_info("http", "Stream ended. path=%s status=%d us=%llu peer=%s", hr->path, status, us, hr->peer);
	if (hr->srv->done_cb != NULL)
		hr->srv->done_cb(hr->pattern, status, us, hr->srv->done_arg);
	http_req_free(hr);
}
