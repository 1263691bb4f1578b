/*
 * email-smtp.c: a small pool of worker threads that send mail with libESMTP.
 * smtp_start_session() runs the whole SMTP dialogue and blocks, so it never
 * runs on the loop thread: the loop queues a job, a worker sends it and reads
 * the recipient's own status (libESMTP reports success even when the
 * recipient was refused), puts the job on the done list and writes to an
 * eventfd; the loop's event on that eventfd hands each done job to the
 * adapter, which makes the upcall. The pool is reference-counted so that
 * destroy never waits for a worker stuck in a slow dialogue: the last worker
 * to leave frees it.
 *
 * TLS: libESMTP gets an SSL_CTX of ours that trusts smtp_ca_file (or the
 * system's CAs); libESMTP itself refuses a certificate that does not verify
 * or does not name the server, and tells us why through its event callback,
 * which also says when a required STARTTLS is not offered: both reasons go
 * into the job's error instead of libESMTP's bare error number.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <auth-client.h>
#include <libesmtp.h>

#include "email.h"
#include "log.h"
#include "util.h"

struct email_smtp {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct email_job *queue, **queue_tail; /* waiting for a worker */
	struct email_job *done;                /* finished, for the loop */
	int running;                           /* jobs a worker holds */
	int refs;                              /* the loop's one, and one per worker */
	int closing;
	int efd;
	struct event *ev;
	email_smtp_cb cb;
	void *arg;
	char *server, *user, *password, *helo;
	enum email_starttls starttls;
	long timeout_ms;
	SSL_CTX *tls; /* NULL when STARTTLS is disabled */
};

/* What one session's events said, for the job's error. */
struct email_smtp_events {
	const char *code;  /* NULL: nothing went wrong on TLS */
	char text[300];
	int in_auth;       /* the last command written was AUTH or an answer to its 334 */
	int auth_cont;     /* the server answered 334: the next write still belongs to AUTH */
	int auth_code;     /* the last AUTH refusal (0: none, or a later AUTH succeeded) */
	char auth_text[200];
};

/* libESMTP's STARTTLS option for ours. */
static const enum starttls_option email_smtp_tls[] = {
	[EMAIL_STARTTLS_REQUIRED] = Starttls_REQUIRED,
	[EMAIL_STARTTLS_ENABLED] = Starttls_ENABLED,
	[EMAIL_STARTTLS_DISABLED] = Starttls_DISABLED,
};

/* The phases whose timeouts are set. */
static const int email_smtp_phases[] = {
	Timeout_GREETING, Timeout_ENVELOPE, Timeout_DATA, Timeout_TRANSFER, Timeout_DATA2,
};

static pthread_once_t email_smtp_once = PTHREAD_ONCE_INIT;

/* Start libESMTP's SASL client once per process. */
static void
email_smtp_auth_init(void)
{
	auth_client_init();
}

void
email_job_free(struct email_job *job)
{
	if (job == NULL)
		return;
	free(job->from);
	free(job->to);
	free(job->data);
	free(job->message_id);
	free(job->text);
	free(job);
}

/* Drop one reference; the last frees the pool. Called with the lock held; unlocks. */
static void
email_smtp_unref(struct email_smtp *p)
{
	int last = --p->refs == 0;

	pthread_mutex_unlock(&p->lock);
	if (!last)
		return;
	if (p->efd >= 0)
		close(p->efd);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->wake);
	free(p->server);
	free(p->user);
	free(p->password);
	free(p->helo);
	SSL_CTX_free(p->tls);
	free(p);
}

/* SASL asks for the user name and password (never logged). */
static int
email_smtp_interact(auth_client_request_t req, char **result, int fields, void *arg)
{
	struct email_smtp *p = arg;
	int i;

	for (i = 0; i < fields; i++) {
		if (req[i].flags & AUTH_USER)
			result[i] = p->user;
		else if (req[i].flags & AUTH_PASS)
			result[i] = p->password;
		else
			return 0;
	}
	return 1;
}

/* Set the job's failure from an SMTP reply code (5xx permanent, else temporary). */
static void
email_smtp_fail(struct email_job *job, int code, const char *text)
{
	job->ok = 0;
	job->kind = code >= 500 && code < 600 ? CHANNEL_FAIL_PERMANENT : CHANNEL_FAIL_TEMPORARY;
	snprintf(job->code, sizeof job->code, "smtp-%d", code);
	job->text = xstrdup(text != NULL && *text != '\0' ? text : "The SMTP server refused the mail.");
	job->text[strcspn(job->text, "\r\n")] = '\0';
}

