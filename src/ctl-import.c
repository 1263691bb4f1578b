/*
 * ctl-import.c: `linbatctl investor import` and `linbatctl filing import`.
 * The file is read line by line and fed to libcsv, whose callbacks hand over
 * each field and each end of row; the line a row starts on is kept for the
 * report. A header row names the columns (any order). Each row is checked
 * field by field (ctl-import-check.c); good rows go into a COPY buffer,
 * every bad one into the report as "line N: column: reason". Then, in one
 * transaction: COPY into a temporary table, the database's own checks
 * (addresses owned by another investor, unknown NIBs), and one INSERT ...
 * SELECT per table. All or nothing unless --skip-bad.
 */
#include "config.h"

#include <csv.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl-import.h"
#include "ctl.h"
#include "util.h"

#define CTL_IMPORT_MAXCOLS 16

/* One column an import knows. */
struct ctl_import_col {
	const char *name;
	int required;            /* the header must have it */
	ctl_import_check_cb check; /* NULL: free text, trimmed, empty is NULL */
};

/* One kind of import: its columns (in COPY order) and its SQL. */
struct ctl_import_kind {
	const char *noun;
	const struct ctl_import_col *cols;
	size_t ncols;
	const char *table_sql;
	const char *copy_sql;
	const char *check_sql;
	const char *apply_sql;
};

static const struct ctl_import_col ctl_import_investor_cols[] = {
	{ "nib", 1, ctl_import_nib }, { "company_name", 1, NULL }, { "scale", 1, ctl_import_scale },
	{ "kbli", 0, ctl_import_kbli }, { "kbli_version", 0, ctl_import_kbli_version }, { "district", 0, NULL },
	{ "phone", 0, ctl_import_phone }, { "whatsapp", 0, ctl_import_phone }, { "email", 0, ctl_import_email },
	{ "preferred_channel", 0, ctl_import_channel }, { "language", 0, ctl_import_language },
};

static const struct ctl_import_col ctl_import_filing_cols[] = {
	{ "nib", 1, ctl_import_nib }, { "period", 1, ctl_import_period }, { "status", 1, ctl_import_status },
	{ "date", 0, ctl_import_date },
};

static const struct ctl_import_kind ctl_import_investors = {
	"investors", ctl_import_investor_cols, nitems(ctl_import_investor_cols),
	"select linbat.investor_import_table()",
	"copy investor_import (line, nib, company_name, scale, kbli, kbli_version, district, phone, "
	"whatsapp, email, preferred_channel, language) from stdin",
	"select line, col, reason from linbat.investor_import_check()",
	"select linbat.investor_import_apply($1::integer[])",
};

static const struct ctl_import_kind ctl_import_filings = {
	"filings", ctl_import_filing_cols, nitems(ctl_import_filing_cols),
	"select linbat.filing_import_table()",
	"copy filing_import (line, nib, period, status, filed_at) from stdin",
	"select line, col, reason from linbat.filing_import_check()",
	"select linbat.filing_import_apply($1::integer[])",
};

/* One rejected row's reason. */
struct ctl_import_err {
	long line;
	char *text; /* "column: reason" */
};

/* The state of one import while the file is parsed. */
struct ctl_import {
	const struct ctl_import_kind *kind;
	int header_done;
	int map[CTL_IMPORT_MAXCOLS * 2]; /* field index -> column index, -1 unknown */
	size_t nheader;
	char *fields[CTL_IMPORT_MAXCOLS];
	size_t nfield;
	long line, rec_line;
	struct buf copy;
	struct ctl_import_err *errs;
	size_t nerrs, caperrs;
	long nrows, ngood;
	long *nibs; /* line of each NIB seen, by open addressing on the NIB */
	unsigned long long *nibkeys;
	size_t nibcap;
	int fatal;
};

/* Record a rejection of line for column col. */
static void
ctl_import_reject(struct ctl_import *imp, long line, const char *col, const char *reason)
{
	if (imp->nerrs == imp->caperrs) {
		imp->caperrs = imp->caperrs ? imp->caperrs * 2 : 64;
		imp->errs = xrealloc(imp->errs, imp->caperrs * sizeof *imp->errs);
	}
	imp->errs[imp->nerrs].line = line;
	xasprintf(&imp->errs[imp->nerrs].text, "%s: %s", col, reason);
	imp->nerrs++;
}

