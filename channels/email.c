/*
 * email.c: the email adapter (type "email"). Sends: the mail is built with
 * GMime on the loop (our Message-ID, Reply-To with the conversation's token,
 * In-Reply-To/References to the investor's last mail, Auto-Submitted on
 * automated mail) and handed to the SMTP worker pool (email-smtp.c); its
 * result comes back on the loop and becomes the one upcall. Receives: a
 * timer polls IMAP through curlev (never blocking): STATUS for UIDVALIDITY,
 * UID SEARCH UNSEEN plus the UIDs above the last one committed (a FETCH marks
 * a mail seen by itself), then each mail in UID order is fetched, parsed,
 * stored by linbat.ingest_email (or linbat.email_bounce for a DSN) and only
 * after that commit flagged \Seen. Any failure ends the round; the next one
 * takes up where the database says it stopped, and ingest is idempotent on
 * the Message-ID, so nothing is lost and nothing is taken twice.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "curlev.h"
#include "db.h"
#include "email.h"
#include "log.h"
#include "util.h"

/* The largest mail fetched. */
#define EMAIL_FETCH_MAX (64 * 1024 * 1024)

/* One round of the IMAP poll; let go of (em NULL) when the instance goes. */
struct email_poll {
	struct email *em;
	long long uidvalidity;
	long long last_uid;
	long long *uids;
	size_t nuids, next;
	int searches; /* searches still to answer */
	long long cur;
};

struct email {
	struct channel *ch;
	char *from, *domain, *reply_to;
	char *imap_base, *imap_mailbox, *imap_user, *imap_password;
	size_t max_attachment;
	long poll_ms;
	struct email_smtp_conf smtp_conf;
	char *smtp_server, *smtp_user, *smtp_password, *smtp_ca_file;
	int workers;
	struct email_smtp *smtp;
	struct email_poll *poll;    /* the round in progress, or NULL */
	struct event *timer;
	int stopping, stopped;
};

static const struct conf_key email_keys[] = {
	{ NULL, "smtp_server", CONF_ADDR, "127.0.0.1:25", 0, 0, NULL, 0,
	  "The SMTP submission server as host:port; only STARTTLS is spoken, never TLS on connect." },
	{ NULL, "smtp_user", CONF_STRING, "", 0, 0, NULL, 0,
	  "The SMTP AUTH user (PLAIN or LOGIN); empty: no AUTH." },
	{ NULL, "smtp_password", CONF_STRING, "", 0, 0, NULL, CONF_SECRET,
	  "The SMTP AUTH password." },
	{ NULL, "starttls", CONF_ENUM, "required", 0, 0, "required|enabled|disabled", 0,
	  "required: give up on a server without STARTTLS; enabled: use it when offered; disabled: never." },
	{ NULL, "smtp_ca_file", CONF_STRING, "", 0, 0, NULL, 0,
	  "PEM file of the CAs the SMTP server's certificate must chain to; empty: the system's CAs. "
	  "The certificate is always checked, and must name the host of smtp_server." },
	{ NULL, "from", CONF_STRING, "", 0, 0, NULL, CONF_REQUIRED,
	  "The office's address in From and in the envelope; its domain ends our Message-IDs." },
	{ NULL, "reply_to", CONF_STRING, "", 0, 0, NULL, 0,
	  "Reply-To with {token} where the conversation's token goes, e.g. lkpm+{token}@example.go.id; "
	  "empty: no Reply-To (threading then relies on Message-IDs and the sender)." },
	{ NULL, "workers", CONF_INT, "2", 1, 32, NULL, 0,
	  "SMTP worker threads: libESMTP blocks, so each mail in flight holds one." },
	{ NULL, "smtp_timeout", CONF_DURATION, "60s", 1000, 3600 * 1000, NULL, 0,
	  "Time allowed for each step of the SMTP dialogue (libESMTP's RFC minimums are overridden)." },
	{ NULL, "imap_url", CONF_STRING, "", 0, 0, NULL, 0,
	  "The mailbox polled for replies, imap://host:port/INBOX or imaps://...; empty: send only." },
	{ NULL, "imap_user", CONF_STRING, "", 0, 0, NULL, 0, "The IMAP login." },
	{ NULL, "imap_password", CONF_STRING, "", 0, 0, NULL, CONF_SECRET, "The IMAP password." },
	{ NULL, "poll_interval", CONF_DURATION, "30s", 100, 3600 * 1000, NULL, 0,
	  "Time between two IMAP polls." },
	{ NULL, "max_attachment", CONF_SIZE, "10M", 0, 1024LL * 1024 * 1024, NULL, 0,
	  "The largest attachment stored; a larger one is refused and noted, its mail is kept." },
	{ NULL, "rate", CONF_INT, "10", 0, 100000, NULL, 0, "Most mails sent per second." },
};

