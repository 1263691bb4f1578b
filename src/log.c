/*
 * log.c: the one place that writes log lines. Each event is formatted into a
 * buffer, scrubbed of registered secrets, and written to stderr with a single
 * write() so lines from worker threads never interleave.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "util.h"

static const struct {
	const char *word;
	const char *lower;
	int syslog;
} log_levels[] = {
	[LOG_LEVEL_DEBUG] = { "DEBUG", "debug", 7 },
	[LOG_LEVEL_INFO] = { "INFO", "info", 6 },
	[LOG_LEVEL_WARN] = { "WARN", "warn", 4 },
	[LOG_LEVEL_ERROR] = { "ERROR", "error", 3 },
};

static enum log_level log_level = LOG_LEVEL_INFO;
static enum log_format log_format = LOG_FORMAT_TEXT;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char **log_secrets;
static size_t log_nsecrets;

void
log_set_level(enum log_level level)
{
	log_level = level;
}

void
log_set_format(enum log_format format)
{
	log_format = format;
}

int
log_level_parse(const char *s)
{
	size_t i;

	for (i = 0; i < nitems(log_levels); i++) {
		if (strcasecmp(s, log_levels[i].lower) == 0)
			return (int)i;
	}
	return -1;
}

void
log_add_secret(const char *s)
{
	/* Very short values would scrub ordinary words; a secret that short is no secret. */
	if (s == NULL || strlen(s) < 4)
		return;
	pthread_mutex_lock(&log_lock);
	log_secrets = xrealloc(log_secrets, (log_nsecrets + 1) * sizeof *log_secrets);
	log_secrets[log_nsecrets++] = xstrdup(s);
	pthread_mutex_unlock(&log_lock);
}

void
log_clear_secrets(void)
{
	size_t i;

	pthread_mutex_lock(&log_lock);
	for (i = 0; i < log_nsecrets; i++)
		free(log_secrets[i]);
	free(log_secrets);
	log_secrets = NULL;
	log_nsecrets = 0;
	pthread_mutex_unlock(&log_lock);
}

/* Replace every registered secret in s by "***"; returns a new string. Called with log_lock held. */
static char *
log_scrub(const char *s)
{
	struct buf b;
	size_t i, best_len;
	const char *p, *best;

	buf_init(&b);
	while (*s != '\0') {
		best = NULL;
		best_len = 0;
		for (i = 0; i < log_nsecrets; i++) {
			p = strstr(s, log_secrets[i]);
			if (p != NULL && (best == NULL || p < best)) {
				best = p;
				best_len = strlen(log_secrets[i]);
			}
		}
		if (best == NULL) {
			buf_adds(&b, s);
			break;
		}
		buf_add(&b, s, (size_t)(best - s));
		buf_adds(&b, "***");
		s = best + best_len;
	}
	return buf_take(&b);
}

/* Build the whole line for one event in the configured format. */
static char *
log_format_line(enum log_level level, const char *module, const char *msg)
{
	struct timespec ts;
	char when[40];
	struct buf b;
	json_t *o;
	char *js;

	clock_gettime(CLOCK_REALTIME, &ts);
	util_time_wita(&ts, when, sizeof when);
	buf_init(&b);
	if (log_format == LOG_FORMAT_JSON) {
		o = json_pack("{s:s,s:s,s:s,s:s}", "ts", when, "level", log_levels[level].lower,
		    "module", module, "msg", msg);
		js = json_dumps(o, JSON_COMPACT);
		buf_adds(&b, js != NULL ? js : "{}");
		free(js);
		json_decref(o);
	} else if (getenv("JOURNAL_STREAM") != NULL)
		buf_addf(&b, "<%d>%s %s: %s", log_levels[level].syslog, log_levels[level].word, module, msg);
	else
		buf_addf(&b, "%s %s %s: %s", when, log_levels[level].word, module, msg);
	buf_add(&b, "\n", 1);
	return buf_take(&b);
}

void
log_vmsg(enum log_level level, const char *module, const char *fmt, va_list ap)
{
	char *msg, *line, *clean;
	ssize_t unused;

	if (level < log_level)
		return;
	if (vasprintf(&msg, fmt, ap) < 0)
		return;
	/* Lines must stay one line: a newline inside a message would forge another event. */
	for (char *p = msg; *p != '\0'; p++) {
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	}
	pthread_mutex_lock(&log_lock);
	clean = log_scrub(msg);
	line = log_format_line(level, module, clean);
	unused = write(STDERR_FILENO, line, strlen(line));
	(void)unused;
	pthread_mutex_unlock(&log_lock);
	free(line);
	free(clean);
	free(msg);
}

void
log_msg(enum log_level level, const char *module, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, module, fmt, ap);
	va_end(ap);
}

void
log_fatal(const char *module, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERROR, module, fmt, ap);
	va_end(ap);
	exit(1);
}