/* Read what the dialogue said about the message and its one recipient. */
static void
email_smtp_result(struct email_job *job, smtp_message_t m, smtp_recipient_t r)
{
	const smtp_status_t *st = smtp_recipient_status(r);
	const smtp_status_t *ms = smtp_message_transfer_status(m);
	const smtp_status_t *rp = smtp_reverse_path_status(m);

	if ((st == NULL || st->code == 0) && rp != NULL && rp->code != 0 && (rp->code < 200 || rp->code >= 300))
		email_smtp_fail(job, rp->code, rp->text); /* MAIL FROM refused: no recipient was tried */
	else if (st == NULL || st->code == 0) {
		email_smtp_fail(job, ms != NULL ? ms->code : 0, ms != NULL ? ms->text : NULL);
		if (ms == NULL || ms->code == 0)
			job->kind = CHANNEL_FAIL_TEMPORARY;
	} else if (st->code < 200 || st->code >= 300)
		email_smtp_fail(job, st->code, st->text);
	else if (ms != NULL && (ms->code < 200 || ms->code >= 300))
		email_smtp_fail(job, ms->code, ms->text);
	else
		job->ok = 1;
}

/*
 * libESMTP's events (on the worker): keep why TLS failed. Returning with *ok
 * left at 0 makes libESMTP quit the session before MAIL FROM or AUTH.
 */
static void
email_smtp_event(smtp_session_t s, int event, void *arg, ...)
{
	struct email_smtp_events *ev = arg;
	va_list ap;
	long verify;

	(void)s;
	va_start(ap, arg);
	switch (event) {
	case SMTP_EV_EXTNA_STARTTLS:
		ev->code = "tls-unavailable";
		snprintf(ev->text, sizeof ev->text,
		    "The SMTP server does not offer STARTTLS and starttls is required: nothing was sent.");
		break;
	case SMTP_EV_INVALID_PEER_CERTIFICATE:
		verify = va_arg(ap, long);
		ev->code = "tls-certificate";
		snprintf(ev->text, sizeof ev->text, "The SMTP server's certificate does not verify: %s.",
		    X509_verify_cert_error_string(verify));
		break;
	case SMTP_EV_NO_PEER_CERTIFICATE:
		ev->code = "tls-certificate";
		snprintf(ev->text, sizeof ev->text, "The SMTP server showed no certificate.");
		break;
	case SMTP_EV_WRONG_PEER_CERTIFICATE:
		ev->code = "tls-certificate";
		snprintf(ev->text, sizeof ev->text, "The SMTP server's certificate does not name the server.");
		break;
	case SMTP_EV_WEAK_CIPHER:
		ev->code = "tls-weak";
		snprintf(ev->text, sizeof ev->text, "The SMTP server's TLS cipher is too weak.");
		break;
	default:
		break;
	}
	va_end(ap);
}

/*
 * libESMTP's protocol monitor (on the worker): it only tells whether the
 * server refused AUTH and with what, which libESMTP keeps to itself (it goes
 * on to MAIL FROM, which the server then refuses for want of AUTH). What we
 * write is never kept: it carries the credentials.
 */
static void
email_smtp_monitor(const char *buf, int len, int writing, void *arg)
{
	struct email_smtp_events *ev = arg;
	int code;

	if (writing == SMTP_CB_WRITING) {
		ev->in_auth = (len >= 5 && strncasecmp(buf, "AUTH ", 5) == 0) || ev->auth_cont;
		ev->auth_cont = 0;
		return;
	}
	if (writing != SMTP_CB_READING || !ev->in_auth || len < 3 || !isdigit((unsigned char)buf[0]) ||
	    !isdigit((unsigned char)buf[1]) || !isdigit((unsigned char)buf[2]))
		return;
	code = (buf[0] - '0') * 100 + (buf[1] - '0') * 10 + (buf[2] - '0');
	if (code == 334) {
		ev->auth_cont = 1;
		return;
	}
	ev->in_auth = 0;
	if (code >= 200 && code < 300) {
		ev->auth_code = 0;
		return;
	}
	ev->auth_code = code;
	snprintf(ev->auth_text, sizeof ev->auth_text, "SMTP AUTH was refused: %.*s", len < 150 ? len : 150, buf);
	ev->auth_text[strcspn(ev->auth_text, "\r\n")] = '\0';
}