static const struct db_stmt email_stmt_begin = {
	"email_imap_begin", "select linbat.email_imap_begin($1, $2::bigint)",
};
static const struct db_stmt email_stmt_ingest = {
	"email_ingest",
	"select message_id, conversation_id, duplicate, threaded_by from linbat.ingest_email($1, $2, $3, $4, "
	"$5::jsonb, to_timestamp($6::float8), $7, $8::jsonb, $9::jsonb, $10::boolean, $11::bytea, $12::jsonb, "
	"$13::bigint, $14::bigint)",
};
static const struct db_stmt email_stmt_bounce = {
	"email_bounce", "select linbat.email_bounce($1, $2, $3, $4, $5::bigint, $6::bigint)",
};

static void email_poll_end(struct email_poll *, const char *why);
static void email_poll_fetch_next(struct email_poll *);

/* Split imap_url into the server part ("imap://h:p/") and the mailbox. */
static int
email_imap_split(struct email *em, const char *url, char **cause)
{
	const char *host, *slash;

	if (strncmp(url, "imap://", 7) != 0 && strncmp(url, "imaps://", 8) != 0) {
		xasprintf(cause, "imap_url must start with imap:// or imaps://");
		return -1;
	}
	host = strstr(url, "://") + 3;
	slash = strchr(host, '/');
	em->imap_base = slash != NULL ? xstrndup(url, (size_t)(slash - url + 1)) : NULL;
	if (em->imap_base == NULL)
		xasprintf(&em->imap_base, "%s/", url);
	em->imap_mailbox = xstrdup(slash != NULL && slash[1] != '\0' ? slash + 1 : "INBOX");
	return 0;
}

/* Check the config and keep a copy; no I/O. */
static int
email_create(struct channel *ch, const struct conf_section *sec, char **cause)
{
	struct email *em;
	const char *from = conf_channel_str(sec, "from"), *at = strrchr(from, '@');
	const char *imap = conf_channel_str(sec, "imap_url");
	const char *ca_file = conf_channel_str(sec, "smtp_ca_file");

	if (at == NULL || at == from || at[1] == '\0' || strpbrk(from, " <>\t") != NULL) {
		xasprintf(cause, "from must be a bare address such as lkpm@dpmptsp.example.go.id");
		return -1;
	}
	if (*ca_file != '\0' && access(ca_file, R_OK) != 0) {
		xasprintf(cause, "smtp_ca_file %s cannot be read: %s", ca_file, strerror(errno));
		return -1;
	}
	em = xcalloc(1, sizeof *em);
	if (*imap != '\0' && email_imap_split(em, imap, cause) != 0) {
		free(em);
		return -1;
	}
	email_mime_init();
	em->ch = ch;
	em->from = xstrdup(from);
	em->domain = xstrdup(at + 1);
	em->reply_to = xstrdup(conf_channel_str(sec, "reply_to"));
	em->imap_user = xstrdup(conf_channel_str(sec, "imap_user"));
	em->imap_password = xstrdup(conf_channel_str(sec, "imap_password"));
	em->max_attachment = (size_t)conf_channel_int(sec, "max_attachment");
	em->poll_ms = (long)conf_channel_int(sec, "poll_interval");
	em->smtp_server = xstrdup(conf_channel_str(sec, "smtp_server"));
	em->smtp_user = xstrdup(conf_channel_str(sec, "smtp_user"));
	em->smtp_password = xstrdup(conf_channel_str(sec, "smtp_password"));
	em->smtp_ca_file = xstrdup(conf_channel_str(sec, "smtp_ca_file"));
	em->smtp_conf = (struct email_smtp_conf){ em->smtp_server, em->smtp_user, em->smtp_password, em->domain,
		(enum email_starttls)conf_channel_int(sec, "starttls"), em->smtp_ca_file,
		(long)conf_channel_int(sec, "smtp_timeout") };
	em->workers = (int)conf_channel_int(sec, "workers");
	ch->priv = em;
	return 0;
}

