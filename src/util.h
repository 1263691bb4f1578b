/*
 * util.h: the domain-free layer under linbat (allocation, strings, time,
 * hex/base64, HMAC and constant-time compare). Nothing here knows about LKPM,
 * investors or channels.
 */
#ifndef LINBAT_UTIL_H
#define LINBAT_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation: failure is fatal (logged, then abort). */
void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xrealloc(void *, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);
int xasprintf(char **, const char *, ...) __attribute__((format(printf, 2, 3)));
int xvasprintf(char **, const char *, va_list);

/* A growable byte buffer; always NUL-terminated after its data. */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};
void buf_init(struct buf *);
void buf_free(struct buf *);
void buf_add(struct buf *, const void *, size_t);
void buf_adds(struct buf *, const char *);
void buf_addf(struct buf *, const char *, ...) __attribute__((format(printf, 2, 3)));
/* Take the data (caller frees); the buffer is left empty. */
char *buf_take(struct buf *);
/* Append s, quoted, as an element of the PostgreSQL array literal begun with "{" in b; NULL is SQL NULL. */
void buf_add_pgarray(struct buf *, const char *s);

/* Read a whole file, NUL-terminated, its length in *len (caller frees);
 * NULL with *cause ("Cannot read PATH: REASON.") on error. */
char *util_read_file(const char *path, size_t *len, char **cause);

/* Monotonic and wall-clock time. */
uint64_t util_mono_ms(void);
uint64_t util_mono_us(void);
/* Format a UTC instant as WITA (UTC+8, Asia/Makassar, no DST) ISO 8601:
 * "2026-11-28T23:04:05.123+08:00". out must hold 32 bytes. */
void util_time_wita(const struct timespec *, char *out, size_t outlen);

/* Parse "host:port" or "[v6]:port"; host copied into host (hostlen). */
int util_parse_hostport(const char *, char *host, size_t hostlen, int *port);

/* Hex (lower case) and base64 (standard alphabet, padded). */
void util_hex(const unsigned char *, size_t, char *out); /* out: 2n+1 bytes */
char *util_base64(const unsigned char *, size_t);         /* caller frees */

/* HMAC with OpenSSL; out must hold 32 (sha256) or 20 (sha1) bytes. */
void util_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len, unsigned char *out);
void util_hmac_sha1(const void *key, size_t keylen, const void *data, size_t len, unsigned char *out);
/* Constant-time string compare: 1 if equal (length leaks only). */
int util_ct_streq(const char *, const char *);
/* Random bytes from OpenSSL; a random token of n bytes as hex (caller frees). */
void util_random(void *, size_t);
char *util_random_hex(size_t nbytes);

/* Decode %XX and '+' of application/x-www-form-urlencoded in place. */
void util_urldecode(char *);

#endif
