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
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

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
	close(p->efd);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->wake);
	free(p->server);
	free(p->user);
	free(p->password);
	free(p->helo);
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

	if (st == NULL || st->code == 0) {
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

/* A new session for one job, configured: server, TLS, timeouts, AUTH. */
static smtp_session_t
email_smtp_session(struct email_smtp *p, auth_context_t *auth)
{
	smtp_session_t s = smtp_create_session();
	size_t i;

	smtp_set_server(s, p->server);
	smtp_set_hostname(s, p->helo);
	smtp_starttls_enable(s, email_smtp_tls[p->starttls]);
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
	auth_context_t auth;
	smtp_session_t s = email_smtp_session(p, &auth);
	smtp_message_t m = smtp_add_message(s);
	smtp_recipient_t r;
	char err[256];

	smtp_set_reverse_path(m, job->from);
	r = smtp_add_recipient(m, job->to);
	smtp_set_message_str(m, job->data);
	if (!smtp_start_session(s)) {
		int e = smtp_errno();

		job->ok = 0;
		job->kind = CHANNEL_FAIL_TEMPORARY;
		/* libESMTP gives system errors as negative errno values */
		snprintf(job->code, sizeof job->code, e < 0 ? "errno-%d" : "esmtp-%d", e < 0 ? -e : e);
		job->text = xstrdup(smtp_strerror(e, err, sizeof err) != NULL ? err : "SMTP session failed.");
	} else
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
	p->cb = cb;
	p->arg = arg;
	p->server = xstrdup(c->server);
	p->user = xstrdup(c->user != NULL ? c->user : "");
	p->password = xstrdup(c->password != NULL ? c->password : "");
	p->helo = xstrdup(c->helo);
	p->starttls = c->starttls;
	p->timeout_ms = c->timeout_ms;
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