/* Tell the core the instance stopped, once, when nothing is in flight. */
static void
email_check_stopped(struct email *em)
{
	if (!em->stopping || em->stopped || em->poll != NULL || (em->smtp != NULL && email_smtp_busy(em->smtp) > 0))
		return;
	em->stopped = 1;
	log_info("email", "Email channel stopped. channel=%s", em->ch->name);
	channel_stopped(em->ch);
}

/* A job came back from the pool: the one upcall of its message. */
static void
email_sent_cb(struct email_job *job, void *arg)
{
	struct email *em = arg;

	if (job->msg != NULL && job->ok) {
		log_debug("email", "Mail accepted by the SMTP server. channel=%s id=%lld message_id=%s",
		    em->ch->name, job->msg->id, job->message_id);
		channel_sent(em->ch, job->msg, job->message_id);
	} else if (job->msg != NULL) {
		log_info("email", "A mail was not sent. channel=%s id=%lld kind=%s code=%s error=\"%s\"",
		    em->ch->name, job->msg->id, channel_fail_name(job->kind), job->code, job->text);
		channel_failed(em->ch, job->msg, job->kind, job->code, job->text, 0);
	}
	email_job_free(job);
	email_check_stopped(em);
}

static void email_poll_start(evutil_socket_t, short, void *);

/* Start the SMTP workers and the IMAP poll. */
static int
email_start(struct channel *ch, char **cause)
{
	struct email *em = ch->priv;
	struct timeval tv = { 0, 0 };

	if (ch->env == NULL || ch->env->curl == NULL || ch->env->db == NULL) {
		xasprintf(cause, "the email channel needs the IMAP client and the database");
		return -1;
	}
	em->stopping = em->stopped = 0;
	if (em->smtp == NULL &&
	    (em->smtp = email_smtp_create(ch->env->base, &em->smtp_conf, em->workers, email_sent_cb, em, cause)) == NULL)
		return -1;
	if (em->imap_base != NULL) {
		em->timer = evtimer_new(ch->env->base, email_poll_start, em);
		evtimer_add(em->timer, &tv);
	}
	log_info("email", "Email channel started. channel=%s smtp_server=%s workers=%d imap=%s%s", ch->name,
	    em->smtp_server, em->workers, em->imap_base != NULL ? em->imap_base : "none",
	    em->imap_base != NULL ? em->imap_mailbox : "");
	return 0;
}

/* Take no new work; without drain, give back what the workers have not finished. */
static void
email_stop(struct channel *ch, int drain)
{
	struct email *em = ch->priv;

	em->stopping = 1;
	if (em->timer != NULL)
		evtimer_del(em->timer);
	if (!drain && em->smtp != NULL)
		email_smtp_cancel(em->smtp);
	email_check_stopped(em);
}

/* Free the instance; work still in flight is let go. */
static void
email_destroy(struct channel *ch)
{
	struct email *em = ch->priv;

	if (em == NULL)
		return;
	email_smtp_destroy(em->smtp);
	if (em->poll != NULL)
		em->poll->em = NULL;
	if (em->timer != NULL)
		event_free(em->timer);
	free(em->from);
	free(em->domain);
	free(em->reply_to);
	free(em->imap_base);
	free(em->imap_mailbox);
	free(em->imap_user);
	free(em->imap_password);
	free(em->smtp_server);
	free(em->smtp_user);
	free(em->smtp_password);
	free(em->smtp_ca_file);
	free(em);
	ch->priv = NULL;
}

/* Reply-To with the token in place of {token}, or NULL (caller frees). */
static char *
email_reply_to(struct email *em, const char *token)
{
	const char *p = strstr(em->reply_to, "{token}");
	char *out;

	if (em->reply_to[0] == '\0')
		return NULL;
	if (p == NULL)
		return xstrdup(em->reply_to);
	if (token == NULL || *token == '\0')
		return NULL;
	xasprintf(&out, "%.*s%s%s", (int)(p - em->reply_to), em->reply_to, token, p + 7);
	return out;
}

