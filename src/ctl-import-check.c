/*
 * ctl-import-check.c: the checks of the fields of linbatctl's CSV imports
 * (investors and filings). Each one trims the field, says in a few words
 * what is wrong with it, or gives the value as the database stores it. The
 * database checks the same rules again (its CHECK constraints); these exist
 * so that every bad row is reported with its line, not only the first.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-import.h"
#include "phone.h"
#include "util.h"

/* A trimmed copy of s. */
static char *
ctl_import_trim(const char *s)
{
	size_t n;

	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	return xstrndup(s, n);
}

/* Whether s is n digits exactly. */
static int
ctl_import_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return 0;
	}
	return s[n] == '\0';
}

/* Give up on a field: free v, set the reason. */
static int
ctl_import_bad(char *v, const char **reason, const char *why)
{
	free(v);
	*reason = why;
	return -1;
}

int
ctl_import_nib(const char *in, char **out, const char **reason)
{
	char *v = ctl_import_trim(in);

	if (*v == '\0')
		return ctl_import_bad(v, reason, "is required");
	if (!ctl_import_digits(v, 13))
		return ctl_import_bad(v, reason, "must be 13 digits");
	*out = v;
	return 0;
}

/* Look a lower-cased, trimmed field up in a NULL-ended list of words. */
static int
ctl_import_word(const char *in, const char *const *words, char **out)
{
	char *v = ctl_import_trim(in), *p;
	size_t i;

	for (p = v; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	for (i = 0; words[i] != NULL; i++) {
		if (strcmp(v, words[i]) == 0) {
			*out = v;
			return 0;
		}
	}
	free(v);
	return -1;
}

int
ctl_import_scale(const char *in, char **out, const char **reason)
{
	static const char *const scales[] = { "mikro", "kecil", "menengah", "besar", NULL };

	if (ctl_import_word(in, scales, out) != 0) {
		*reason = "must be mikro, kecil, menengah or besar";
		return -1;
	}
	return 0;
}

int
ctl_import_kbli(const char *in, char **out, const char **reason)
{
	char *v = ctl_import_trim(in), *tok, *save = NULL, *code;
	struct buf b;

	buf_init(&b);
	buf_add(&b, "{", 1);
	for (tok = strtok_r(v, ";", &save); tok != NULL; tok = strtok_r(NULL, ";", &save)) {
		code = ctl_import_trim(tok);
		if (!ctl_import_digits(code, 5) || strstr(b.data, code) != NULL) {
			free(code);
			buf_free(&b);
			return ctl_import_bad(v, reason,
			    "must be 5-digit KBLI codes separated by semicolons, each once");
		}
		if (b.len > 1)
			buf_add(&b, ",", 1);
		buf_add(&b, code, strlen(code));
		free(code);
	}
	buf_adds(&b, "}");
	free(v);
	*out = buf_take(&b);
	return 0;
}

int
ctl_import_phone(const char *in, char **out, const char **reason)
{
	/* linbatctl is single-threaded: the reason lives until the next call */
	static char why[160];
	char e164[PHONE_E164_MAX], *v = ctl_import_trim(in), *cause = NULL;

	*out = NULL;
	if (*v == '\0') {
		free(v);
		return 0;
	}
	if (phone_normalise(v, e164, sizeof e164, &cause) != 0) {
		snprintf(why, sizeof why, "%s", cause != NULL ? cause : "is not a phone number");
		free(cause);
		return ctl_import_bad(v, reason, why);
	}
	free(v);
	*out = xstrdup(e164);
	return 0;
}

int
ctl_import_email(const char *in, char **out, const char **reason)
{
	char *v = ctl_import_trim(in), *p, *at;

	if (*v == '\0') {
		free(v);
		*out = NULL;
		return 0;
	}
	for (p = v; *p != '\0'; p++) {
		if (isspace((unsigned char)*p))
			return ctl_import_bad(v, reason, "is not an email address");
		*p = (char)tolower((unsigned char)*p);
	}
	at = strchr(v, '@');
	if (at == NULL || at == v || strchr(at + 1, '@') != NULL || strchr(at + 1, '.') == NULL ||
	    at[1] == '.' || v[strlen(v) - 1] == '.')
		return ctl_import_bad(v, reason, "is not an email address");
	*out = v;
	return 0;
}

/* A word of a list where an empty field means NULL. */
static int
ctl_import_optional_word(const char *in, const char *const *words, char **out, const char **reason,
    const char *why)
{
	if (ctl_import_word(in, words, out) != 0) {
		*reason = why;
		return -1;
	}
	if (**out == '\0') {
		free(*out);
		*out = NULL;
	}
	return 0;
}

int
ctl_import_kbli_version(const char *in, char **out, const char **reason)
{
	static const char *const versions[] = { "2020", "2025", "", NULL };

	return ctl_import_optional_word(in, versions, out, reason, "must be 2020 or 2025");
}

int
ctl_import_language(const char *in, char **out, const char **reason)
{
	static const char *const languages[] = { "id", "en", "", NULL };

	return ctl_import_optional_word(in, languages, out, reason, "must be id or en");
}

int
ctl_import_period(const char *in, char **out, const char **reason)
{
	char *v = ctl_import_trim(in);

	if (strlen(v) == 7)
		v[5] = (char)toupper((unsigned char)v[5]);
	if (strlen(v) != 7 || v[4] != '-' || !isdigit((unsigned char)v[0]) || !isdigit((unsigned char)v[1]) ||
	    !isdigit((unsigned char)v[2]) || !isdigit((unsigned char)v[3]) || strncmp(v, "0000", 4) == 0 ||
	    !((v[5] == 'Q' && v[6] >= '1' && v[6] <= '4') || (v[5] == 'S' && (v[6] == '1' || v[6] == '2'))))
		return ctl_import_bad(v, reason, "must be a period such as 2026-Q1 or 2026-S1");
	*out = v;
	return 0;
}

int
ctl_import_status(const char *in, char **out, const char **reason)
{
	static const char *const statuses[] = { "draf", "terkirim", "perlu_perbaikan", "sudah_diperbaiki",
		"disetujui", NULL };
	char *v = ctl_import_trim(in), *p;

	for (p = v; *p != '\0'; p++) {
		if (*p == ' ' || *p == '-')
			*p = '_';
	}
	if (ctl_import_word(v, statuses, out) != 0)
		return ctl_import_bad(v, reason,
		    "must be an OSS status: Draf, Terkirim, Perlu Perbaikan, Sudah Diperbaiki, Disetujui");
	free(v);
	return 0;
}

int
ctl_import_date(const char *in, char **out, const char **reason)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	char *v = ctl_import_trim(in);
	int y, m, d;

	if (*v == '\0') {
		free(v);
		*out = NULL;
		return 0;
	}
	if (strlen(v) != 10 || v[4] != '-' || v[7] != '-' || sscanf(v, "%4d-%2d-%2d", &y, &m, &d) != 3 ||
	    y < 2000 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] ||
	    (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))))
		return ctl_import_bad(v, reason, "must be a date YYYY-MM-DD");
	*out = v;
	return 0;
}

int
ctl_import_channel(const char *in, char **out, const char **reason)
{
	static const char *const channels[] = { "whatsapp", "sms", "email", "wa", "", NULL };

	if (ctl_import_optional_word(in, channels, out, reason, "must be whatsapp, sms or email") != 0)
		return -1;
	if (*out != NULL && strcmp(*out, "wa") == 0) {
		free(*out);
		*out = xstrdup("whatsapp");
	}
	return 0;
}
