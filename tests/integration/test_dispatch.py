"""Tests of the outbound dispatcher (src/dispatch.c) and the test channel
(channels/test.c), and through them of linbat.claim_outbound,
linbat.outbound_sent and linbat.outbound_failed.

Outbound rows are seeded straight into the database (one statement for
thousands), as the scheduler and the API will. The test channel appends
every message it sends to a JSON-lines file; the WhatsApp emulator
(tests/emulators/wa-emu) records every send it accepts. "Sent once" is
checked on those records, not on the daemon's own word.
"""

import collections
import json
import os
import signal
import time

import pytest

import linbat

# Test channel sections: fast retries, a short lease so a crash costs seconds.
DISPATCH = {"batch": "100", "in_flight": "200", "backoff_base": "100ms", "max_attempts": "20",
            "lease": "5s"}

SEED_SQL = """
with inv as (
    insert into linbat.investor (display_name)
    select 'Investor ' || g from generate_series(1, %(n)s) g
    returning id
), ident as (
    insert into linbat.identity (investor_id, kind, address, last_inbound_at)
    select inv.id, k.kind, '+62812' || lpad(inv.id::text, 8, '0'),
        case when %(window_open)s then now() else now() - interval '2 days' end
    from inv cross join unnest(%(kinds)s::text[]) as k (kind)
    returning id, investor_id, kind
), conv as (
    insert into linbat.conversation (investor_id)
    select id from inv
    returning id, investor_id
)
insert into linbat.message (conversation_id, direction, identity_id, channel_instance, body,
    status, next_attempt_at, template)
select conv.id, 'out', ident.id, %(instance)s, 'Pesan untuk ' || ident.investor_id, 'queued', now(),
    %(template)s::jsonb
from conv join ident on ident.investor_id = conv.investor_id and ident.kind = %(kind)s
order by conv.id
returning id
"""

TEMPLATE = {"name": "lkpm_reminder", "language": "id", "params": ["Triwulan III"]}


def seed(conn, instance, n, kinds=("sms",), window_open=True, template=None):
    """Queue n outbound messages on instance, one per new investor whose
    identities are of kinds (the first is the one written to); return the ids."""
    with conn.cursor() as cur:
        cur.execute(SEED_SQL, {"n": n, "instance": instance, "kinds": list(kinds), "kind": kinds[0],
                               "window_open": window_open,
                               "template": json.dumps(template) if template else None})
        return [r[0] for r in cur.fetchall()]


def read_records(path):
    """The JSON lines of a record file, or [] if it does not exist yet."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def statuses(conn, ids):
    """{status: count} of the messages ids."""
    with conn.cursor() as cur:
        cur.execute("select status, count(*) from linbat.message where id = any(%s) group by 1",
                    (list(ids),))
        return dict(cur.fetchall())


def wait_all_sent(conn, ids, timeout):
    """Wait until every message of ids is sent; return the final {status: count}."""
    def done():
        s = statuses(conn, ids)
        return s if s.get("sent", 0) == len(ids) else None
    return linbat.wait_for(done, timeout, interval=0.2) or statuses(conn, ids)


def tchannel(name, path, **keys):
    """A [channel NAME] section of type test recording to path."""
    return {"channel " + name: dict({"type": "test", "record": path}, **keys)}


def start(start_linbatd, tmp_path, channels, dispatch=None, name=None, **kw):
    extra = {"dispatch": dict(DISPATCH, **(dispatch or {}))}
    extra.update(channels)
    return start_linbatd(extra=extra, name=name, **kw)


@pytest.fixture
def conn(pg, start_linbatd, db):
    """An autocommit connection to this test's database."""
    import psycopg2
    c = psycopg2.connect(db)
    c.autocommit = True
    yield c
    c.close()


