/*
 * ctl-import.h: the field checks of linbatctl's CSV imports, shared with
 * their unit test. Each check takes a field as read (not trimmed) and gives
 * the value to store in out (caller frees; NULL for an empty optional
 * field), or returns -1 with a reason (a static string) for the report.
 */
#ifndef LINBAT_CTL_IMPORT_H
#define LINBAT_CTL_IMPORT_H

/* A field check: 0 and *out, or -1 and *reason. */
typedef int (*ctl_import_check_cb)(const char *in, char **out, const char **reason);

int ctl_import_nib(const char *, char **, const char **);
int ctl_import_scale(const char *, char **, const char **);
/* "01111; 47111" -> the array literal "{01111,47111}"; "" -> "{}". */
int ctl_import_kbli(const char *, char **, const char **);
/* A phone in E.164 through phone_normalise (src/phone.c); empty: NULL. */
int ctl_import_phone(const char *, char **, const char **);
int ctl_import_email(const char *, char **, const char **);
/* "2020" or "2025", the KBLI edition; empty: NULL. */
int ctl_import_kbli_version(const char *, char **, const char **);
/* "id" or "en"; empty: NULL. */
int ctl_import_language(const char *, char **, const char **);
int ctl_import_channel(const char *, char **, const char **);
/* An LKPM period "2026-Q1" or "2026-S2" (any case). */
int ctl_import_period(const char *, char **, const char **);
/* An OSS status, as OSS writes it ("Perlu Perbaikan") or as linbat stores it. */
int ctl_import_status(const char *, char **, const char **);
/* A calendar date YYYY-MM-DD. */
int ctl_import_date(const char *, char **, const char **);

#endif
