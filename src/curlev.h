/*
 * curlev.h: libcurl's multi interface on the libevent loop, through its
 * socket and timer callbacks, so HTTP requests to providers never block.
 * Connections are reused by the multi handle; TLS is verified by default.
 */
#ifndef LINBAT_CURLEV_H
#define LINBAT_CURLEV_H

#include <stddef.h>

#include <curl/curl.h>
#include <event2/event.h>

struct curlev;

/*
 * Called once per transfer, from the loop. rc is CURLE_OK when a response
 * arrived (whatever its status); status is the HTTP status (0 if none).
 * body (NUL-terminated) is borrowed until the callback returns. The easy
 * handle may be read (curl_easy_getinfo, curl_easy_header) during the
 * callback; it is cleaned up afterwards, with any curl_slist given to
 * curlev_start.
 */
typedef void (*curlev_cb)(CURL *easy, CURLcode rc, long status, const char *body, size_t len, void *arg);

struct curlev *curlev_create(struct event_base *, char **cause);
/* Abort transfers in flight (their callbacks get CURLE_ABORTED_BY_CALLBACK) and free. */
void curlev_destroy(struct curlev *);
/* Defaults for new handles: CA file (NULL: system store), connect and total timeouts in ms. */
void curlev_set_defaults(struct curlev *, const char *cafile, long connect_ms, long total_ms);
/*
 * Connections kept open for reuse. Keep it at least the sends in flight:
 * a smaller cache closes connections that the next send must open again.
 */
void curlev_set_max_connections(struct curlev *, long);
/* A new easy handle with the defaults set (timeouts, TLS verification, no signals). */
CURL *curlev_easy(struct curlev *);
/* Let easy speak http and https only (a URL of another scheme fails). */
void curlev_http_only(CURL *easy);
/*
 * Start a transfer. The easy handle and headers (may be NULL) now belong to
 * curlev; the response body is collected for the callback, up to max_body
 * bytes (0: 16 MiB), past which the transfer fails with CURLE_WRITE_ERROR.
 * CURLOPT_PRIVATE is curlev's own: a caller's value is overwritten, so what
 * the callback needs to know goes in arg (or in which callback it is).
 */
void curlev_start(struct curlev *, CURL *easy, struct curl_slist *headers, size_t max_body, curlev_cb, void *arg);
/* The Retry-After of an answer (read in a curlev_cb) in seconds, at most a day; 0 if none. */
int curlev_retry_after(CURL *easy);
/* Transfers in flight. */
int curlev_active(struct curlev *);

#endif
