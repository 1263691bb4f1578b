/*
 * migrate.c: find, checksum, check and apply schema migrations. The runner
 * creates schema linbat and its bookkeeping table itself, so a migration file
 * holds only its own change and no BEGIN/COMMIT.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "log.h"
#include "migrate.h"
#include "util.h"

#define MIGRATE_LOCK_KEY "7425001" /* pg_advisory_lock key of the runner */

static const char migrate_bootstrap_sql[] =
    "create schema if not exists linbat;"
    "create table if not exists linbat.schema_migrations ("
    " version text primary key,"
    " name text not null,"
    " checksum text not null,"
    " applied_at timestamptz not null default now())";

/* Hex SHA-256 of data (caller frees). */
static char *
migrate_sha256(const char *data, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char *hex = xmalloc(2 * EVP_MAX_MD_SIZE + 1);

	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	util_hex(md, mdlen, hex);
	return hex;
}

/* A migration file name is four digits, an underscore, a name and ".sql". */
static int
migrate_name_ok(const char *name)
{
	size_t n = strlen(name);

	return n > 9 && strspn(name, "0123456789") == 4 && name[4] == '_' &&
	    strcmp(name + n - 4, ".sql") == 0;
}

static int
migrate_cmp(const void *a, const void *b)
{
	return strcmp(((const struct migration *)a)->name, ((const struct migration *)b)->name);
}

int
migrate_scan(const char *dir, struct migration_set *set, char **cause)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	struct migration *m;
	char *data;
	size_t len;

	set->list = NULL;
	set->n = 0;
	if (d == NULL) {
		xasprintf(cause, "Cannot open the migrations directory %s: %s.", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (!migrate_name_ok(de->d_name))
			continue;
		set->list = xrealloc(set->list, (set->n + 1) * sizeof *set->list);
		m = &set->list[set->n++];
		m->name = xstrdup(de->d_name);
		m->version = xstrndup(de->d_name, 4);
		xasprintf(&m->path, "%s/%s", dir, de->d_name);
		m->checksum = NULL;
		if ((data = util_read_file(m->path, &len, cause)) == NULL) {
			closedir(d);
			migrate_free(set);
			return -1;
		}
		m->checksum = migrate_sha256(data, len);
		free(data);
	}
	closedir(d);
	if (set->n > 1) /* qsort's base must not be NULL, even for no elements */
		qsort(set->list, set->n, sizeof *set->list, migrate_cmp);
	for (len = 1; len < set->n; len++) {
		if (strcmp(set->list[len - 1].version, set->list[len].version) == 0) {
			xasprintf(cause, "Two migrations share version %s: %s and %s.", set->list[len].version,
			    set->list[len - 1].name, set->list[len].name);
			migrate_free(set);
			return -1;
		}
	}
	return 0;
}

void
migrate_free(struct migration_set *set)
{
	size_t i;

	for (i = 0; i < set->n; i++) {
		free(set->list[i].version);
		free(set->list[i].name);
		free(set->list[i].path);
		free(set->list[i].checksum);
	}
	free(set->list);
	set->list = NULL;
	set->n = 0;
}

/* The file of a version, or NULL. */
static const struct migration *
migrate_find(const struct migration_set *set, const char *version)
{
	size_t i;

	for (i = 0; i < set->n; i++) {
		if (strcmp(set->list[i].version, version) == 0)
			return &set->list[i];
	}
	return NULL;
}

int
migrate_check_rows(const struct migration_set *set, const PGresult *applied, size_t *pending, char **cause)
{
	const struct migration *m;
	int i, rows = PQntuples(applied);

	for (i = 0; i < rows; i++) {
		const char *version = PQgetvalue(applied, i, 0), *name = PQgetvalue(applied, i, 1);

		if ((m = migrate_find(set, version)) == NULL) {
			xasprintf(cause, "The database has migration %s, which this program does not know: "
			    "the database is newer than this linbat. Upgrade linbat.", name);
			return -1;
		}
		if (strcmp(m->checksum, PQgetvalue(applied, i, 2)) != 0) {
			xasprintf(cause, "Migration %s has changed since it was applied (checksum differs). "
			    "Restore the file; write a new migration instead.", m->path);
			return -1;
		}
	}
	*pending = set->n - (size_t)rows;
	return 0;
}

