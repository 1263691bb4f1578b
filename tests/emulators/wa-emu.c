/*
 * wa-emu.c: an emulator of Meta's WhatsApp Business Cloud API for linbat's
 * tests, benchmarks and demo. It answers sends (POST /{version}/{pnid}/
 * messages) with the documented success or Graph API error body, serves
 * media the two-step way (GET /{version}/{media_id}, then the signed URL),
 * and posts status and inbound webhooks signed with X-Hub-Signature-256 to
 * linbatd. A control API under /_emu/ (loopback peers only) injects faults,
 * reports counts, registers media and triggers inbound messages. README.md
 * in this folder documents the shapes.
 *
 * Its event loops never block, so that a benchmark measures linbatd and not
 * the emulator; --threads runs several, one lock guarding the shared state.
 * It does not use linbat's util layer on purpose: a test double sharing the
 * HMAC or JSON helpers of the code under test would agree with that code
 * when both are wrong.
 *
 * This file holds the state, the routes and start-up; wa-emu-send.c the
 * send endpoint, wa-emu-hook.c the webhooks, wa-emu-media.c media,
 * wa-emu-control.c faults and counts, wa-emu-util.c what they all call on,
 * and wa-emu.h what they share.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <jansson.h>
#include <openssl/rand.h>

#include "wa-emu.h"

/* The emulator's state; struct emu_state in wa-emu.h says how it is locked. */
struct emu_state emu;

/* The worker whose loop runs on this thread. */
__thread struct emu_worker *emu_self;

static const struct emu_route emu_routes[] = {
	{ EVHTTP_REQ_POST, { "*", "*", "messages" }, 3, emu_send, 0 },
	{ EVHTTP_REQ_GET, { "*", "*" }, 2, emu_media_get, 0 },
	{ EVHTTP_REQ_GET, { "_emu", "media", "*" }, 3, emu_media_bytes, 0 },
	{ EVHTTP_REQ_POST, { "_emu", "faults" }, 2, emu_faults_set, 1 },
	{ EVHTTP_REQ_GET, { "_emu", "faults" }, 2, emu_faults_get, 1 },
	{ EVHTTP_REQ_GET, { "_emu", "stats" }, 2, emu_stats_get, 1 },
	{ EVHTTP_REQ_POST, { "_emu", "reset" }, 2, emu_reset, 1 },
	{ EVHTTP_REQ_POST, { "_emu", "media" }, 2, emu_media_add, 1 },
	{ EVHTTP_REQ_POST, { "_emu", "inbound" }, 2, emu_inbound, 1 },
};

/* Split a path into at most EMU_MAX_SEGS segments (in buf); -1 if longer. */
static int
emu_split(const char *path, char *buf, size_t buflen, char **seg)
{
	int n = 0;
	char *p;

	if (path == NULL || strlen(path) >= buflen)
		return -1;
	strcpy(buf, path[0] == '/' ? path + 1 : path);
	if (buf[0] == '\0')
		return 0;
	for (p = buf; n < EMU_MAX_SEGS; p++) {
		seg[n++] = p;
		if ((p = strchr(p, '/')) == NULL)
			return n;
		*p = '\0';
	}
	return -1;
}

/* Whether a route matches a method and split path. */
static int
emu_route_match(const struct emu_route *r, enum evhttp_cmd_type method,
    char **seg, int nseg)
{
	int i;

	if (r->method != method || r->nsegs != nseg)
		return 0;
	for (i = 0; i < nseg; i++) {
		if (strcmp(r->segs[i], "*") != 0) {
			if (strcmp(r->segs[i], seg[i]) != 0)
				return 0;
		} else if (seg[i][0] == '\0' || strcmp(seg[i], "_emu") == 0)
			return 0;	/* "*" never stands for the control API */
	}
	return 1;
}

/* The server's one callback: find the route and call it. */
static void
emu_dispatch(struct evhttp_request *req, EMU_UNUSED void *arg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	char buf[1024], *seg[EMU_MAX_SEGS];
	int nseg = emu_split(path, buf, sizeof buf, seg);
	size_t i;

	emu_lock();
	for (i = 0; nseg > 0 && i < sizeof emu_routes / sizeof emu_routes[0]; i++) {
		if (emu_route_match(&emu_routes[i], method, seg, nseg))
			break;
	}
	if (nseg > 0 && i < sizeof emu_routes / sizeof emu_routes[0]) {
		if (emu_routes[i].control && !emu_peer_is_loopback(req))
			emu_reply_control_error(req, 403, "control API is loopback only");
		else
			emu_routes[i].fn(req, seg);
	} else if (nseg > 0 && strcmp(seg[0], "_emu") == 0)
		emu_reply_control_error(req, 404, "no such control endpoint");
	else
		emu_reply_error(req, emu_error_fmt(2500, 0, NULL, "Unknown path "
		    "components: %.200s", path != NULL ? path : ""));
	emu_unlock();
}