/* Whether s is valid UTF-8 (no overlongs, no surrogates). */
static int
ctl_import_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0, k, len;
	unsigned int c;

	while (i < n) {
		c = s[i];
		len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
		if (len == 0 || i + len > n)
			return 0;
		c &= len == 1 ? 0x7f : 0xff >> (len + 1);
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			c = c << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 2 && c < 0x80) || (len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
		    (c >= 0xd800 && c <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

/* The slot of key in the NIB table: its own, or the empty one where it goes. */
static size_t
ctl_import_nib_slot(const struct ctl_import *imp, unsigned long long key)
{
	size_t i;

	for (i = key % imp->nibcap; imp->nibkeys[i] != 0 && imp->nibkeys[i] != key; i = (i + 1) % imp->nibcap)
		;
	return i;
}

/* The line a NIB was first seen on, or 0 after recording it on line. */
static long
ctl_import_nib_seen(struct ctl_import *imp, const char *nib, long line)
{
	unsigned long long key = strtoull(nib, NULL, 10) + 1, *okeys = imp->nibkeys;
	long *olines = imp->nibs;
	size_t i, j, old = imp->nibcap;

	if (imp->ngood * 2 >= (long)imp->nibcap) {
		imp->nibcap = old ? old * 2 : 1024;
		imp->nibkeys = xcalloc(imp->nibcap, sizeof *imp->nibkeys);
		imp->nibs = xcalloc(imp->nibcap, sizeof *imp->nibs);
		for (i = 0; i < old; i++) {
			if (okeys[i] == 0)
				continue;
			j = ctl_import_nib_slot(imp, okeys[i]);
			imp->nibkeys[j] = okeys[i];
			imp->nibs[j] = olines[i];
		}
		free(okeys);
		free(olines);
	}
	i = ctl_import_nib_slot(imp, key);
	if (imp->nibkeys[i] == key)
		return imp->nibs[i];
	imp->nibkeys[i] = key;
	imp->nibs[i] = line;
	return 0;
}

/* Append v to the COPY buffer in text format (NULL as \N), then sep. */
static void
ctl_import_copy_add(struct buf *b, const char *v, char sep)
{
	const char *p;

	if (v == NULL)
		buf_add(b, "\\N", 2);
	for (p = v; p != NULL && *p != '\0'; p++) {
		switch (*p) {
		case '\\': buf_add(b, "\\\\", 2); break;
		case '\t': buf_add(b, "\\t", 2); break;
		case '\n': buf_add(b, "\\n", 2); break;
		case '\r': buf_add(b, "\\r", 2); break;
		default: buf_add(b, p, 1); break;
		}
	}
	buf_add(b, &sep, 1);
}

/* A free-text field: trimmed, NULL if empty. */
static char *
ctl_import_text(const char *in)
{
	size_t n;

	while (*in == ' ' || *in == '\t')
		in++;
	n = strlen(in);
	while (n > 0 && (in[n - 1] == ' ' || in[n - 1] == '\t'))
		n--;
	return n == 0 ? NULL : xstrndup(in, n);
}

/* Check the fields of one row; on success append it to the COPY buffer. */
static void
ctl_import_row(struct ctl_import *imp)
{
	const struct ctl_import_kind *k = imp->kind;
	char *out[CTL_IMPORT_MAXCOLS] = { NULL };
	const char *reason;
	size_t i, before = imp->nerrs;
	long first;
	char num[40];

	imp->nrows++;
	for (i = 0; i < k->ncols; i++) {
		const char *in = imp->fields[i] != NULL ? imp->fields[i] : "";

		if (!ctl_import_utf8((const unsigned char *)in, strlen(in)))
			ctl_import_reject(imp, imp->rec_line, k->cols[i].name, "is not valid UTF-8");
		else if (k->cols[i].check != NULL) {
			if (k->cols[i].check(in, &out[i], &reason) != 0)
				ctl_import_reject(imp, imp->rec_line, k->cols[i].name, reason);
		} else if ((out[i] = ctl_import_text(in)) == NULL && k->cols[i].required)
			ctl_import_reject(imp, imp->rec_line, k->cols[i].name, "is required");
	}
	if (imp->nerrs == before && (first = ctl_import_nib_seen(imp, out[0], imp->rec_line)) != 0) {
		snprintf(num, sizeof num, "is also on line %ld", first);
		ctl_import_reject(imp, imp->rec_line, "nib", num);
	}
	if (imp->nerrs == before) {
		imp->ngood++;
		snprintf(num, sizeof num, "%ld", imp->rec_line);
		ctl_import_copy_add(&imp->copy, num, '\t');
		for (i = 0; i < k->ncols; i++)
			ctl_import_copy_add(&imp->copy, out[i], i + 1 < k->ncols ? '\t' : '\n');
	}
	for (i = 0; i < CTL_IMPORT_MAXCOLS; i++)
		free(out[i]);
}

/* libcsv: one field. Header fields name columns; others fill the row. */
static void
ctl_import_field(void *s, size_t len, void *data)
{
	struct ctl_import *imp = data;
	size_t idx = imp->nfield++, i;
	char *raw, *name;

	if (imp->rec_line == 0)
		imp->rec_line = imp->line;
	if (!imp->header_done) {
		if (idx >= nitems(imp->map))
			return;
		raw = xstrndup(s != NULL ? s : "", len);
		name = ctl_import_text(raw);
		free(raw);
		imp->map[idx] = -1;
		for (i = 0; name != NULL && i < imp->kind->ncols; i++) {
			if (strcasecmp(name, imp->kind->cols[i].name) == 0)
				imp->map[idx] = (int)i;
		}
		if (imp->map[idx] < 0) {
			ctl_import_reject(imp, imp->rec_line, "header",
			    name == NULL ? "has an empty column name" : "has a column linbat does not know");
			imp->fatal = 1;
		}
		free(name);
		return;
	}
	if (idx < imp->nheader && imp->map[idx] >= 0 && imp->fields[imp->map[idx]] == NULL)
		imp->fields[imp->map[idx]] = xstrndup(s != NULL ? s : "", len);
}

/* Check the header once its row is complete: each required column, once. */
static void
ctl_import_header(struct ctl_import *imp)
{
	size_t i, j, seen;

	imp->nheader = imp->nfield < nitems(imp->map) ? imp->nfield : nitems(imp->map);
	for (i = 0; i < imp->kind->ncols; i++) {
		for (j = 0, seen = 0; j < imp->nheader; j++)
			seen += imp->map[j] == (int)i;
		if (seen > 1 || (seen == 0 && imp->kind->cols[i].required)) {
			ctl_import_reject(imp, imp->rec_line, imp->kind->cols[i].name,
			    seen > 1 ? "appears twice in the header" : "is missing from the header");
			imp->fatal = 1;
		}
	}
	imp->header_done = 1;
}

/* libcsv: the end of a row. */
static void
ctl_import_endrow(int c, void *data)
{
	struct ctl_import *imp = data;
	size_t i;
	char why[64];

	if (imp->rec_line == 0)
		imp->rec_line = imp->line;
	if (!imp->header_done)
		ctl_import_header(imp);
	else if (imp->nfield != imp->nheader) {
		imp->nrows++;
		snprintf(why, sizeof why, "has %zu fields, the header has %zu", imp->nfield, imp->nheader);
		ctl_import_reject(imp, imp->rec_line, "row", why);
	} else
		ctl_import_row(imp);
	for (i = 0; i < nitems(imp->fields); i++) {
		free(imp->fields[i]);
		imp->fields[i] = NULL;
	}
	imp->nfield = 0;
	imp->rec_line = 0;
}

/* Show progress on a terminal: the share of the file's bytes read. */
static void
ctl_import_progress(const struct ctl_import *imp, off_t done, off_t size, int last)
{
	int pct = size > 0 ? (int)(done * 100 / size) : 100, bar = pct / 4;

	fprintf(stderr, "\r[%.*s%*s] %3d%% %ld rows%s", bar, "#########################", 25 - bar, "", pct,
	    imp->nrows, last ? "\n" : "");
}

/* Parse the whole file; -1 if it cannot be read or libcsv fails. */
static int
ctl_import_parse(struct ctl_import *imp, const char *path)
{
	struct csv_parser p;
	FILE *f = fopen(path, "rb");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	off_t done = 0;
	struct stat st;
	int tty = isatty(STDERR_FILENO), rc = 0;

	if (f == NULL) {
		fprintf(stderr, "linbatctl: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	fstat(fileno(f), &st);
	csv_init(&p, CSV_APPEND_NULL);
	while ((n = getline(&line, &cap, f)) > 0) {
		const char *s = line;

		imp->line++;
		if (imp->line == 1 && n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
			s += 3, n -= 3;
		done += n;
		if (csv_parse(&p, s, (size_t)n, ctl_import_field, ctl_import_endrow, imp) != (size_t)n) {
			fprintf(stderr, "linbatctl: %s line %ld: %s\n", path, imp->line, csv_strerror(csv_error(&p)));
			rc = -1;
			break;
		}
		if (tty && imp->line % 5000 == 0)
			ctl_import_progress(imp, done, st.st_size, 0);
	}
	if (rc == 0)
		csv_fini(&p, ctl_import_field, ctl_import_endrow, imp);
	if (tty)
		ctl_import_progress(imp, st.st_size, st.st_size, 1);
	csv_free(&p);
	free(line);
	fclose(f);
	return rc;
}

/* Run a statement; print PostgreSQL's message on failure. */
static PGresult *
ctl_import_exec(PGconn *conn, const char *sql, int n, const char *const *params)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
		fprintf(stderr, "linbatctl: %s", PQresultErrorMessage(res));
		PQclear(res);
		return NULL;
	}
	return res;
}

/* COPY the good rows into the temporary table. */
static int
ctl_import_copy(PGconn *conn, const struct ctl_import *imp)
{
	PGresult *res = PQexec(conn, imp->kind->copy_sql);
	size_t off, chunk;
	int ok;

	ok = PQresultStatus(res) == PGRES_COPY_IN;
	PQclear(res);
	for (off = 0; ok && off < imp->copy.len; off += chunk) {
		chunk = imp->copy.len - off < 1 << 20 ? imp->copy.len - off : 1 << 20;
		ok = PQputCopyData(conn, imp->copy.data + off, (int)chunk) == 1;
	}
	if (PQputCopyEnd(conn, ok ? NULL : "linbatctl gave up") != 1)
		ok = 0;
	res = PQgetResult(conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		fprintf(stderr, "linbatctl: %s", PQresultErrorMessage(res));
		ok = 0;
	}
	PQclear(res);
	while ((res = PQgetResult(conn)) != NULL)
		PQclear(res);
	return ok ? 0 : -1;
}

/* Add the database's rejections. */
static int
ctl_import_db_check(PGconn *conn, struct ctl_import *imp)
{
	PGresult *res = ctl_import_exec(conn, imp->kind->check_sql, 0, NULL);
	int i;

	if (res == NULL)
		return -1;
	for (i = 0; i < PQntuples(res); i++)
		ctl_import_reject(imp, strtol(PQgetvalue(res, i, 0), NULL, 10), PQgetvalue(res, i, 1),
		    PQgetvalue(res, i, 2));
	PQclear(res);
	return 0;
}

/* Print the rejections; return the lines rejected as an array literal. */
static char *
ctl_import_report(struct ctl_import *imp, long *nbad)
{
	struct buf b;
	size_t i;

	/* a stable insertion sort: the file's rejections come in order, the
	 * database's (in order too) are merged in */
	for (i = 0; i < imp->nerrs; i++) {
		size_t j;

		for (j = i; j > 0 && imp->errs[j - 1].line > imp->errs[j].line; j--) {
			struct ctl_import_err t = imp->errs[j];

			imp->errs[j] = imp->errs[j - 1];
			imp->errs[j - 1] = t;
		}
	}
	buf_init(&b);
	buf_adds(&b, "{");
	*nbad = 0;
	for (i = 0; i < imp->nerrs; i++) {
		fprintf(stderr, "line %ld: %s\n", imp->errs[i].line, imp->errs[i].text);
		if (i == 0 || imp->errs[i].line != imp->errs[i - 1].line) {
			buf_addf(&b, "%s%ld", *nbad > 0 ? "," : "", imp->errs[i].line);
			(*nbad)++;
		}
	}
	buf_adds(&b, "}");
	return buf_take(&b);
}

/* In one transaction: COPY, the database's checks, then apply or roll back. */
static int
ctl_import_db(struct ctl *ctl, struct ctl_import *imp, int skip_bad)
{
	PGresult *res;
	const char *params[1];
	char *skip;
	long nbad, applied = 0;
	int rc = 1;

	if ((res = ctl_import_exec(ctl->conn, "begin", 0, NULL)) == NULL)
		return 1;
	PQclear(res);
	if ((res = ctl_import_exec(ctl->conn, imp->kind->table_sql, 0, NULL)) == NULL ||
	    (PQclear(res), ctl_import_copy(ctl->conn, imp)) != 0 || ctl_import_db_check(ctl->conn, imp) != 0)
		goto out;
	params[0] = skip = ctl_import_report(imp, &nbad);
	if (nbad > 0 && !skip_bad) {
		fprintf(stderr, "linbatctl: %ld of %ld rows rejected; nothing was imported "
		    "(--skip-bad imports the %ld good rows).\n", nbad, imp->nrows, imp->nrows - nbad);
		free(skip);
		goto out;
	}
	res = ctl_import_exec(ctl->conn, imp->kind->apply_sql, 1, params);
	free(skip);
	if (res == NULL)
		goto out;
	applied = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if ((res = ctl_import_exec(ctl->conn, "commit", 0, NULL)) == NULL)
		return 1;
	PQclear(res);
	printf("imported %ld %s, rejected %ld rows.\n", applied, imp->kind->noun, nbad);
	return 0;
out:
	PQclear(PQexec(ctl->conn, "rollback"));
	return rc;
}

/* Parse, check and import path as kind. */
static int
ctl_import_run(struct ctl *ctl, const struct ctl_import_kind *kind, const char *path, int skip_bad)
{
	struct ctl_import imp;
	size_t i;
	long nbad;
	int rc;

	memset(&imp, 0, sizeof imp);
	imp.kind = kind;
	buf_init(&imp.copy);
	if (ctl_import_parse(&imp, path) != 0)
		rc = 1;
	else if (imp.fatal || !imp.header_done) {
		if (!imp.header_done)
			ctl_import_reject(&imp, 1, "header", "is missing: the file is empty");
		free(ctl_import_report(&imp, &nbad));
		fprintf(stderr, "linbatctl: %s has no usable header row; nothing was imported.\n", path);
		rc = 1;
	} else
		rc = ctl_import_db(ctl, &imp, skip_bad);
	for (i = 0; i < imp.nerrs; i++)
		free(imp.errs[i].text);
	free(imp.errs);
	free(imp.nibs);
	free(imp.nibkeys);
	buf_free(&imp.copy);
	return rc;
}

/* linbatctl investor|filing import FILE.csv [--skip-bad] */
static int
ctl_import_cmd(struct ctl *ctl, int argc, char **argv, const struct ctl_import_kind *kind, const char *usage)
{
	int skip_bad = 0, i;
	const char *path = NULL;

	if (argc < 2 || strcmp(argv[1], "import") != 0)
		return ctl_usage_error(ctl, usage);
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--skip-bad") == 0)
			skip_bad = 1;
		else if (path == NULL && argv[i][0] != '-')
			path = argv[i];
		else
			return ctl_usage_error(ctl, usage);
	}
	if (path == NULL)
		return ctl_usage_error(ctl, usage);
	return ctl_import_run(ctl, kind, path, skip_bad);
}

/* linbatctl investor import FILE.csv [--skip-bad] */
static int
ctl_import_investor(struct ctl *ctl, int argc, char **argv)
{
	return ctl_import_cmd(ctl, argc, argv, &ctl_import_investors, "investor import FILE.csv [--skip-bad]");
}

/* linbatctl filing import FILE.csv [--skip-bad] */
static int
ctl_import_filing(struct ctl *ctl, int argc, char **argv)
{
	return ctl_import_cmd(ctl, argc, argv, &ctl_import_filings, "filing import FILE.csv [--skip-bad]");
}

const struct ctl_cmd ctl_import_cmds[] = {
	{ "investor", "investor import FILE.csv [--skip-bad]", "import or update investors from CSV", CTL_NEED_DB,
	    ctl_import_investor },
	{ "filing", "filing import FILE.csv [--skip-bad]", "import LKPM filings exported from OSS", CTL_NEED_DB,
	    ctl_import_filing },
};
const size_t ctl_import_ncmds = nitems(ctl_import_cmds);
