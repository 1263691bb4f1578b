/*
 * curlev.c: libcurl's multi interface driven by the libevent loop. libcurl
 * tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to wake
 * it (CURLMOPT_TIMERFUNCTION); we keep one event per socket and one timer,
 * and hand every readiness back with curl_multi_socket_action. Finished
 * transfers are collected from curl_multi_info_read and reported to their
 * owner from the loop. One multi handle serves the whole process, so its
 * connection cache keeps TLS sessions to a provider alive between sends.
 *
 * A callback never runs from inside curlev_start: a transfer that cannot even
 * be added is failed from a deferred event on the next loop pass.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "curlev.h"
#include "log.h"
#include "util.h"

#define CURLEV_MAX_BODY (16 * 1024 * 1024)
#define CURLEV_MAXCONNECTS 256 /* until curlev_set_max_connections says otherwise */
#define CURLEV_CONNECT_MS 10000
#define CURLEV_TOTAL_MS 30000

/* One transfer from curlev_start to its callback. */
struct curlev_xfer {
	struct curlev *c;
	CURL *easy;
	struct curl_slist *headers;
	struct buf body;
	size_t max_body;
	CURLcode fail; /* set when the transfer never started */
	curlev_cb cb;
	void *arg;
	char error[CURL_ERROR_SIZE];
	TAILQ_ENTRY(curlev_xfer) entry;
};
TAILQ_HEAD(curlev_xfers, curlev_xfer);

/* One socket libcurl asked us to watch. */
struct curlev_sock {
	struct curlev *c;
	curl_socket_t fd;
	struct event *ev;
	LIST_ENTRY(curlev_sock) entry;
};

struct curlev {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct event *defer;              /* fails transfers that could not start */
	struct curlev_xfers active;       /* added to the multi handle */
	struct curlev_xfers failed;       /* waiting for the defer event */
	LIST_HEAD(, curlev_sock) socks;
	int nactive;
	char *cafile;
	long connect_ms;
	long total_ms;
};

static pthread_once_t curlev_once = PTHREAD_ONCE_INIT;
static CURLcode curlev_global_rc;

static void curlev_check_done(struct curlev *);

/* Initialise libcurl once per process (before any thread may use it). */
static void
curlev_global_init(void)
{
	curlev_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Append a chunk of the response body, failing the transfer past its cap. */
static size_t
curlev_write(char *data, size_t size, size_t n, void *arg)
{
	struct curlev_xfer *x = arg;
	size_t len = size * n;

	if (x->body.len + len > x->max_body)
		return 0; /* CURLE_WRITE_ERROR */
	buf_add(&x->body, data, len);
	return len;
}

/* Tell libcurl about activity on one of its sockets, then reap what finished. */
static void
curlev_on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct curlev *c = arg;
	int action = 0, running;

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	curl_multi_socket_action(c->multi, fd, action, &running);
	curlev_check_done(c);
}

/* libcurl's timeout came due. */
static void
curlev_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct curlev *c = arg;
	int running;

	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	curlev_check_done(c);
}

/* CURLMOPT_TIMERFUNCTION: arm, move or delete our one timer. No curl calls here. */
static int
curlev_timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
	struct curlev *c = arg;
	struct timeval tv;

	if (timeout_ms < 0) {
		evtimer_del(c->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(c->timer, &tv) == 0 ? 0 : -1;
}

/* Forget a socket: its event goes, libcurl closes the descriptor itself. */
static void
curlev_sock_free(struct curlev_sock *s)
{
	LIST_REMOVE(s, entry);
	event_free(s->ev);
	free(s);
}

/* CURLMOPT_SOCKETFUNCTION: watch a socket for what libcurl wants, or stop. */
static int
curlev_socket_cb(CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
	struct curlev *c = arg;
	struct curlev_sock *s = sockp;
	short kind = EV_PERSIST;

	if (what == CURL_POLL_REMOVE) {
		if (s != NULL)
			curlev_sock_free(s);
		return 0;
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (s == NULL) {
		s = xcalloc(1, sizeof *s);
		s->c = c;
		s->fd = fd;
		s->ev = event_new(c->base, fd, kind, curlev_on_socket, c);
		LIST_INSERT_HEAD(&c->socks, s, entry);
		curl_multi_assign(c->multi, fd, s);
	} else {
		event_del(s->ev);
		event_assign(s->ev, c->base, fd, kind, curlev_on_socket, c);
	}
	return event_add(s->ev, NULL) == 0 ? 0 : -1;
}

/* Hand a finished transfer to its owner, then free it and its easy handle. */
static void
curlev_finish(struct curlev_xfer *x, CURLcode rc)
{
	long status = 0;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK)
		log_debug("curl", "A transfer failed. error=\"%s\" detail=\"%s\" status=%ld",
		    curl_easy_strerror(rc), x->error, status);
	x->cb(x->easy, rc, status, x->body.data != NULL ? x->body.data : "", x->body.len, x->arg);
	curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->headers);
	buf_free(&x->body);
	free(x);
}

/* Take a transfer off the multi handle and the active list. */
static void
curlev_detach(struct curlev *c, struct curlev_xfer *x)
{
	curl_multi_remove_handle(c->multi, x->easy);
	TAILQ_REMOVE(&c->active, x, entry);
	c->nactive--;
}