/* Open the webhook target and its pool of keep-alive connections. */
static void
emu_hook_init(const char *url, int nconns)
{
	const char *host, *path, *query;
	int port, i, n;
	char buf[512];

	if ((emu.hook_uri = evhttp_uri_parse(url)) == NULL ||
	    (host = evhttp_uri_get_host(emu.hook_uri)) == NULL ||
	    evhttp_uri_get_scheme(emu.hook_uri) == NULL ||
	    strcmp(evhttp_uri_get_scheme(emu.hook_uri), "http") != 0)
		emu_fatal("--webhook must be an http:// URL: %s", url);
	if (strcmp(host, "127.0.0.1") != 0 && strcmp(host, "localhost") != 0 &&
	    strcmp(host, "::1") != 0)
		emu_fatal("--webhook must be on loopback: %s", url);
	port = evhttp_uri_get_port(emu.hook_uri);
	port = port > 0 ? port : 80;
	path = evhttp_uri_get_path(emu.hook_uri);
	query = evhttp_uri_get_query(emu.hook_uri);
	snprintf(buf, sizeof buf, "%s%s%s", path != NULL && *path ? path : "/",
	    query != NULL ? "?" : "", query != NULL ? query : "");
	emu.hook_path = emu_strdup(buf);
	snprintf(buf, sizeof buf, "%s:%d", host, port);
	emu.hook_host = emu_strdup(buf);
	for (n = 0; n < emu.nworkers; n++) {
		for (i = 0; i < nconns; i++) {
			emu.workers[n].hook_conns[i] = evhttp_connection_base_new(
			    emu.workers[n].base, NULL, host, (ev_uint16_t)port);
			evhttp_connection_set_timeout(emu.workers[n].hook_conns[i], 10);
		}
	}
	emu.hook_nconns = nconns;
}

/* Whether a listen host is a loopback address. */
static int
emu_host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

/* Write the bound port to a file atomically (temporary file, then rename). */
static void
emu_write_port_file(const char *path, int port)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
	if ((f = fopen(tmp, "w")) == NULL)
		emu_fatal("Cannot write %s: %s.", tmp, strerror(errno));
	fprintf(f, "%d\n", port);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		emu_fatal("Cannot write %s: %s.", path, strerror(errno));
}

/* Bind the HTTP server to a loopback host:port (port 0: any free port). */
static void
emu_listen(const char *addr, const char *port_file)
{
	struct evhttp_bound_socket *bound;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof ss;
	char host[256], *colon;
	long port;
	int i, fd;

	if (strlen(addr) >= sizeof host || (colon = strrchr(addr, ':')) == NULL)
		emu_fatal("--listen must be HOST:PORT, not %s", addr);
	snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host) - 2);
		host[strlen(host) - 2] = '\0';
	}
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof host, "127.0.0.1");
	port = strtol(colon + 1, NULL, 10);
	if (!emu_host_is_loopback(host) || port < 0 || port > 65535)
		emu_fatal("--listen must be a loopback HOST:PORT, not %s", addr);
	bound = evhttp_bind_socket_with_handle(emu.workers[0].http, host,
	    (ev_uint16_t)port);
	if (bound == NULL)
		emu_fatal("Cannot listen on %s: %s.", addr, strerror(errno));
	fd = evhttp_bound_socket_get_fd(bound);
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0)
		emu_fatal("getsockname failed: %s.", strerror(errno));
	/* Other workers accept on duplicates: each listener closes its own. */
	for (i = 1; i < emu.nworkers; i++) {
		if (evhttp_accept_socket(emu.workers[i].http, dup(fd)) != 0)
			emu_fatal("Cannot share the listening socket: %s.",
			    strerror(errno));
	}
	emu.port = ntohs(ss.ss_family == AF_INET6 ?
	    ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port);
	if (port_file != NULL)
		emu_write_port_file(port_file, emu.port);
	printf("listening %d\n", emu.port);
	fflush(stdout);
}

/* Stop the loop on SIGTERM or SIGINT. */
static void
emu_on_signal(evutil_socket_t sig, EMU_UNUSED short what,
    EMU_UNUSED void *arg)
{
	emu_log("Stopping on signal %d.", (int)sig);
	event_base_loopexit(emu.base, NULL);
}

