/*
 * media.c: the adapter-independent half of fetching inbound media (see
 * media.h): one LISTEN linbat_media per database for every fetcher of this
 * process, and the claim and record statements of migrations/0003.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "media.h"
#include "util.h"

#define MEDIA_CLAIM "4"      /* MEDIA_CLAIM_N as a parameter */
#define MEDIA_LEASE "120"    /* seconds a claim holds (two fetches of 30 s at most) */
#define MEDIA_ATTEMPTS "5"   /* temporary failures before it is final */

static const struct db_stmt media_claim_stmt = {
	"media_claim",
	"select id, media_id, mime_type from linbat.attachment_claim($1, $2, $3)"
};
static const struct db_stmt media_stored_stmt = {
	"media_stored",
	"select linbat.attachment_stored($1, $2, $3, $4)"
};
static const struct db_stmt media_failed_stmt = {
	"media_failed",
	"select linbat.attachment_fetch_failed($1, $2, $3, $4)"
};

/* The fetchers of this process, and the database their one listener is on. */
static LIST_HEAD(, media_waker) media_wakers = LIST_HEAD_INITIALIZER(media_wakers);
static struct db *media_listen_db;

/* NOTIFY linbat_media: wake the fetchers of the instance named by the payload (all if NULL). */
static void
media_notified(const char *channel, const char *payload, void *arg)
{
	struct media_waker *w, *next;

	for (w = LIST_FIRST(&media_wakers); w != NULL; w = next) {
		next = LIST_NEXT(w, entry);
		if (payload == NULL || strcmp(payload, w->instance) == 0)
			w->kick(w->arg);
	}
}

void
media_waker_add(struct db *db, struct media_waker *w)
{
	if (!w->live) {
		LIST_INSERT_HEAD(&media_wakers, w, entry);
		w->live = 1;
	}
	if (db != media_listen_db && db_listen(db, "linbat_media", media_notified, NULL) == 0)
		media_listen_db = db;
}

void
media_waker_remove(struct media_waker *w)
{
	if (w->live) {
		LIST_REMOVE(w, entry);
		w->live = 0;
	}
}

void
media_claim(struct db *db, const char *instance, db_cb cb, void *arg)
{
	const char *values[3] = { instance, MEDIA_CLAIM, MEDIA_LEASE };

	db_exec(db, &media_claim_stmt, 3, values, cb, arg);
}

void
media_store(struct db *db, long long id, const char *mime, const char *data, size_t len, db_cb cb, void *arg)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char ids[24], sha[65], *hex;
	const char *values[4];

	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	util_hex(md, 32, sha);
	hex = xmalloc(2 * len + 3);
	memcpy(hex, "\\x", 2);
	util_hex((const unsigned char *)data, len, hex + 2);
	snprintf(ids, sizeof ids, "%lld", id);
	values[0] = ids;
	values[1] = mime != NULL ? mime : "";
	values[2] = hex;
	values[3] = sha;
	db_exec(db, &media_stored_stmt, 4, values, cb, arg);
	free(hex);
}

void
media_fail(struct db *db, long long id, const char *why, int temporary, db_cb cb, void *arg)
{
	char ids[24];
	const char *values[4];

	snprintf(ids, sizeof ids, "%lld", id);
	values[0] = ids;
	values[1] = why;
	values[2] = temporary ? "true" : "false";
	values[3] = MEDIA_ATTEMPTS;
	db_exec(db, &media_failed_stmt, 4, values, cb, arg);
}

int
media_temporary(long status)
{
	return status == 0 || status == 429 || status >= 500;
}
