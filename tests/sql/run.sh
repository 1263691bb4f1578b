#!/bin/sh
# Test the SQL of migrations/: make a fresh database, apply every migration
# the way the C runner does (schema linbat and linbat.schema_migrations first,
# then each file in order, one transaction per file), run the pgTAP files of
# tests/sql with pg_prove, then tests/sql/concurrency.sh and
# tests/sql/routing-concurrency.sh.
#
#   tests/with-pg tests/sql/run.sh          the whole suite
#   tests/sql/run.sh --setup DBNAME         only make DBNAME with the schema
#
# Needs a running PostgreSQL reachable through PGHOST/PGPORT/PGUSER, as
# tests/with-pg exports. Exits 0 if everything passed, 1 if a test failed,
# 99 if the test could not run (automake's hard error).
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
PATH=${LINBAT_TEST_PGBIN:-/usr/lib/postgresql/15/bin}:$PATH
export PATH

if [ -z "${PGPORT:-}" ]; then
	echo "run.sh: PGPORT is not set; run me as tests/with-pg tests/sql/run.sh" >&2
	exit 99
fi
for tool in createdb psql pg_prove pgbench sha256sum; do
	command -v "$tool" >/dev/null || {
		echo "run.sh: $tool not found (packages postgresql, postgresql-15-pgtap)" >&2
		exit 99
	}
done

# Create database $1 with pgTAP, dblink and every migration applied. Like
# the C runner (src/migrate.c), each file goes to the server as one
# multi-statement query (psql -c), in one transaction with its record.
setup_db() {
	createdb "$1" && psql -X -q -v ON_ERROR_STOP=1 -d "$1" -c "create extension pgtap;
		create extension dblink;
		create schema linbat;
		create table linbat.schema_migrations (version text primary key, name text not null,
			checksum text not null, applied_at timestamptz not null default now());" || return 1
	for f in "$top"/migrations/[0-9][0-9][0-9][0-9]_*.sql; do
		[ -f "$f" ] || continue
		name=$(basename "$f")
		psql -X -q -v ON_ERROR_STOP=1 -1 -d "$1" -c "$(cat "$f")" \
			-c "insert into linbat.schema_migrations (version, name, checksum)
				values ('${name%%_*}', '$name', '$(sha256sum "$f" | cut -d' ' -f1)')" || {
			echo "run.sh: migration $name failed" >&2
			return 1
		}
	done
}

if [ "${1:-}" = "--setup" ]; then
	[ $# -eq 2 ] || {
		echo "usage: $0 --setup DBNAME" >&2
		exit 2
	}
	setup_db "$2" || exit 99
	exit 0
fi

db=linbat_sql_$$
trap 'dropdb --if-exists "$db" >/dev/null 2>&1' EXIT
setup_db "$db" || exit 99

status=0
# pg_prove prints one line per file and the summary; --failures shows what failed.
pg_prove --failures -d "$db" "$here"/[0-9][0-9]_*.sql || status=1
"$here/concurrency.sh" || status=1
"$here/routing-concurrency.sh" || status=1
exit $status