/* The SSL_CTX the sessions use: TLS 1.2 or later, trusting ca_file or the system's CAs. */
static SSL_CTX *
email_smtp_tls_ctx(const char *ca_file, char **cause)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int ok;

	if (ctx == NULL) {
		xasprintf(cause, "cannot make a TLS context for SMTP");
		return NULL;
	}
	/* TLS 1.2 only: libESMTP 1.1 waits for the server's answer to EHLO after a
	 * TLS 1.3 handshake until the timeout, when the server's session ticket
	 * (sent after the handshake) comes first. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	/* The handshake completes and libESMTP judges the verification result
	 * itself (SSL_get_verify_result), so that the reason reaches us. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	ERR_clear_error();
	if (ca_file != NULL && *ca_file != '\0')
		ok = SSL_CTX_load_verify_locations(ctx, ca_file, NULL);
	else
		ok = SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		xasprintf(cause, "cannot load the CAs of smtp_ca_file %s: %s", ca_file,
		    ERR_reason_error_string(ERR_peek_last_error()) != NULL ?
			ERR_reason_error_string(ERR_peek_last_error()) : "unknown error");
		ERR_clear_error();
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* A new session for one job, configured: server, TLS, timeouts, AUTH. */
static smtp_session_t
email_smtp_session(struct email_smtp *p, auth_context_t *auth, struct email_smtp_events *ev)
{
	smtp_session_t s = smtp_create_session();
	size_t i;

	smtp_set_server(s, p->server);
	smtp_set_hostname(s, p->helo);
	smtp_set_eventcb(s, email_smtp_event, ev);
	if (p->user[0] != '\0')
		smtp_set_monitorcb(s, email_smtp_monitor, ev, 0);
	smtp_starttls_enable(s, email_smtp_tls[p->starttls]);
	if (p->tls != NULL)
		smtp_starttls_set_ctx(s, p->tls);
	for (i = 0; i < nitems(email_smtp_phases); i++)
		smtp_set_timeout(s, email_smtp_phases[i] | Timeout_OVERRIDE_RFC2822_MINIMUM, p->timeout_ms);
	*auth = NULL;
	if (p->user[0] != '\0') {
		*auth = auth_create_context();
		auth_set_mechanism_flags(*auth, AUTH_PLUGIN_PLAIN, 0);
		auth_set_interact_cb(*auth, email_smtp_interact, p);
		smtp_auth_set_context(s, *auth);
	}
	return s;
}

/* Send one job (on a worker thread): the whole blocking dialogue. */
static void
email_smtp_run(struct email_smtp *p, struct email_job *job)
{
	struct email_smtp_events ev = { .code = NULL };
	auth_context_t auth;
	smtp_session_t s = email_smtp_session(p, &auth, &ev);
	smtp_message_t m = smtp_add_message(s);
	smtp_recipient_t r;
	char err[256];
	int done;

	smtp_set_reverse_path(m, job->from);
	r = smtp_add_recipient(m, job->to);
	smtp_set_message_str(m, job->data);
	done = smtp_start_session(s);
	if (ev.code != NULL) { /* TLS refused: the session ended before MAIL FROM */
		job->ok = 0;
		job->kind = CHANNEL_FAIL_TEMPORARY;
		snprintf(job->code, sizeof job->code, "%s", ev.code);
		job->text = xstrdup(ev.text);
	} else if (!done) {
		int e = smtp_errno();

		job->ok = 0;
		job->kind = CHANNEL_FAIL_TEMPORARY;
		/* libESMTP gives system errors as negative errno values */
		snprintf(job->code, sizeof job->code, e < 0 ? "errno-%d" : "esmtp-%d", e < 0 ? -e : e);
		job->text = xstrdup(smtp_strerror(e, err, sizeof err) != NULL ? err : "SMTP session failed.");
	} else if (ev.auth_code != 0)
		email_smtp_fail(job, ev.auth_code, ev.auth_text);
	else
		email_smtp_result(job, m, r);
	smtp_destroy_session(s);
	if (auth != NULL)
		auth_destroy_context(auth);
}

/* Tell the loop that a job is done. */
static void
email_smtp_post(struct email_smtp *p)
{
	uint64_t one = 1;

	while (write(p->efd, &one, sizeof one) < 0 && errno == EINTR)
		;
}

/* A worker: take jobs until the pool closes. */
static void *
email_smtp_worker(void *arg)
{
	struct email_smtp *p = arg;
	struct email_job *job;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->queue == NULL && !p->closing)
			pthread_cond_wait(&p->wake, &p->lock);
		if (p->closing)
			break;
		job = p->queue;
		if ((p->queue = job->next) == NULL)
			p->queue_tail = &p->queue;
		p->running++;
		pthread_mutex_unlock(&p->lock);
		email_smtp_run(p, job);
		pthread_mutex_lock(&p->lock);
		p->running--;
		if (p->closing) {
			email_job_free(job);
			break;
		}
		job->next = p->done;
		p->done = job;
		email_smtp_post(p);
	}
	email_smtp_unref(p);
	return NULL;
}