def sent_counts(records, ids, key="id", max_dup=0):
    """Check that every message of ids was sent and none more than max_dup
    extra times; return the number of duplicate sends."""
    counts = collections.Counter(int(r[key]) for r in records)
    missing = set(ids) - set(counts)
    stray = set(counts) - set(ids)
    dups = sum(c - 1 for c in counts.values())
    assert not missing, "%d messages never sent, e.g. %s" % (len(missing), sorted(missing)[:5])
    assert not stray, "sends of messages never queued: %s" % sorted(stray)[:5]
    assert dups <= max_dup, "%d duplicate sends (at most %d allowed), e.g. %s" % (
        dups, max_dup, [i for i, c in counts.items() if c > 1][:5])
    return dups


def test_sent_counts_can_fail():
    """The checker every test relies on must see a loss and a duplicate."""
    records = [{"id": 1}, {"id": 2}, {"id": 2}]
    with pytest.raises(AssertionError, match="1 duplicate sends"):
        sent_counts(records, [1, 2])
    with pytest.raises(AssertionError, match="1 messages never sent"):
        sent_counts(records, [1, 2, 3], max_dup=1)
    assert sent_counts(records, [1, 2], max_dup=1) == 1


def test_every_message_is_sent_once_with_its_provider_id(start_linbatd, tmp_path, conn):
    rec = str(tmp_path / "sms.jsonl")
    start(start_linbatd, tmp_path, tchannel("sms1", rec))
    ids = seed(conn, "sms1", 500)
    assert wait_all_sent(conn, ids, 30) == {"sent": 500}
    records = read_records(rec)
    sent_counts(records, ids)
    r = records[0]
    assert r["to"].startswith("+62812") and r["body"].startswith("Pesan untuk ")
    assert r["template"] is None and r["attempt"] == 1
    with conn.cursor() as cur:
        cur.execute("select count(*) from linbat.message where id = any(%s) and provider_id = 'test-' || id "
                    "and sent_at is not null and locked_by is null and attempts = 1", (ids,))
        assert cur.fetchone()[0] == 500


def attempt_history(conn, mid, until, timeout):
    """Poll one message every 20 ms until until(row) or timeout; return, per
    attempt number, the delay its failure scheduled (next_attempt_at minus the
    moment the requeue was first seen) and the time the next claim was seen."""
    delays, claimed = {}, {}
    last = None
    deadline = time.monotonic() + timeout
    with conn.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute("select status, attempts, extract(epoch from next_attempt_at), "
                        "extract(epoch from clock_timestamp()) from linbat.message where id = %s", (mid,))
            row = cur.fetchone()
            status, attempts, nxt, now = row[0], row[1], float(row[2] or 0), float(row[3])
            if attempts != last:
                claimed[attempts] = now
                last = attempts
            if status == "queued" and attempts > 0 and attempts not in delays:
                delays[attempts] = (nxt - now, nxt)
            if until(row):
                break
            time.sleep(0.02)
    return delays, claimed


def test_temporary_failures_back_off_exponentially_up_to_max_attempts(start_linbatd, tmp_path, conn):
    """backoff_base 200 ms: the delay before retry k is 0.2 * 2^(k-1) s with
    jitter in [0.5, 1.5); after max_attempts the message fails on this channel."""
    rec = str(tmp_path / "sms.jsonl")
    start(start_linbatd, tmp_path, tchannel("sms1", rec, fail="temporary"),
          dispatch={"backoff_base": "200ms", "max_attempts": "6"})
    [mid] = seed(conn, "sms1", 1)
    delays, claimed = attempt_history(conn, mid, lambda r: r[0] == "failed", 30)
    assert statuses(conn, [mid]) == {"failed": 1}
    assert sorted(delays) == [1, 2, 3, 4, 5], delays
    for k, (delay, due) in delays.items():
        nominal = 0.2 * 2 ** (k - 1)
        assert 0.5 * nominal - 0.1 <= delay <= 1.5 * nominal, (k, delay, delays)
        # never claimed before it is due; the one-second tick finds it soon after
        assert due - 0.05 <= claimed[k + 1] <= due + 1.6, (k, due, claimed)
    assert delays[3][0] > delays[1][0] and delays[4][0] > delays[2][0] and delays[5][0] > delays[3][0]
    assert delays[5][0] > 4 * delays[1][0]
    with conn.cursor() as cur:
        cur.execute("select attempts, error_kind, error_code, failed_at is not null from linbat.message "
                    "where id = %s", (mid,))
        assert cur.fetchone() == (6, "temporary", "test_temporary", True)
    assert read_records(rec) == []


