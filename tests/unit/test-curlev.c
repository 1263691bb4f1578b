/*
 * test-curlev.c: unit tests of curlev (libcurl multi on libevent) against a
 * small evhttp server on 127.0.0.1 running on the same loop: a response
 * arrives with its status and body, the callback never runs inside
 * curlev_start, the body cap fails the transfer, a refused connection and a
 * timeout are reported, one connection serves sequential requests, and
 * curlev_destroy aborts what is in flight.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/http.h>

#include "curlev.h"
#include "log.h"
#include "util.h"

/* The loop, a server on it, and a curlev. */
struct fixture {
	struct event_base *base;
	struct evhttp *http;
	struct curlev *c;
	int port;
	char url[64];
	struct evhttp_request *held; /* /hang: never answered until freed */
};

/* What one transfer's callback saw. */
struct result {
	int done;
	int started; /* set after curlev_start returned */
	int early;   /* the callback ran before that */
	CURLcode rc;
	long status;
	char body[256];
	size_t len;
	long connects;
	struct event_base *base;
};

/* /ok answers "hello" (200), /big 64 KiB, /teapot 418, /hang never. */
static void
serve(struct evhttp_request *req, void *arg)
{
	struct fixture *f = arg;
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *out = evbuffer_new();
	char *big;

	if (strcmp(uri, "/hang") == 0) {
		f->held = req;
		evbuffer_free(out);
		return;
	}
	if (strcmp(uri, "/big") == 0) {
		big = xcalloc(1, 65536);
		memset(big, 'x', 65535);
		evbuffer_add(out, big, 65535);
		free(big);
	} else
		evbuffer_add_printf(out, "hello");
	evhttp_send_reply(req, strcmp(uri, "/teapot") == 0 ? 418 : 200, "X", out);
	evbuffer_free(out);
}

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof *f);
	struct evhttp_bound_socket *bound;
	char *cause = NULL;
	struct sockaddr_storage ss;
	ev_socklen_t len = sizeof ss;

	f->base = event_base_new();
	f->http = evhttp_new(f->base);
	evhttp_set_gencb(f->http, serve, f);
	bound = evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
	assert_non_null(bound);
	getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &len);
	f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d", f->port);
	f->c = curlev_create(f->base, &cause);
	assert_non_null(f->c);
	curlev_set_defaults(f->c, NULL, 2000, 3000);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	curlev_destroy(f->c);
	evhttp_free(f->http);
	event_base_free(f->base);
	free(f);
	return 0;
}

static void
on_done(CURL *easy, CURLcode rc, long status, const char *body, size_t len, void *arg)
{
	struct result *r = arg;

	r->done++;
	r->early = !r->started;
	r->rc = rc;
	r->status = status;
	r->len = len;
	snprintf(r->body, sizeof r->body, "%.*s", (int)(len < 200 ? len : 200), body);
	curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &r->connects);
	if (r->base != NULL)
		event_base_loopbreak(r->base);
}

/* Start GET path and run the loop until its callback (or 5 s). */
static void
fetch(struct fixture *f, const char *path, size_t max, struct result *r)
{
	struct timeval tv = { 5, 0 };
	char url[128];
	CURL *easy = curlev_easy(f->c);

	memset(r, 0, sizeof *r);
	r->base = f->base;
	snprintf(url, sizeof url, "%s%s", f->url, path);
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curlev_start(f->c, easy, curl_slist_append(NULL, "X-Test: 1"), max, on_done, r);
	r->started = 1;
	event_base_loopexit(f->base, &tv);
	event_base_dispatch(f->base);
	assert_int_equal(r->done, 1);
	assert_false(r->early);
}

static void
test_get(void **state)
{
	struct fixture *f = *state;
	struct result r;

	fetch(f, "/ok", 0, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "hello");
	assert_int_equal(curlev_active(f->c), 0);

	fetch(f, "/teapot", 0, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 418);
}

static void
test_connection_reused(void **state)
{
	struct fixture *f = *state;
	struct result r;

	fetch(f, "/ok", 0, &r);
	assert_int_equal(r.connects, 1);
	fetch(f, "/ok", 0, &r);
	assert_int_equal(r.connects, 0);
}

static void
test_body_cap(void **state)
{
	struct fixture *f = *state;
	struct result r;

	fetch(f, "/big", 1000, &r);
	assert_int_equal(r.rc, CURLE_WRITE_ERROR);
	fetch(f, "/big", 65535, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.len, 65535);
}

static void
test_refused_and_timeout(void **state)
{
	struct fixture *f = *state;
	struct evhttp *other = evhttp_new(f->base);
	struct evhttp_bound_socket *b = evhttp_bind_socket_with_handle(other, "127.0.0.1", 0);
	struct sockaddr_storage ss;
	ev_socklen_t len = sizeof ss;
	struct result r;
	char saved[64];

	/* A port that was just free: bind, read it, close. */
	getsockname(evhttp_bound_socket_get_fd(b), (struct sockaddr *)&ss, &len);
	strcpy(saved, f->url);
	snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d", ntohs(((struct sockaddr_in *)&ss)->sin_port));
	evhttp_free(other);
	fetch(f, "/ok", 0, &r);
	assert_int_equal(r.rc, CURLE_COULDNT_CONNECT);
	assert_int_equal(r.status, 0);
	strcpy(f->url, saved);

	curlev_set_defaults(f->c, NULL, 1000, 300);
	fetch(f, "/hang", 0, &r);
	assert_int_equal(r.rc, CURLE_OPERATION_TIMEDOUT);
}

/* A callback that must only run from curlev_destroy. */
static void
on_aborted(CURL *easy, CURLcode rc, long status, const char *body, size_t len, void *arg)
{
	struct result *r = arg;

	r->done++;
	r->rc = rc;
}

static void
test_destroy_aborts(void **state)
{
	struct fixture *f = *state;
	struct result r[3];
	struct timeval tv = { 0, 200000 };
	char url[128];
	int i;

	memset(r, 0, sizeof r);
	for (i = 0; i < 3; i++) {
		CURL *easy = curlev_easy(f->c);

		snprintf(url, sizeof url, "%s/hang", f->url);
		curl_easy_setopt(easy, CURLOPT_URL, url);
		curlev_start(f->c, easy, NULL, 0, on_aborted, &r[i]);
	}
	assert_int_equal(curlev_active(f->c), 3);
	event_base_loopexit(f->base, &tv);
	event_base_dispatch(f->base);
	assert_int_equal(r[0].done + r[1].done + r[2].done, 0);
	curlev_destroy(f->c);
	f->c = NULL;
	for (i = 0; i < 3; i++) {
		assert_int_equal(r[i].done, 1);
		assert_int_equal(r[i].rc, CURLE_ABORTED_BY_CALLBACK);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_reused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_and_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destroy_aborts, setup, teardown),
	};

	log_set_level(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