/* The eventfd fired: hand every done job to the adapter, on the loop. */
static void
email_smtp_ready(evutil_socket_t fd, short what, void *arg)
{
	struct email_smtp *p = arg;
	struct email_job *list, *rev = NULL, *next;
	uint64_t n;

	(void)what;
	while (read(fd, &n, sizeof n) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&p->lock);
	list = p->done;
	p->done = NULL;
	pthread_mutex_unlock(&p->lock);
	for (; list != NULL; list = next) { /* oldest first */
		next = list->next;
		list->next = rev;
		rev = list;
	}
	for (; rev != NULL; rev = next) {
		next = rev->next;
		rev->next = NULL;
		p->cb(rev, p->arg);
	}
}

/* Start the threads; on failure those already started are told to close. */
static int
email_smtp_threads(struct email_smtp *p, int workers, char **cause)
{
	pthread_t t;
	int i, rc;

	for (i = 0; i < workers; i++) {
		pthread_mutex_lock(&p->lock);
		p->refs++;
		pthread_mutex_unlock(&p->lock);
		if ((rc = pthread_create(&t, NULL, email_smtp_worker, p)) != 0) {
			pthread_mutex_lock(&p->lock);
			p->refs--;
			pthread_mutex_unlock(&p->lock);
			xasprintf(cause, "cannot start an SMTP worker thread: %s", strerror(rc));
			return -1;
		}
		pthread_detach(t);
	}
	return 0;
}

struct email_smtp *
email_smtp_create(struct event_base *base, const struct email_smtp_conf *c, int workers, email_smtp_cb cb,
    void *arg, char **cause)
{
	struct email_smtp *p = xcalloc(1, sizeof *p);

	pthread_once(&email_smtp_once, email_smtp_auth_init);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	p->queue_tail = &p->queue;
	p->refs = 1;
	p->efd = -1;
	p->cb = cb;
	p->arg = arg;
	p->server = xstrdup(c->server);
	p->user = xstrdup(c->user != NULL ? c->user : "");
	p->password = xstrdup(c->password != NULL ? c->password : "");
	p->helo = xstrdup(c->helo);
	p->starttls = c->starttls;
	p->timeout_ms = c->timeout_ms;
	if (p->starttls != EMAIL_STARTTLS_DISABLED && (p->tls = email_smtp_tls_ctx(c->ca_file, cause)) == NULL) {
		pthread_mutex_lock(&p->lock);
		email_smtp_unref(p);
		return NULL;
	}
	if ((p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		xasprintf(cause, "cannot make the SMTP workers' eventfd: %s", strerror(errno));
		pthread_mutex_lock(&p->lock);
		email_smtp_unref(p);
		return NULL;
	}
	p->ev = event_new(base, p->efd, EV_READ | EV_PERSIST, email_smtp_ready, p);
	event_add(p->ev, NULL);
	if (email_smtp_threads(p, workers, cause) != 0) {
		email_smtp_destroy(p);
		return NULL;
	}
	return p;
}

void
email_smtp_submit(struct email_smtp *p, struct email_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&p->lock);
	*p->queue_tail = job;
	p->queue_tail = &job->next;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
}

int
email_smtp_busy(struct email_smtp *p)
{
	struct email_job *j;
	int n;

	pthread_mutex_lock(&p->lock);
	n = p->running;
	for (j = p->queue; j != NULL; j = j->next)
		n++;
	for (j = p->done; j != NULL; j = j->next)
		n++;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void
email_smtp_cancel(struct email_smtp *p)
{
	struct email_job *list, *next;

	pthread_mutex_lock(&p->lock);
	list = p->queue;
	p->queue = NULL;
	p->queue_tail = &p->queue;
	pthread_mutex_unlock(&p->lock);
	for (; list != NULL; list = next) {
		next = list->next;
		list->next = NULL;
		list->ok = 0;
		list->kind = CHANNEL_FAIL_TEMPORARY;
		snprintf(list->code, sizeof list->code, "stopped");
		list->text = xstrdup("The email channel stopped before the mail was sent.");
		p->cb(list, p->arg);
	}
}

void
email_smtp_destroy(struct email_smtp *p)
{
	struct email_job *j, *next;

	if (p == NULL)
		return;
	event_free(p->ev);
	pthread_mutex_lock(&p->lock);
	p->closing = 1;
	for (j = p->queue; j != NULL; j = next) {
		next = j->next;
		email_job_free(j);
	}
	for (j = p->done; j != NULL; j = next) {
		next = j->next;
		email_job_free(j);
	}
	p->queue = p->done = NULL;
	pthread_cond_broadcast(&p->wake);
	email_smtp_unref(p);
}