/* Run one statement that returns no rows; -1 with *cause. */
static int
migrate_exec(PGconn *conn, const char *sql, const char *what, char **cause)
{
	PGresult *res = PQexec(conn, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		xasprintf(cause, "%s failed: %s", what, PQresultErrorMessage(res));
	PQclear(res);
	return ok ? 0 : -1;
}

/* Apply one file and record it, in one transaction. */
static int
migrate_one(PGconn *conn, const struct migration *m, char **cause)
{
	const char *params[3] = { m->version, m->name, m->checksum };
	PGresult *res;
	char *sql, *what;
	size_t len;
	int rc;

	if ((sql = util_read_file(m->path, &len, cause)) == NULL)
		return -1;
	xasprintf(&what, "Migration %s", m->name);
	rc = migrate_exec(conn, "begin", what, cause);
	if (rc == 0)
		rc = migrate_exec(conn, sql, what, cause);
	if (rc == 0) {
		res = PQexecParams(conn, "insert into linbat.schema_migrations (version, name, checksum) "
		    "values ($1, $2, $3)", 3, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			xasprintf(cause, "Recording %s failed: %s", m->name, PQresultErrorMessage(res));
			rc = -1;
		}
		PQclear(res);
	}
	if (rc == 0)
		rc = migrate_exec(conn, "commit", what, cause);
	else
		PQclear(PQexec(conn, "rollback"));
	free(what);
	free(sql);
	return rc;
}

/* Whether the result of MIGRATE_APPLIED_SQL lists version. */
static int
migrate_is_applied(const PGresult *applied, const char *version)
{
	int i;

	for (i = 0; i < PQntuples(applied); i++) {
		if (strcmp(PQgetvalue(applied, i, 0), version) == 0)
			return 1;
	}
	return 0;
}

/* Apply or list every file the database has not recorded. */
static int
migrate_run(PGconn *conn, const struct migration_set *set, const PGresult *applied, int dry_run,
    void (*report)(const struct migration *, void *), void *arg, char **cause)
{
	size_t i;

	for (i = 0; i < set->n; i++) {
		if (migrate_is_applied(applied, set->list[i].version))
			continue;
		if (!dry_run) {
			if (migrate_one(conn, &set->list[i], cause) != 0)
				return -1;
			log_info("migrate", "Applied a migration. file=%s", set->list[i].name);
		}
		if (report != NULL)
			report(&set->list[i], arg);
	}
	return 0;
}

int
migrate_apply(PGconn *conn, const struct migration_set *set, int dry_run,
    void (*report)(const struct migration *, void *), void *arg, char **cause)
{
	size_t pending = 0;
	PGresult *res;
	int rc = -1;

	if (migrate_exec(conn, "select pg_advisory_lock(" MIGRATE_LOCK_KEY ")", "Locking", cause) != 0)
		return -1;
	PQclear(PQexec(conn, "set client_min_messages = warning"));
	if (migrate_exec(conn, migrate_bootstrap_sql, "Creating linbat.schema_migrations", cause) != 0)
		goto out;
	res = PQexec(conn, MIGRATE_APPLIED_SQL);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		xasprintf(cause, "Reading linbat.schema_migrations failed: %s", PQresultErrorMessage(res));
		PQclear(res);
		goto out;
	}
	if (migrate_check_rows(set, res, &pending, cause) == 0)
		rc = migrate_run(conn, set, res, dry_run, report, arg, cause);
	PQclear(res);
out:
	PQclear(PQexec(conn, "select pg_advisory_unlock(" MIGRATE_LOCK_KEY ")"));
	return rc;
}
