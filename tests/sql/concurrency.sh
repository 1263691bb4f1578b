#!/bin/sh
# Prove the business functions right under concurrency, with pgbench driving
# 8 connections at once (-c 8 -j 2 -t 13: 104 calls), each scenario in a fresh
# database made by run.sh --setup:
#   - 104 first messages of one new sender, distinct provider ids:
#     exactly 1 investor, 1 identity, 1 open conversation, 104 messages;
#   - one message delivered 104 times (same provider id): exactly 1 message;
#   - an investor known on WhatsApp and email writes on both at once:
#     still 1 open conversation;
#   - eight dispatchers claim from one outbox: no message claimed twice.
# A check that cannot fail proves nothing, so each one then runs against a
# broken copy of the function it guards (the locks it relies on removed) and
# must fail there.
#
# Runs from run.sh, or alone under tests/with-pg. Exits 0 if every check
# passed and every broken copy was caught, 1 otherwise, 99 if it could not run.
# shellcheck disable=SC2317 # functions called by name (check_*, the trap)
set -u

here=$(cd "$(dirname "$0")" && pwd)
PATH=${LINBAT_TEST_PGBIN:-/usr/lib/postgresql/15/bin}:$PATH
export PATH

if [ -z "${PGPORT:-}" ]; then
	echo "concurrency.sh: PGPORT is not set; run me under tests/with-pg" >&2
	exit 99
fi

seq=0
db=
dbs=
log=$(mktemp "${TMPDIR:-/tmp}/linbat-conc.XXXXXX") || exit 99
# Drop the databases this script made (copies first, the template last: a
# template cannot go while it is copied) and the pgbench log.
cleanup() {
	for d in $dbs; do
		dropdb --if-exists "$d" >/dev/null 2>&1
	done
	rm -f "$log"
}
trap cleanup EXIT

# Broken copies, each SQL run after the migrations. A race is a matter of
# timing, so the broken copies also sleep inside each check-then-insert
# window: the checks must catch the bug every time, not by luck.
# ingest_inbound without its advisory locks; $1 = true drops its ON CONFLICT
# guards too.
mutant_ingest() {
	cat <<EOF
create or replace function linbat.xact_lock(p_space text, p_key text)
	returns void language sql as \$\$ select \$\$;
do \$\$
declare
	d text := pg_get_functiondef('linbat.ingest_inbound(text, text, text, text, text, text, jsonb,
		timestamptz, text)'::regprocedure);
	m text := regexp_replace(d, '(insert into linbat\.(identity|conversation|message) )',
		'perform pg_sleep(0.02); \1', 'g');
begin
	if $1 then
		m := regexp_replace(m, '\s+on conflict \([^)]*\)( where [^\n]*?)?\s+do nothing', '', 'g');
	end if;
	if m = d or (m ~ 'on conflict') = $1 then
		raise exception 'the broken copy no longer matches linbat.ingest_inbound';
	end if;
	execute m;
end
\$\$
EOF
}
# claim_outbound loses FOR UPDATE SKIP LOCKED.
MUTANT_NO_ROW_LOCKS="do \$\$
declare
	d text := pg_get_functiondef('linbat.claim_outbound(text, integer, integer)'::regprocedure);
	m text := regexp_replace(d, '\\s+for update skip locked', '', 'gi');
begin
	if m = d then
		raise exception 'the mutant no longer matches claim_outbound';
	end if;
	execute m;
end
\$\$"

# Run SQL $1 in the current database, quietly, printing bare values.
q() {
	psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"
}

# Make a fresh database (a copy of the template) with the channel instances
# and the broken copy $1 (empty: none); it becomes the current database.
fresh_db() {
	seq=$((seq + 1))
	db=linbat_conc_$$_$seq
	dbs="$db $dbs"
	if ! createdb -T "$template" "$db" ||
		! q "select linbat.channel_register('conc-wa', 'whatsapp');
			select linbat.channel_register('conc-mail', 'email');
			-- on duty, so no acknowledgement joins the messages counted
			insert into linbat.operator (name, email, presence)
			values ('Jaga', 'jaga@example.com', 'online');
			$1" >/dev/null; then
		echo "concurrency.sh: could not prepare database $db" >&2
		exit 99
	fi
}