/* The subject: the message's own, else "Re:" the investor's, else the office's. */
static char *
email_subject(const json_t *meta)
{
	const char *s = json_string_value(json_object_get(meta, "subject"));
	const char *re = json_string_value(json_object_get(meta, "reply_subject"));
	char *out;

	if (s != NULL && *s != '\0')
		return xstrdup(s);
	if (re != NULL && *re != '\0') {
		if (strncasecmp(re, "re:", 3) == 0)
			return xstrdup(re);
		xasprintf(&out, "Re: %s", re);
		return out;
	}
	return xstrdup("Pesan dari DPMPTSP Kabupaten Balangan / Message from DPMPTSP Balangan");
}

/* Whether the message is a reminder (it gets Auto-Submitted and List-Unsubscribe). */
static int
email_is_reminder(const json_t *meta)
{
	return json_object_get(meta, "reminder") != NULL || json_object_get(meta, "campaign") != NULL ||
	    json_is_true(json_object_get(meta, "auto_submitted"));
}

/* Whether the message answers the investor automatically (acknowledgement, keyword answer). */
static int
email_is_autoreply(const json_t *meta)
{
	return json_is_true(json_object_get(meta, "ack")) || json_object_get(meta, "keyword") != NULL;
}

/* Build the mail of msg as a job for the pool. */
static struct email_job *
email_job_make(struct email *em, const struct channel_msg *msg)
{
	const json_t *meta = msg->meta;
	const char *token = json_string_value(json_object_get(meta, "email_token"));
	struct email_job *job = xcalloc(1, sizeof *job);
	char *rnd = util_random_hex(8), *reply_to = email_reply_to(em, token), *subject = email_subject(meta);
	char *unsub = NULL;
	int reminder = email_is_reminder(meta);
	struct email_out o = { em->from, msg->to, reply_to, NULL, subject, msg->body, NULL,
		json_string_value(json_object_get(meta, "in_reply_to")), json_object_get(meta, "references"),
		reminder ? "auto-generated" : email_is_autoreply(meta) ? "auto-replied" : NULL,
		NULL };

	xasprintf(&job->message_id, "linbat.%lld.%s@%s", msg->id, rnd, em->domain);
	if (reminder)
		xasprintf(&unsub, "<mailto:%s?subject=BERHENTI>", reply_to != NULL ? reply_to : em->from);
	o.message_id = job->message_id;
	o.html = json_string_value(json_object_get(meta, "html"));
	o.list_unsubscribe = unsub;
	job->msg = msg;
	job->from = xstrdup(em->from);
	job->to = xstrdup(msg->to);
	job->data = email_mime_build(&o);
	free(rnd);
	free(reply_to);
	free(subject);
	free(unsub);
	return job;
}

/* Send one message: build it here, hand the blocking SMTP dialogue to a worker. */
static void
email_send(struct channel *ch, const struct channel_msg *msg)
{
	struct email *em = ch->priv;

	if (em->stopping || em->smtp == NULL) {
		channel_failed(ch, msg, CHANNEL_FAIL_TEMPORARY, "stopping", "The email channel is stopping.", 0);
		return;
	}
	if (msg->to == NULL || strchr(msg->to, '@') == NULL || strpbrk(msg->to, " <>\r\n") != NULL) {
		channel_failed(ch, msg, CHANNEL_FAIL_PERMANENT, "invalid", "The recipient is not an email address.", 0);
		return;
	}
	email_smtp_submit(em->smtp, email_job_make(em, msg));
}

/* A new IMAP transfer on the server or the mailbox, with a custom command or none. */
static CURL *
email_imap_easy(struct email *em, const char *path, const char *command)
{
	CURL *easy = curlev_easy(em->ch->env->curl);
	char *url;

	xasprintf(&url, "%s%s", em->imap_base, path);
	curl_easy_setopt(easy, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "imap,imaps");
#else
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS, (long)(CURLPROTO_IMAP | CURLPROTO_IMAPS));
#endif
	curl_easy_setopt(easy, CURLOPT_USERNAME, em->imap_user);
	curl_easy_setopt(easy, CURLOPT_PASSWORD, em->imap_password);
	if (command != NULL)
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, command);
	free(url);
	return easy;
}

/* Whether the round may go on; if its instance went away, free it. */
static int
email_poll_alive(struct email_poll *p)
{
	if (p->em != NULL && !p->em->stopping)
		return 1;
	email_poll_end(p, p->em != NULL ? "stopping" : NULL);
	return 0;
}

