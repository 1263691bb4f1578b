/*
 * log.h: one line per event on stderr, in a form journald takes as it is.
 * Text format: "2026-11-28T23:04:05.123+08:00 INFO http: Listening. addr=127.0.0.1:8080"
 * (under journald, JOURNAL_STREAM set, the timestamp is dropped and a <N>
 * priority prefix is written instead). JSON format: one object per line.
 * Messages are whole sentences; details follow as key=value pairs.
 * Registered secrets are replaced by "***" in every line before it is written.
 */
#ifndef LINBAT_LOG_H
#define LINBAT_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
};

enum log_format {
	LOG_FORMAT_TEXT,
	LOG_FORMAT_JSON,
};

void log_set_level(enum log_level);
void log_set_format(enum log_format);
/* Parse "debug|info|warn|error"; -1 if unknown. */
int log_level_parse(const char *);
/* Never print this string (a token, password, app secret); copied. */
void log_add_secret(const char *);
void log_clear_secrets(void);

/* module is a short tag such as "db" or "http". */
void log_msg(enum log_level, const char *module, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level, const char *module, const char *fmt, va_list);

#define log_debug(m, ...) log_msg(LOG_LEVEL_DEBUG, m, __VA_ARGS__)
#define log_info(m, ...) log_msg(LOG_LEVEL_INFO, m, __VA_ARGS__)
#define log_warn(m, ...) log_msg(LOG_LEVEL_WARN, m, __VA_ARGS__)
#define log_error(m, ...) log_msg(LOG_LEVEL_ERROR, m, __VA_ARGS__)
/* Log at ERROR and exit(1). */
void log_fatal(const char *module, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

#endif