# Run pgbench with the scripts given on the current database; print how many
# of its transactions did not complete (an error aborts a pgbench client).
bench() {
	pgbench -n -c 8 -j 2 -t "$tx" "$@" "$db" >"$log" 2>&1
	done_tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\)\/.*/\1/p' "$log")
	echo $((8 * tx - ${done_tx:-0}))
}

# The row counts the ingest checks compare.
ingest_counts() {
	q "select format('investors=%s identities=%s open_conversations=%s messages=%s',
		(select count(*) from linbat.investor), (select count(*) from linbat.identity),
		(select count(*) from linbat.conversation where status <> 'resolved'),
		(select count(*) from linbat.message))"
}

# Scenario checks: $1 is the broken copy to install (empty: none). Each sets
# $got (what happened) and $want (what must happen).
check_distinct() {
	fresh_db "$1"
	tx=13
	failed=$(bench -f "$here/ingest-distinct.pgbench")
	got="$(ingest_counts) failed_calls=$failed"
	want="investors=1 identities=1 open_conversations=1 messages=104 failed_calls=0"
}

check_same() {
	fresh_db "$1"
	tx=13
	failed=$(bench -f "$here/ingest-same.pgbench")
	got="$(ingest_counts) failed_calls=$failed"
	want="investors=1 identities=1 open_conversations=1 messages=1 failed_calls=0"
}

check_pair() {
	fresh_db "$1"
	q "with i as (insert into linbat.investor (display_name) values ('Pasangan') returning id)
		insert into linbat.identity (investor_id, kind, address)
		select id, 'whatsapp', '+6281277000003' from i union all
		select id, 'email', 'pasangan@contoh.co.id' from i" >/dev/null
	tx=13
	failed=$(bench -f "$here/ingest-pair-wa.pgbench" -f "$here/ingest-pair-mail.pgbench")
	got="$(ingest_counts) failed_calls=$failed"
	want="investors=1 identities=2 open_conversations=1 messages=104 failed_calls=0"
}

check_claim() {
	fresh_db "$1"
	q "select linbat.enqueue_reply(r.conversation_id, 'pesan ' || n, null)
		from linbat.ingest_inbound('conc-wa', 'whatsapp', '+6281277000004', 'wamid.c0', 'Halo',
			'text', '{}', now(), null) r, generate_series(1, 500) n" >/dev/null
	tx=20
	failed=$(bench -f "$here/claim.pgbench")
	got=$(q "select format('claimed=%s claimed_twice=%s',
		count(*) filter (where status = 'sending'), count(*) filter (where attempts > 1))
		from linbat.message where direction = 'out'")
	got="$got failed_calls=$failed"
	want="claimed=500 claimed_twice=0 failed_calls=0"
}

# The schema is made once; each check gets a copy.
template=linbat_conc_$$_template
dbs=$template
"$here/run.sh" --setup "$template" >/dev/null || exit 99
status=0

# Run check $1 on the real functions; it must pass.
expect_pass() {
	"check_$1" ""
	if [ "$got" = "$want" ]; then
		echo "concurrency: $got ($1)"
	else
		echo "concurrency: FAILED $1: got $got, want $want"
		sed 's/^/  pgbench: /' "$log" | grep -Ei 'error|abort' | head -n 5
		status=1
	fi
}

# Run check $1 on broken copy $3 (described by $2); it must fail.
expect_fail() {
	"check_$1" "$3"
	if [ "$got" != "$want" ]; then
		echo "concurrency: check $1 fails $2, as it must: $got"
	else
		echo "concurrency: FAILED check $1 passes even $2: it cannot catch the bug it is for"
		status=1
	fi
}

expect_pass distinct
expect_pass same
expect_pass pair
expect_pass claim
expect_fail distinct "without the locks and ON CONFLICT guards" "$(mutant_ingest true)"
expect_fail same "without the advisory locks" "$(mutant_ingest false)"
expect_fail pair "without the locks and ON CONFLICT guards" "$(mutant_ingest true)"
expect_fail claim "without FOR UPDATE SKIP LOCKED" "$MUTANT_NO_ROW_LOCKS"
exit $status
