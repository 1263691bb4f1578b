/*
 * http.h: the HTTP server on the loop (evhttp). Routes are registered with a
 * method and a pattern; handlers may answer at once or later (after a database
 * callback). A request whose client went away is marked aborted and its
 * answer is dropped safely. Errors are JSON with a stable code.
 */
#ifndef LINBAT_HTTP_H
#define LINBAT_HTTP_H

#include <stddef.h>

#include <event2/event.h>
#include <jansson.h>

struct http_server;
struct http_req;

typedef void (*http_handler_cb)(struct http_req *, void *arg);
/* Called once per finished request (for metrics): route pattern, status, duration in us. */
typedef void (*http_done_cb)(const char *pattern, int status, unsigned long long us, void *arg);

/* Stable error codes; each has a status and a bilingual message (Indonesian first). */
enum http_err {
	HTTP_ERR_BAD_REQUEST,
	HTTP_ERR_UNAUTHORIZED,
	HTTP_ERR_BAD_SIGNATURE,
	HTTP_ERR_FORBIDDEN,
	HTTP_ERR_CSRF,
	HTTP_ERR_NOT_FOUND,
	HTTP_ERR_METHOD,
	HTTP_ERR_CONFLICT,
	HTTP_ERR_TOO_LARGE,
	HTTP_ERR_RATE_LIMITED,
	HTTP_ERR_INTERNAL,
	HTTP_ERR_UNAVAILABLE,
};

struct http_server *http_create(struct event_base *, char **cause);
/* Bind and listen on "host:port"; 0 or -1 with *cause. */
int http_listen(struct http_server *, const char *addr, char **cause);
void http_set_max_body(struct http_server *, size_t);
void http_set_done_cb(struct http_server *, http_done_cb, void *);
/* Serve files under dir for GET requests no route matched ("/" is index.html). dir is copied. */
void http_set_static_dir(struct http_server *, const char *dir);
/*
 * Add a route. method is "GET", "POST", ... or NULL for any. pattern segments
 * "{name}" match one path segment; a final "*" matches the rest (possibly
 * empty). Routes are tried in the order added. pattern must be static.
 */
void http_route(struct http_server *, const char *method, const char *pattern, http_handler_cb, void *arg);
/* Stop accepting new connections; requests in flight go on. */
void http_stop_accepting(struct http_server *);
/* Requests received and not yet answered. */
int http_inflight(struct http_server *);
void http_destroy(struct http_server *);

/* Request accessors; returned strings are borrowed, valid until the answer. */
const char *http_req_method(struct http_req *);
const char *http_req_path(struct http_req *);     /* decoded path without the query */
const char *http_req_uri(struct http_req *);      /* raw path and query as received */
const char *http_req_param(struct http_req *, const char *name); /* {name} of the route, or "*" */
const char *http_req_query(struct http_req *, const char *name); /* decoded, NULL if absent */
const char *http_req_header(struct http_req *, const char *name);
const char *http_req_peer(struct http_req *);     /* remote address, no port */
const unsigned char *http_req_body(struct http_req *, size_t *len); /* NUL-terminated copy */
/* Parse the body as a JSON object; NULL (and an answer sent: 400) if it is not one. New reference. */
json_t *http_req_json(struct http_req *);
int http_req_aborted(struct http_req *);
/* Per-request data a handler keeps while it waits (freed with free_cb when the request ends). */
void http_req_set_data(struct http_req *, void *, void (*free_cb)(void *));
void *http_req_data(struct http_req *);

/* Answers: each ends the request; exactly one must be called per request. */
void http_add_header(struct http_req *, const char *name, const char *value);
void http_reply(struct http_req *, int status, const char *content_type, const void *body, size_t len);
void http_reply_json(struct http_req *, int status, json_t *body); /* steals body */
void http_reply_error(struct http_req *, enum http_err, const char *detail);

/*
 * Streamed answers (Server-Sent Events). http_stream_start sends the status
 * and headers with chunked encoding and keeps the request open instead of
 * ending it; http_stream_write sends one chunk; http_stream_end ends the
 * request (and is the one answer call for it). If the client goes away first,
 * closed_cb is called once, from the loop; the owner must then still call
 * http_stream_end, which only frees what is left.
 */
typedef void (*http_closed_cb)(struct http_req *, void *arg);
void http_stream_start(struct http_req *, int status, const char *content_type, http_closed_cb, void *arg);
void http_stream_write(struct http_req *, const void *data, size_t len);
void http_stream_end(struct http_req *);

#endif