/* Free a stopped worker: its connections, pending work, server and loop. */
static void
emu_worker_free(struct emu_worker *w)
{
	int i;

	for (i = 0; i < emu.hook_nconns; i++)
		evhttp_connection_free(w->hook_conns[i]);
	while (!TAILQ_EMPTY(&w->held))
		emu_held_free(TAILQ_FIRST(&w->held));
	while (!TAILQ_EMPTY(&w->jobs))
		emu_job_free(TAILQ_FIRST(&w->jobs));
	evhttp_free(w->http);
	event_base_free(w->base);
}

/* Free everything and flush the record (the clean exit path). */
static void
emu_shutdown(void)
{
	struct emu_media *m;
	int i;

	emu.stopping = 1;
	event_free(emu.flush_ev);
	event_free(emu.sig_ev[0]);
	event_free(emu.sig_ev[1]);
	for (i = emu.nworkers - 1; i >= 0; i--)
		emu_worker_free(&emu.workers[i]);
	while ((m = TAILQ_FIRST(&emu.media)) != NULL) {
		TAILQ_REMOVE(&emu.media, m, entry);
		free(m->mime);
		free(m->data);
		free(m);
	}
	if (emu.record != NULL && fclose(emu.record) != 0)
		emu_log("Could not write the record file: %s.", strerror(errno));
	emu_faults_clear();
	if (emu.hook_uri != NULL)
		evhttp_uri_free(emu.hook_uri);
	free(emu.hook_path);
	free(emu.hook_host);
	pthread_mutex_destroy(&emu.lock);
	libevent_global_shutdown();
}

/* Print the usage and exit with status (0 for --help, 2 for misuse). */
static void __attribute__((noreturn))
emu_usage(int status)
{
	fprintf(status == 0 ? stdout : stderr,
	    "usage: wa-emu --listen 127.0.0.1:PORT [--token TOKEN] [--record FILE]\n"
	    "              [--webhook URL --app-secret SECRET] [--status-delay-ms N]\n"
	    "              [--port-file FILE] [--waba-id ID] [--phone-number-id ID]\n"
	    "              [--display-phone NUMBER] [--webhook-conns N] [--threads N]\n");
	exit(status);
}

static const struct option emu_options[] = {
	{ "listen", required_argument, NULL, 'l' },
	{ "token", required_argument, NULL, 't' },
	{ "record", required_argument, NULL, 'r' },
	{ "webhook", required_argument, NULL, 'w' },
	{ "app-secret", required_argument, NULL, 's' },
	{ "status-delay-ms", required_argument, NULL, 'd' },
	{ "port-file", required_argument, NULL, 'p' },
	{ "waba-id", required_argument, NULL, 'W' },
	{ "phone-number-id", required_argument, NULL, 'P' },
	{ "display-phone", required_argument, NULL, 'D' },
	{ "webhook-conns", required_argument, NULL, 'c' },
	{ "threads", required_argument, NULL, 'T' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Parse an integer option in [lo, hi] or exit with the usage. */
static int
emu_opt_int(const char *name, const char *s, int lo, int hi)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "wa-emu: --%s must be an integer from %d to %d\n",
		    name, lo, hi);
		emu_usage(2);
	}
	return (int)v;
}

/* Seed the fault PRNG, the wamid salt and the URL-signing key. */
static void
emu_seed(void)
{
	uint64_t r[2];

	if (RAND_bytes((unsigned char *)r, sizeof r) != 1 ||
	    RAND_bytes(emu.key, sizeof emu.key) != 1)
		emu_fatal("Cannot get random bytes from OpenSSL.");
	emu.salt = r[0];
	emu.rng = r[1] | 1;
}

/* Open the record file (truncated) with a large buffer. */
static void
emu_record_open(const char *path)
{
	struct timeval tv = emu_tv(EMU_FLUSH_MS);

	if ((emu.record = fopen(path, "w")) == NULL)
		emu_fatal("Cannot open the record file %s: %s.", path,
		    strerror(errno));
	setvbuf(emu.record, NULL, _IOFBF, 1 << 20);
	emu.flush_ev = event_new(emu.base, -1, EV_PERSIST, emu_record_flush, NULL);
	evtimer_add(emu.flush_ev, &tv);
}

