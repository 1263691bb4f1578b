/*
 * migrate.h: schema migrations. Files migrations/NNNN_name.sql are applied in
 * order, each in one transaction, and recorded with a SHA-256 checksum in
 * linbat.schema_migrations. This runs before the event loop (linbatd
 * --migrate) or in linbatctl, so it uses blocking libpq.
 */
#ifndef LINBAT_MIGRATE_H
#define LINBAT_MIGRATE_H

#include <stddef.h>

#include <libpq-fe.h>

struct migration {
	char *version; /* "0001" */
	char *name;    /* "0001_core.sql" */
	char *path;
	char *checksum; /* hex SHA-256 of the file */
};

struct migration_set {
	struct migration *list;
	size_t n;
};

/* Read and checksum every NNNN_*.sql file of dir, sorted. 0, or -1 with *cause. */
int migrate_scan(const char *dir, struct migration_set *, char **cause);
void migrate_free(struct migration_set *);
/*
 * Compare the files with what the database recorded. Returns -1 with *cause
 * when an applied file has changed or the database has a migration this
 * program does not know (it is newer); else 0 with *pending set.
 */
int migrate_check_rows(const struct migration_set *, const PGresult *applied, size_t *pending, char **cause);
/* The query whose result migrate_check_rows() reads. */
#define MIGRATE_APPLIED_SQL \
	"select version, name, checksum from linbat.schema_migrations order by version"
/*
 * Apply what is pending (or, with dry_run, only list it). Each applied or
 * listed file is passed to report. Holds an advisory lock so that two
 * processes never migrate at once. 0, or -1 with *cause.
 */
int migrate_apply(PGconn *, const struct migration_set *, int dry_run,
    void (*report)(const struct migration *, void *), void *arg, char **cause);

#endif