def test_random_temporary_failures_all_end_up_sent_once(start_linbatd, tmp_path, conn):
    rec = str(tmp_path / "sms.jsonl")
    start(start_linbatd, tmp_path, tchannel("sms1", rec, fail="temporary", fail_rate="30"))
    ids = seed(conn, "sms1", 1000)
    assert wait_all_sent(conn, ids, 60) == {"sent": 1000}
    sent_counts(read_records(rec), ids)
    with conn.cursor() as cur:
        cur.execute("select max(attempts), count(*) filter (where attempts > 1) from linbat.message "
                    "where id = any(%s)", (ids,))
        most, retried = cur.fetchone()
    assert most >= 3 and 200 <= retried <= 400, (most, retried)


def test_window_closed_sends_the_template_instead(start_linbatd, tmp_path, conn):
    rec = str(tmp_path / "sms.jsonl")
    start(start_linbatd, tmp_path, tchannel("sms1", rec, fail="window_closed"))
    closed = seed(conn, "sms1", 10, window_open=False, template=TEMPLATE)
    open_ = seed(conn, "sms1", 10, window_open=True, template=TEMPLATE)
    assert wait_all_sent(conn, closed + open_, 20) == {"sent": 20}
    by_id = {r["id"]: r for r in read_records(rec)}
    sent_counts(by_id.values(), closed + open_)
    for i in closed:
        assert by_id[i]["template"] == TEMPLATE and by_id[i]["attempt"] == 2
    for i in open_:
        assert by_id[i]["template"] is None and by_id[i]["attempt"] == 1
    with conn.cursor() as cur:
        cur.execute("select count(*) from linbat.message where id = any(%s) and use_template "
                    "and error_kind = 'window_closed'", (closed,))
        assert cur.fetchone()[0] == 10


def test_rate_limit_paces_one_instance_only(start_linbatd, tmp_path, conn):
    """rate = 50 with a burst of 50: 200 messages take at least (200 - 50) / 50
    = 3 s, and no second holds more than burst + rate. Lower bounds only: a
    slow machine may take longer, never shorter."""
    slow, fast = str(tmp_path / "slow.jsonl"), str(tmp_path / "fast.jsonl")
    channels = dict(tchannel("slow", slow, rate="50"), **tchannel("fast", fast))
    start(start_linbatd, tmp_path, channels)
    ids = seed(conn, "slow", 200)
    fast_ids = seed(conn, "fast", 200)
    assert wait_all_sent(conn, ids + fast_ids, 30) == {"sent": 400}
    sent_counts(read_records(fast), fast_ids)
    times = sorted(r["at"] for r in read_records(slow))
    sent_counts(read_records(slow), ids)
    span = times[-1] - times[0]
    print("rate=50: 200 messages in %.2f s" % span)
    assert span >= 2.9, span
    most = max(sum(1 for t in times if t0 <= t < t0 + 1.0) for t0 in times)
    assert most <= 100 + 2, most