/* Create a worker's event loop and HTTP server. */
static void
emu_worker_init(struct emu_worker *w)
{
	struct event_config *cfg = event_config_new();

	/*
	 * Coalesce evhttp's read/write toggles: half the epoll_ctl calls. Only
	 * with one worker: libevent warns against it with dup()ed fds (workers
	 * share the listener so), and a deferred epoll_ctl on a closed fd would
	 * race with another thread reusing the number.
	 */
	if (emu.nworkers == 1)
		event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	w->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (w->base == NULL || (w->http = evhttp_new(w->base)) == NULL)
		emu_fatal("Cannot create an event loop.");
	evhttp_set_max_body_size(w->http, EMU_MAX_BODY);
	evhttp_set_timeout(w->http, 60);
	evhttp_set_gencb(w->http, emu_dispatch, NULL);
	TAILQ_INIT(&w->jobs);
	TAILQ_INIT(&w->held);
}

/* Set up the lock, the workers, the server, signals and timers. */
static void
emu_start(const char *addr, const char *port_file, const char *record,
    const char *webhook, int nconns)
{
	pthread_mutexattr_t attr;
	int i;

	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&emu.lock, &attr);
	pthread_mutexattr_destroy(&attr);
	/* One worker needs no locks in libevent (nor their cost). */
	if (emu.nworkers > 1 && evthread_use_pthreads() != 0)
		emu_fatal("Cannot enable libevent's thread support.");
	for (i = 0; i < emu.nworkers; i++)
		emu_worker_init(&emu.workers[i]);
	emu.base = emu.workers[0].base;
	emu_self = &emu.workers[0];
	emu_listen(addr, port_file);
	if (record != NULL)
		emu_record_open(record);
	else
		emu.flush_ev = event_new(emu.base, -1, 0, emu_record_flush, NULL);
	if (webhook != NULL)
		emu_hook_init(webhook, nconns);
	emu.sig_ev[0] = evsignal_new(emu.base, SIGTERM, emu_on_signal, NULL);
	emu.sig_ev[1] = evsignal_new(emu.base, SIGINT, emu_on_signal, NULL);
	evsignal_add(emu.sig_ev[0], NULL);
	evsignal_add(emu.sig_ev[1], NULL);
	emu_log("Listening. addr=127.0.0.1:%d threads=%d record=%s webhook=%s",
	    emu.port, emu.nworkers, record != NULL ? record : "-",
	    webhook != NULL ? webhook : "-");
}

/* Run one worker's loop on its own thread. */
static void *
emu_worker_run(void *arg)
{
	emu_self = arg;
	event_base_dispatch(emu_self->base);
	return NULL;
}

/* Run every worker until a signal stops the first, then stop the others. */
static void
emu_run(void)
{
	int i;

	for (i = 1; i < emu.nworkers; i++) {
		if (pthread_create(&emu.workers[i].tid, NULL, emu_worker_run,
		    &emu.workers[i]) != 0)
			emu_fatal("Cannot start a worker thread.");
	}
	event_base_dispatch(emu.base);
	for (i = 1; i < emu.nworkers; i++) {
		event_base_loopexit(emu.workers[i].base, NULL);
		pthread_join(emu.workers[i].tid, NULL);
	}
}

int
main(int argc, char **argv)
{
	const char *addr = NULL, *port_file = NULL, *record = NULL;
	const char *webhook = NULL;
	int c, nconns = 8;

	emu.waba_id = "102290129340398";
	emu.phone_number_id = "106540352242922";
	emu.display_phone = "6281100000000";
	emu.status_delay_ms = 100;
	emu.nworkers = 1;
	TAILQ_INIT(&emu.media);
	while ((c = getopt_long(argc, argv, "h", emu_options, NULL)) != -1) {
		switch (c) {
		case 'l': addr = optarg; break;
		case 't': emu.token = optarg; break;
		case 'r': record = optarg; break;
		case 'w': webhook = optarg; break;
		case 's': emu.app_secret = optarg; break;
		case 'p': port_file = optarg; break;
		case 'W': emu.waba_id = optarg; break;
		case 'P': emu.phone_number_id = optarg; break;
		case 'D': emu.display_phone = optarg; break;
		case 'd':
			emu.status_delay_ms = emu_opt_int("status-delay-ms", optarg,
			    -1, 3600000);
			break;
		case 'c':
			nconns = emu_opt_int("webhook-conns", optarg, 1,
			    EMU_HOOK_CONNS_MAX);
			break;
		case 'T':
			emu.nworkers = emu_opt_int("threads", optarg, 1,
			    EMU_MAX_THREADS);
			break;
		case 'h': emu_usage(0);
		default: emu_usage(2);
		}
	}
	if (addr == NULL || optind != argc || (webhook != NULL) !=
	    (emu.app_secret != NULL))
		emu_usage(2);
	signal(SIGPIPE, SIG_IGN);
	emu_seed();
	emu_start(addr, port_file, record, webhook, nconns);
	emu_run();
	emu_shutdown();
	return 0;
}
