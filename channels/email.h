/*
 * email.h: the email adapter (type "email"). email.c is the adapter (config,
 * sends, the IMAP poll through curlev), email-smtp.c the pool of worker
 * threads that run libESMTP (it blocks, so never on the loop thread) and post
 * each result back to the loop through an eventfd, email-mime.c builds the
 * mails we send and parses the ones we receive with GMime, without I/O, so
 * the unit tests drive it directly.
 */
#ifndef LINBAT_EMAIL_H
#define LINBAT_EMAIL_H

#include <stddef.h>

#include <event2/event.h>
#include <jansson.h>

#include "channel.h"

extern const struct channel_type channel_email;

/* Start GMime once per process (safe to call again). */
void email_mime_init(void);

/* What email_mime_build puts in a mail; strings borrowed for the call. */
struct email_out {
	const char *from;             /* the office's address */
	const char *to;
	const char *reply_to;         /* NULL: none */
	const char *message_id;       /* without angle brackets */
	const char *subject;          /* UTF-8 */
	const char *body;             /* UTF-8 text */
	const char *html;             /* an HTML alternative, or NULL */
	const char *in_reply_to;      /* without angle brackets, or NULL */
	json_t *references;           /* array of ids without brackets, or NULL; borrowed */
	const char *auto_submitted;   /* "auto-generated" (reminders), "auto-replied", or NULL */
	const char *list_unsubscribe; /* "<mailto:...>" on reminders, or NULL */
};

/* The mail as text with CRLF line ends (caller frees), text/plain UTF-8 quoted-printable. */
char *email_mime_build(const struct email_out *);

/* An inbound mail, parsed; every string UTF-8 and owned (email_parsed_free). */
struct email_parsed {
	char *message_id;     /* without brackets, NULL if the mail has none */
	char *from_addr;      /* lower-case, NULL if none */
	char *from_name;      /* display name, NULL if none */
	char *subject;        /* RFC 2047 decoded, "" if none */
	char *body;           /* text/plain preferred, else HTML made text */
	char *auto_submitted; /* the header's value, NULL if absent */
	json_t *recipients;   /* To, Cc, Delivered-To, X-Original-To addresses */
	json_t *references;   /* In-Reply-To and References ids, without brackets */
	json_t *attachments;  /* [{filename, mime_type, size, data (base64)}]; refused: no data */
	int refused;          /* attachments refused for their size */
	int is_dsn;           /* a multipart/report delivery status notification */
	char *dsn_original;   /* the Message-ID of the mail that bounced, NULL if not found */
	char *dsn_status;     /* "5.1.1" or NULL */
	char *dsn_text;       /* the diagnostic, or NULL */
	long long date;       /* unix seconds of the Date header, 0 if none */
};

/* Parse raw (len bytes); attachments larger than max_attachment are refused. -1 with *cause. */
int email_mime_parse(const char *raw, size_t len, size_t max_attachment, struct email_parsed *, char **cause);
void email_parsed_free(struct email_parsed *);
/* HTML to plain UTF-8 text (tags dropped, entities and breaks kept); caller frees. */
char *email_mime_html_text(const char *html);

/* The pool of SMTP workers; results come back on the loop. */
struct email_smtp;

enum email_starttls {
	EMAIL_STARTTLS_REQUIRED,
	EMAIL_STARTTLS_ENABLED,
	EMAIL_STARTTLS_DISABLED,
};

/* How to reach the SMTP server; copied by email_smtp_create. */
struct email_smtp_conf {
	const char *server;   /* host:port */
	const char *user;     /* "" or NULL: no SMTP AUTH */
	const char *password;
	const char *helo;     /* the name we give in EHLO */
	enum email_starttls starttls;
	const char *ca_file;  /* "" or NULL: the system's CAs */
	long timeout_ms;      /* each phase of the dialogue */
};

/* One mail to send. Strings owned by the job; the result fields are set by the worker. */
struct email_job {
	const struct channel_msg *msg; /* borrowed from the core until the upcall */
	char *from;
	char *to;
	char *data;                    /* the whole mail, CRLF */
	char *message_id;
	int ok;
	enum channel_fail kind;
	char code[32];
	char *text;
	struct email_job *next;
};

/* Called on the loop thread with each finished job; the callee frees it (email_job_free). */
typedef void (*email_smtp_cb)(struct email_job *, void *arg);

/* Also loads the CAs that the server's certificate is checked against (-1 with
 * *cause when they cannot be read). */
struct email_smtp *email_smtp_create(struct event_base *, const struct email_smtp_conf *, int workers,
    email_smtp_cb, void *arg, char **cause);
/* Queue a job (now the pool's until it comes back through the callback). */
void email_smtp_submit(struct email_smtp *, struct email_job *);
/* Jobs queued or running. */
int email_smtp_busy(struct email_smtp *);
/* Give back the jobs not yet started, through the callback, as failed. */
void email_smtp_cancel(struct email_smtp *);
/* Stop the workers; jobs still running are let go (their results dropped). */
void email_smtp_destroy(struct email_smtp *);
void email_job_free(struct email_job *);

#endif