def test_message_for_an_instance_not_here_falls_back(start_linbatd, tmp_path, conn):
    """An instance in the database but not in the config (or disabled) fails
    the message permanently (no_instance); the investor's next channel gets it."""
    rec = str(tmp_path / "sms.jsonl")
    start(start_linbatd, tmp_path, tchannel("sms1", rec))
    with conn.cursor() as cur:
        cur.execute("select linbat.channel_register('ghost', 'whatsapp')")
    both = seed(conn, "ghost", 5, kinds=("whatsapp", "sms"))
    wa_only = seed(conn, "ghost", 5, kinds=("whatsapp",))

    def settled():
        s = statuses(conn, both + wa_only)
        return s.get("failed") == 10
    assert linbat.wait_for(settled, 20), statuses(conn, both + wa_only)
    with conn.cursor() as cur:
        cur.execute("select m.fallback_of, m.channel_instance, i.kind, m.status, m.conversation_id = o.conversation_id "
                    "from linbat.message m join linbat.identity i on i.id = m.identity_id "
                    "join linbat.message o on o.id = m.fallback_of where m.fallback_of = any(%s)",
                    (both + wa_only,))
        rows = cur.fetchall()
        cur.execute("select distinct error_code from linbat.message where id = any(%s)", (both + wa_only,))
        assert cur.fetchall() == [("no_instance",)]
    assert sorted(r[0] for r in rows) == sorted(both)
    assert {r[1:] for r in rows} == {("sms1", "sms", "sent", True)}
    fallback_ids = {r[0] for r in rows}
    assert fallback_ids == set(both)
    assert len(read_records(rec)) == 5


def test_two_processes_never_send_one_message_twice(start_linbatd, tmp_path, conn):
    recs = [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]
    small = {"batch": "25", "in_flight": "50"}
    for i, rec in enumerate(recs):
        start(start_linbatd, tmp_path, tchannel("sms1", rec, delay="20ms"), dispatch=small,
              name="linbatd-%d" % i)
    ids = seed(conn, "sms1", 2000)
    assert wait_all_sent(conn, ids, 60) == {"sent": 2000}
    a, b = read_records(recs[0]), read_records(recs[1])
    print("process a sent %d, process b sent %d" % (len(a), len(b)))
    sent_counts(a + b, ids)
    assert len(a) > 0 and len(b) > 0


@pytest.mark.log_allow(r"db: ", r"dispatch: ")
def test_answers_survive_a_database_outage(start_linbatd, tmp_path, private_pg):
    """Sends finish while PostgreSQL is down: their answers are kept and
    recorded once it is back, and nothing is sent twice."""
    import psycopg2
    dsn = private_pg.dsn(private_pg.create_database())
    rec = str(tmp_path / "sms.jsonl")
    d = start_linbatd(dsn=dsn, extra=dict({"dispatch": dict(DISPATCH, lease="60s")},
                                          **tchannel("sms1", rec, delay="2s")))
    c = psycopg2.connect(dsn)
    c.autocommit = True
    ids = seed(c, "sms1", 100)
    assert linbat.wait_for(lambda: statuses(c, ids) == {"sending": 100}, 10)
    c.close()
    private_pg.stop()
    time.sleep(3)
    assert len(read_records(rec)) == 100
    private_pg.start()
    c = psycopg2.connect(dsn)
    c.autocommit = True
    assert wait_all_sent(c, ids, 20) == {"sent": 100}
    c.close()
    sent_counts(read_records(rec), ids)
    with open(d.log_path) as f:
        log = f.read()
    assert log.count("Could not record what the providers answered") == 1
    assert "Answers are being recorded again." in log


def test_sigterm_finishes_sends_and_hands_back_paced_ones(start_linbatd, tmp_path, conn):
    """On SIGTERM, sends under way finish and are recorded; messages still
    waiting for a token go back to the queue and the next start sends them."""
    rec = str(tmp_path / "sms.jsonl")
    channels = dict(tchannel("slow", rec, rate="20", delay="500ms"))
    d = start(start_linbatd, tmp_path, channels)
    ids = seed(conn, "slow", 100)
    assert linbat.wait_for(lambda: len(read_records(rec)) >= 20, 10)
    d.stop()
    s = statuses(conn, ids)
    assert s.get("sending", 0) == 0 and s.get("sent", 0) == len(read_records(rec)), s
    with conn.cursor() as cur:
        cur.execute("select count(*) from linbat.message where id = any(%s) and status = 'queued' "
                    "and error_code = 'stopping'", (ids,))
        assert cur.fetchone()[0] == s["queued"] > 0
    start(start_linbatd, tmp_path, channels, name="linbatd-again")
    assert wait_all_sent(conn, ids, 30) == {"sent": 100}
    sent_counts(read_records(rec), ids)