/* End a round: free it and arm the timer for the next. */
static void
email_poll_end(struct email_poll *p, const char *why)
{
	struct email *em = p->em;
	struct timeval tv = { em != NULL ? em->poll_ms / 1000 : 0, em != NULL ? (em->poll_ms % 1000) * 1000 : 0 };

	if (em != NULL && why != NULL && strcmp(why, "stopping") != 0)
		log_info("email", "IMAP poll round ended early; the next round takes it up. channel=%s reason=\"%s\"",
		    em->ch->name, why);
	free(p->uids);
	free(p);
	if (em == NULL)
		return;
	em->poll = NULL;
	if (!em->stopping)
		evtimer_add(em->timer, &tv);
	email_check_stopped(em);
}

/* Add each number after "SEARCH" in an IMAP answer to the round (UIDs above last_uid). */
static void
email_poll_uids(struct email_poll *p, const char *body, int only_new)
{
	const char *s = body;
	char *end;
	long long uid;

	while ((s = strstr(s, "SEARCH")) != NULL) {
		for (s += 6; *s == ' ' || isdigit((unsigned char)*s); s = end) {
			while (*s == ' ')
				s++;
			uid = strtoll(s, &end, 10);
			if (end == s)
				break;
			if (uid > 0 && (!only_new || uid > p->last_uid)) {
				p->uids = xrealloc(p->uids, (p->nuids + 1) * sizeof *p->uids);
				p->uids[p->nuids++] = uid;
			}
		}
	}
}

