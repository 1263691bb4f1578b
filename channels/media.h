/*
 * media.h: what the adapters that fetch the media of inbound messages share
 * (whatsapp-media.c, sms-twilio.c). Storing a message whose meta names media
 * makes pending linbat.attachment rows in the same transaction and a NOTIFY
 * on linbat_media with the instance's name (migrations 0003 and 0015), so a
 * fetch starts only once the message is committed. An adapter claims its
 * instance's pending rows with a lease, fetches each its own way, and
 * records the bytes (with their SHA-256 and MIME type) or why not; a
 * temporary failure is retried with backoff, a lost lease by anyone.
 */
#ifndef LINBAT_MEDIA_H
#define LINBAT_MEDIA_H

#include <sys/queue.h>

#include <stddef.h>

#include "db.h"

#define MEDIA_CLAIM_N 4    /* fetches claimed at a time */
#define MEDIA_SWEEP_S 30   /* timer for retries and expired leases */

/* Who wants to hear of committed media of one instance. */
struct media_waker {
	const char *instance;  /* borrowed: the channel instance's name */
	void (*kick)(void *arg);
	void *arg;
	int live;              /* on the list the listener walks */
	LIST_ENTRY(media_waker) entry;
};

/* Call w->kick on every NOTIFY linbat_media naming w->instance (and after each LISTEN). */
void media_waker_add(struct db *, struct media_waker *w);
void media_waker_remove(struct media_waker *w);

/* Claim up to MEDIA_CLAIM_N pending attachments of an instance; rows: id, media_id, mime_type. */
void media_claim(struct db *, const char *instance, db_cb, void *arg);
/*
 * Store the fetched bytes of attachment id with their SHA-256; mime may be
 * NULL or "" (the type named at ingest stays). The result's one value says
 * whether this call stored them.
 */
void media_store(struct db *, long long id, const char *mime, const char *data, size_t len, db_cb, void *arg);
/* Record why a fetch failed; temporary ones are retried later. The result's one value: the status after. */
void media_fail(struct db *, long long id, const char *why, int temporary, db_cb, void *arg);
/* Whether an HTTP status (0: none) means a fetch may work later. */
int media_temporary(long http_status);

#endif
