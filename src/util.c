/*
 * util.c: allocation wrappers, a growable buffer, time in WITA, host:port
 * parsing, hex/base64, HMAC and constant-time compare. Domain-free.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "log.h"
#include "util.h"

/* Die on allocation failure: there is nothing sensible left to do. */
static void
util_oom(size_t n)
{
	log_fatal("util", "Out of memory. size=%zu", n);
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		util_oom(n);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

	if (p == NULL)
		util_oom(nmemb * size);
	return p;
}

void *
xrealloc(void *old, size_t n)
{
	void *p = realloc(old, n ? n : 1);

	if (p == NULL)
		util_oom(n);
	return p;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (p == NULL)
		util_oom(n);
	return p;
}

int
xvasprintf(char **out, const char *fmt, va_list ap)
{
	int n = vasprintf(out, fmt, ap);

	if (n < 0)
		util_oom(0);
	return n;
}

int
xasprintf(char **out, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = xvasprintf(out, fmt, ap);
	va_end(ap);
	return n;
}

void
buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = b->cap = 0;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

/* Make room for n more bytes plus the terminating NUL. */
static void
buf_grow(struct buf *b, size_t n)
{
	size_t want = b->len + n + 1;

	if (want <= b->cap)
		return;
	if (b->cap == 0)
		b->cap = 64;
	while (b->cap < want)
		b->cap *= 2;
	b->data = xrealloc(b->data, b->cap);
}

void
buf_add(struct buf *b, const void *p, size_t n)
{
	buf_grow(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void
buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list ap, ap2;
	int n;

	va_start(ap, fmt);
	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n > 0) {
		buf_grow(b, (size_t)n);
		vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
		b->len += (size_t)n;
	}
	va_end(ap2);
}

char *
buf_take(struct buf *b)
{
	char *p = b->data;

	if (p == NULL)
		p = xstrdup("");
	buf_init(b);
	return p;
}

void
buf_add_pgarray(struct buf *b, const char *s)
{
	size_t n;

	if (b->len > 1)
		buf_add(b, ",", 1);
	if (s == NULL) {
		buf_adds(b, "NULL");
		return;
	}
	buf_add(b, "\"", 1);
	while (*s != '\0') {
		n = strcspn(s, "\"\\");
		buf_add(b, s, n);
		if (s[n] == '\0')
			break;
		buf_add(b, "\\", 1);
		buf_add(b, s + n, 1);
		s += n + 1;
	}
	buf_add(b, "\"", 1);
}

char *
util_read_file(const char *path, size_t *len, char **cause)
{
	FILE *f = fopen(path, "rb");
	struct buf b;
	char chunk[8192];
	size_t n;

	if (f == NULL) {
		xasprintf(cause, "Cannot read %s: %s.", path, strerror(errno));
		return NULL;
	}
	buf_init(&b);
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_add(&b, chunk, n);
	fclose(f);
	*len = b.len;
	return buf_take(&b);
}

uint64_t
util_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t
util_mono_ms(void)
{
	return util_mono_us() / 1000;
}

/* WITA is UTC+8 all year (Asia/Makassar has had no DST since 1963). */
void
util_time_wita(const struct timespec *ts, char *out, size_t outlen)
{
	time_t t = ts->tv_sec + 8 * 3600;
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03ld+08:00", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts->tv_nsec / 1000000);
}

int
util_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon, *h = s;
	size_t n;
	char *end;
	long p;

	if (*s == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':')
			return -1;
		h = s + 1;
		n = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || strchr(s, ':') != colon)
			return -1;
		n = (size_t)(colon - s);
	}
	if (n == 0 || n >= hostlen)
		return -1;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || end == colon + 1 || p < 0 || p > 65535)
		return -1;
	memcpy(host, h, n);
	host[n] = '\0';
	*port = (int)p;
	return 0;
}

void
util_hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0xf];
	}
	out[2 * n] = '\0';
}

char *
util_base64(const unsigned char *p, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

void
util_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len, unsigned char *out)
{
	unsigned int outlen = 32;

	HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen);
}

void
util_hmac_sha1(const void *key, size_t keylen, const void *data, size_t len, unsigned char *out)
{
	unsigned int outlen = 20;

	HMAC(EVP_sha1(), key, (int)keylen, data, len, out, &outlen);
}

int
util_ct_streq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la != lb)
		return 0;
	return CRYPTO_memcmp(a, b, la) == 0;
}

void
util_random(void *p, size_t n)
{
	if (RAND_bytes(p, (int)n) != 1)
		log_fatal("util", "The random number generator failed.");
}

char *
util_random_hex(size_t nbytes)
{
	unsigned char raw[64];
	char *out;

	if (nbytes > sizeof raw)
		nbytes = sizeof raw;
	util_random(raw, nbytes);
	out = xmalloc(2 * nbytes + 1);
	util_hex(raw, nbytes, out);
	return out;
}

/* Value of one hex digit, or -1. */
static int
util_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

void
util_urldecode(char *s)
{
	char *w = s;
	int hi, lo;

	for (; *s != '\0'; s++) {
		if (*s == '+')
			*w++ = ' ';
		else if (*s == '%' && (hi = util_hexval(s[1])) >= 0 && (lo = util_hexval(s[2])) >= 0) {
			*w++ = (char)(hi << 4 | lo);
			s += 2;
		} else
			*w++ = *s;
	}
	*w = '\0';
}