/* Order UIDs ascending. */
static int
email_uid_cmp(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

/*
 * A search answered; when both have, fetch the union in UID order. only_new:
 * this is the search "UID last+1:*", which IMAP answers with the last mail
 * even when its UID is not above last (n:* means n:last), so UIDs at or below
 * last are dropped.
 */
static void
email_poll_searched(struct email_poll *p, CURLcode rc, const char *body, int only_new)
{
	size_t i, n = 0;

	p->searches--;
	if (rc != CURLE_OK)
		p->cur = -1;
	else
		email_poll_uids(p, body, only_new);
	if (p->searches > 0 || !email_poll_alive(p))
		return;
	if (p->cur < 0) {
		email_poll_end(p, curl_easy_strerror(rc));
		return;
	}
	if (p->nuids > 1) /* qsort's base must not be NULL, even for no elements */
		qsort(p->uids, p->nuids, sizeof *p->uids, email_uid_cmp);
	for (i = 0; i < p->nuids; i++) {
		if (n == 0 || p->uids[n - 1] != p->uids[i])
			p->uids[n++] = p->uids[i];
	}
	p->nuids = n;
	email_poll_fetch_next(p);
}

/* "UID SEARCH UNSEEN" answered. (CURLOPT_PRIVATE is curlev's, so each search has its own callback.) */
static void
email_poll_searched_unseen(CURL *easy, CURLcode rc, long status, const char *body, size_t len, void *arg)
{
	(void)easy, (void)status, (void)len;
	email_poll_searched(arg, rc, body, 0);
}

/* "UID SEARCH UID last+1:*" answered. */
static void
email_poll_searched_new(CURL *easy, CURLcode rc, long status, const char *body, size_t len, void *arg)
{
	(void)easy, (void)status, (void)len;
	email_poll_searched(arg, rc, body, 1);
}

/* The database knows where this UIDVALIDITY stands: search. */
static void
email_poll_begun(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct email_poll *p = arg;
	struct email *em;
	char range[64];
	CURL *easy;

	(void)sqlstate;
	if (!email_poll_alive(p))
		return;
	em = p->em;
	if (error != NULL) {
		email_poll_end(p, error);
		return;
	}
	p->last_uid = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	snprintf(range, sizeof range, "UID SEARCH UID %lld:*", p->last_uid + 1);
	p->searches = 2;
	easy = email_imap_easy(em, em->imap_mailbox, "UID SEARCH UNSEEN");
	curlev_start(em->ch->env->curl, easy, NULL, 1024 * 1024, email_poll_searched_unseen, p);
	easy = email_imap_easy(em, em->imap_mailbox, range);
	curlev_start(em->ch->env->curl, easy, NULL, 1024 * 1024, email_poll_searched_new, p);
}

/* STATUS answered: tell the database the UIDVALIDITY (a change starts again at 0). */
static void
email_poll_status(CURL *easy, CURLcode rc, long status, const char *body, size_t len, void *arg)
{
	struct email_poll *p = arg;
	const char *v = body != NULL ? strstr(body, "UIDVALIDITY ") : NULL;
	char buf[32];
	const char *params[2];

	(void)easy, (void)status, (void)len;
	if (!email_poll_alive(p))
		return;
	if (rc != CURLE_OK || v == NULL || (p->uidvalidity = strtoll(v + 12, NULL, 10)) <= 0) {
		email_poll_end(p, rc != CURLE_OK ? curl_easy_strerror(rc) : "STATUS gave no UIDVALIDITY");
		return;
	}
	snprintf(buf, sizeof buf, "%lld", p->uidvalidity);
	params[0] = p->em->ch->name;
	params[1] = buf;
	db_exec(p->em->ch->env->db, &email_stmt_begin, 2, params, email_poll_begun, p);
}

/* The poll timer fired: ask for the mailbox's UIDVALIDITY to begin a round. */
static void
email_poll_start(evutil_socket_t fd, short what, void *arg)
{
	struct email *em = arg;
	struct email_poll *p;
	char *cmd;

	(void)fd, (void)what;
	if (em->stopping || em->poll != NULL)
		return;
	p = em->poll = xcalloc(1, sizeof *p);
	p->em = em;
	xasprintf(&cmd, "STATUS \"%s\" (UIDVALIDITY)", em->imap_mailbox);
	curlev_start(em->ch->env->curl, email_imap_easy(em, "", cmd), NULL, 64 * 1024, email_poll_status, p);
	free(cmd);
}

/* The mail is committed: flag it \Seen, then take the next. */
static void
email_poll_flagged(CURL *easy, CURLcode rc, long status, const char *body, size_t len, void *arg)
{
	struct email_poll *p = arg;

	(void)easy, (void)status, (void)body, (void)len;
	if (!email_poll_alive(p))
		return;
	if (rc != CURLE_OK) {
		email_poll_end(p, curl_easy_strerror(rc));
		return;
	}
	p->next++;
	email_poll_fetch_next(p);
}

/* The database answered for the current mail: on success, flag it seen. */
static void
email_poll_stored(const PGresult *res, const char *error, const char *sqlstate, void *arg)
{
	struct email_poll *p = arg;
	char cmd[96];

	(void)res, (void)sqlstate;
	if (!email_poll_alive(p))
		return;
	if (error != NULL) {
		email_poll_end(p, error);
		return;
	}
	if (PQntuples(res) > 0 && PQnfields(res) == 4)
		log_info("email", "Mail stored. channel=%s uid=%lld message=%s conversation=%s duplicate=%s "
		    "threaded_by=%s", p->em->ch->name, p->cur, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
		    PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
	snprintf(cmd, sizeof cmd, "UID STORE %lld +FLAGS (\\Seen)", p->cur);
	curlev_start(p->em->ch->env->curl, email_imap_easy(p->em, p->em->imap_mailbox, cmd), NULL, 64 * 1024,
	    email_poll_flagged, p);
}

/* A bounce: the original fails (and falls back); a mail we cannot use is only recorded as taken. */
static void
email_poll_bounce(struct email_poll *p, const struct email_parsed *m, const char *why)
{
	char v[32], u[32];
	const char *params[6] = { p->em->ch->name, m != NULL && m->dsn_original != NULL ? m->dsn_original : "",
		m != NULL ? m->dsn_status : NULL, m != NULL ? m->dsn_text : NULL, v, u };

	snprintf(v, sizeof v, "%lld", p->uidvalidity);
	snprintf(u, sizeof u, "%lld", p->cur);
	if (why != NULL)
		log_warn("email", "A mail was skipped. channel=%s uid=%lld reason=\"%s\"", p->em->ch->name, p->cur, why);
	else
		log_info("email", "A bounce came back. channel=%s uid=%lld original=%s status=%s", p->em->ch->name,
		    p->cur, params[1], m->dsn_status != NULL ? m->dsn_status : "none");
	db_exec(p->em->ch->env->db, &email_stmt_bounce, 6, params, email_poll_stored, p);
}

/* The meta of an inbound mail: subject, references, Auto-Submitted, attachments without their bytes. */
static char *
email_inbound_meta(struct email_poll *p, const struct email_parsed *m)
{
	json_t *meta = json_pack("{s:s,s:O,s:I,s:I}", "subject", m->subject, "references", m->references,
	    "imap_uid", (json_int_t)p->cur, "imap_uidvalidity", (json_int_t)p->uidvalidity);
	json_t *atts = json_array(), *a, *copy;
	size_t i;
	char *s;

	if (m->auto_submitted != NULL)
		json_object_set_new(meta, "auto_submitted", json_string(m->auto_submitted));
	json_array_foreach(m->attachments, i, a) {
		copy = json_copy(a);
		json_object_del(copy, "data");
		json_array_append_new(atts, copy);
	}
	json_object_set_new(meta, "attachments", atts);
	s = json_dumps(meta, JSON_COMPACT);
	json_decref(meta);
	return s;
}

/* Store a parsed mail with linbat.ingest_email, the original beside it. */
static void
email_poll_ingest(struct email_poll *p, const struct email_parsed *m, const char *raw, size_t len)
{
	int is_auto = m->auto_submitted != NULL && strcasecmp(m->auto_submitted, "no") != 0;
	char *meta = email_inbound_meta(p, m), *rcpt = json_dumps(m->recipients, JSON_COMPACT);
	char *refs = json_dumps(m->references, JSON_COMPACT), *atts = json_dumps(m->attachments, JSON_COMPACT);
	char *hex = xmalloc(2 * len + 3), *id = NULL, date[32], v[32], u[32];
	const char *params[14] = { p->em->ch->name, m->from_addr, m->message_id, m->body, meta,
		m->date > 0 ? date : NULL, m->from_name, rcpt, refs, is_auto ? "true" : "false", hex, atts, v, u };

	memcpy(hex, "\\x", 2);
	util_hex((const unsigned char *)raw, len, hex + 2);
	snprintf(date, sizeof date, "%lld", m->date);
	snprintf(v, sizeof v, "%lld", p->uidvalidity);
	snprintf(u, sizeof u, "%lld", p->cur);
	if (m->message_id == NULL) {
		xasprintf(&id, "imap.%lld.%lld@%s", p->uidvalidity, p->cur, p->em->ch->name);
		params[2] = id;
	}
	db_exec(p->em->ch->env->db, &email_stmt_ingest, 14, params, email_poll_stored, p);
	free(meta);
	free(rcpt);
	free(refs);
	free(atts);
	free(hex);
	free(id);
}

/* A mail fetched: parse it and store it. */
static void
email_poll_fetched(CURL *easy, CURLcode rc, long status, const char *body, size_t len, void *arg)
{
	struct email_poll *p = arg;
	struct email_parsed m;
	char *cause = NULL;

	(void)easy, (void)status;
	if (!email_poll_alive(p))
		return;
	if (rc != CURLE_OK) {
		email_poll_end(p, curl_easy_strerror(rc));
		return;
	}
	if (email_mime_parse(body, len, p->em->max_attachment, &m, &cause) != 0) {
		email_poll_bounce(p, NULL, cause);
		free(cause);
		return;
	}
	if (m.is_dsn)
		email_poll_bounce(p, &m, NULL);
	else if (m.from_addr == NULL || strchr(m.from_addr, '@') == NULL)
		email_poll_bounce(p, NULL, "the mail has no sender address");
	else
		email_poll_ingest(p, &m, body, len);
	email_parsed_free(&m);
}

/* Fetch the next mail of the round, or end it. */
static void
email_poll_fetch_next(struct email_poll *p)
{
	char *path;

	if (p->next >= p->nuids) {
		email_poll_end(p, NULL);
		return;
	}
	p->cur = p->uids[p->next];
	xasprintf(&path, "%s;UIDVALIDITY=%lld/;UID=%lld", p->em->imap_mailbox, p->uidvalidity, p->cur);
	curlev_start(p->em->ch->env->curl, email_imap_easy(p->em, path, NULL), NULL, EMAIL_FETCH_MAX,
	    email_poll_fetched, p);
	free(path);
}


const struct channel_type channel_email = {
	.name = "email",
	.kind = "email",
	.keys = email_keys,
	.nkeys = nitems(email_keys),
	.create = email_create,
	.start = email_start,
	.stop = email_stop,
	.destroy = email_destroy,
	.send = email_send,
	.inbound = NULL,
};