/* Reap every transfer libcurl reports as done. */
static void
curlev_check_done(struct curlev *c)
{
	struct curlev_xfer *x;
	CURLMsg *m;
	CURLcode rc;
	char *priv;
	int left;

	while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		rc = m->data.result;
		priv = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		x = (struct curlev_xfer *)priv;
		curlev_detach(c, x);
		curlev_finish(x, rc);
	}
}

/* Fail, from the loop, the transfers curlev_start could not add. */
static void
curlev_on_defer(evutil_socket_t fd, short what, void *arg)
{
	struct curlev *c = arg;
	struct curlev_xfer *x;

	while ((x = TAILQ_FIRST(&c->failed)) != NULL) {
		TAILQ_REMOVE(&c->failed, x, entry);
		curlev_finish(x, x->fail);
	}
}

/* Make the multi handle and its events; NULL with *cause. */
struct curlev *
curlev_create(struct event_base *base, char **cause)
{
	struct curlev *c;

	pthread_once(&curlev_once, curlev_global_init);
	if (curlev_global_rc != CURLE_OK) {
		xasprintf(cause, "libcurl could not be initialised: %s", curl_easy_strerror(curlev_global_rc));
		return NULL;
	}
	c = xcalloc(1, sizeof *c);
	c->base = base;
	TAILQ_INIT(&c->active);
	TAILQ_INIT(&c->failed);
	LIST_INIT(&c->socks);
	c->connect_ms = CURLEV_CONNECT_MS;
	c->total_ms = CURLEV_TOTAL_MS;
	if ((c->multi = curl_multi_init()) == NULL) {
		free(c);
		xasprintf(cause, "libcurl could not make a multi handle");
		return NULL;
	}
	c->timer = evtimer_new(base, curlev_on_timer, c);
	c->defer = event_new(base, -1, 0, curlev_on_defer, c);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, curlev_socket_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, curlev_timer_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)CURLEV_MAXCONNECTS);
	return c;
}

/* Abort what is in flight (callbacks get CURLE_ABORTED_BY_CALLBACK) and free all. */
void
curlev_destroy(struct curlev *c)
{
	struct curlev_xfer *x;
	struct curlev_sock *s;

	if (c == NULL)
		return;
	while ((x = TAILQ_FIRST(&c->active)) != NULL) {
		curlev_detach(c, x);
		curlev_finish(x, CURLE_ABORTED_BY_CALLBACK);
	}
	curlev_on_defer(-1, 0, c);
	curl_multi_cleanup(c->multi);
	while ((s = LIST_FIRST(&c->socks)) != NULL)
		curlev_sock_free(s);
	event_free(c->timer);
	event_free(c->defer);
	free(c->cafile);
	free(c);
}

/* Set the CA file and timeouts that new easy handles get. */
void
curlev_set_defaults(struct curlev *c, const char *cafile, long connect_ms, long total_ms)
{
	free(c->cafile);
	c->cafile = cafile != NULL && cafile[0] != '\0' ? xstrdup(cafile) : NULL;
	c->connect_ms = connect_ms;
	c->total_ms = total_ms;
}

/* A new easy handle with the defaults: no signals, timeouts, TLS verified, keep-alive. */
void
curlev_set_max_connections(struct curlev *c, long n)
{
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, n);
}

CURL *
curlev_easy(struct curlev *c)
{
	CURL *easy;

	if ((easy = curl_easy_init()) == NULL)
		log_fatal("curl", "Out of memory: libcurl could not make an easy handle.");
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, c->total_ms);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	if (c->cafile != NULL)
		curl_easy_setopt(easy, CURLOPT_CAINFO, c->cafile);
	return easy;
}

/* Start a transfer; its callback comes later from the loop, whatever happens. */
void
curlev_start(struct curlev *c, CURL *easy, struct curl_slist *headers, size_t max_body, curlev_cb cb,
    void *arg)
{
	struct curlev_xfer *x = xcalloc(1, sizeof *x);
	CURLMcode mc;

	x->c = c;
	x->easy = easy;
	x->headers = headers;
	x->max_body = max_body != 0 ? max_body : CURLEV_MAX_BODY;
	x->cb = cb;
	x->arg = arg;
	buf_init(&x->body);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, curlev_write);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, x->error);
	if (headers != NULL)
		curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
	if ((mc = curl_multi_add_handle(c->multi, easy)) != CURLM_OK) {
		log_warn("curl", "A transfer could not be started. error=\"%s\"", curl_multi_strerror(mc));
		x->fail = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
		TAILQ_INSERT_TAIL(&c->failed, x, entry);
		event_active(c->defer, EV_TIMEOUT, 1);
		return;
	}
	TAILQ_INSERT_TAIL(&c->active, x, entry);
	c->nactive++;
}

/* How many transfers are on the multi handle. */
int
curlev_active(struct curlev *c)
{
	return c->nactive;
}

int
curlev_retry_after(CURL *easy)
{
	curl_off_t s = 0;

	if (curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &s) != CURLE_OK || s < 0)
		return 0;
	return s > 86400 ? 86400 : (int)s;
}

void
curlev_http_only(CURL *easy)
{
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
}
