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
import re
import signal
import statistics
import subprocess
import threading
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
    """The whole JSON lines of a record file (a line still being written is
    left out), or [] if it does not exist yet."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.endswith("\n") and line.strip()]


def count_lines(path):
    """Lines in a file another process is writing (no parsing: a reader may see
    a page being written)."""
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


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


def metrics(daemon):
    """{name: value} of the samples without labels on GET /metrics."""
    r = daemon.get("/metrics")
    assert r.status == 200, r
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^(linbat_\w+) (\S+)$", r.body.decode(), re.M)}


def test_random_temporary_failures_all_end_up_sent_once(start_linbatd, tmp_path, conn):
    rec = str(tmp_path / "sms.jsonl")
    d = start(start_linbatd, tmp_path, tchannel("sms1", rec, fail="temporary", fail_rate="30"))
    ids = seed(conn, "sms1", 1000)
    assert wait_all_sent(conn, ids, 60) == {"sent": 1000}
    sent_counts(read_records(rec), ids)
    with conn.cursor() as cur:
        cur.execute("select max(attempts), count(*) filter (where attempts > 1), sum(attempts) "
                    "from linbat.message where id = any(%s)", (ids,))
        most, retried, attempts = cur.fetchone()
    assert most >= 3 and 200 <= retried <= 400, (most, retried)
    m = metrics(d)
    assert m["linbat_dispatch_claimed_total"] == attempts
    assert m["linbat_dispatch_sent_total"] == 1000
    assert m["linbat_dispatch_failed_total"] == attempts - 1000
    assert m["linbat_dispatch_inflight"] == 0


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

    def fallbacks_sent():
        with conn.cursor() as cur:
            cur.execute("select count(*) from linbat.message where fallback_of = any(%s) and status = 'sent'",
                        (both,))
            return cur.fetchone()[0]

    def settled():
        # the originals failed, and the fallbacks were sent (not merely claimed)
        return statuses(conn, both + wa_only).get("failed") == 10 and fallbacks_sent() == 5
    assert linbat.wait_for(settled, 60), (statuses(conn, both + wa_only), fallbacks_sent())
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
    assert linbat.wait_for(lambda: count_lines(rec) >= 20, 10)
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



# The WhatsApp side: the real adapter against wa-emu. ------------------------

WA_TOKEN = "EAAdispatch-test-token"
WA_PNID = "106540352242922"


class WaEmu:
    """A wa-emu on a free loopback port that records every send it accepts."""

    def __init__(self, workdir):
        self.record = os.path.join(workdir, "wa-emu.jsonl")
        port_file = os.path.join(workdir, "wa-emu.port")
        binary = os.path.join(linbat.TOP_BUILDDIR, "tests", "emulators", "wa-emu")
        assert os.access(binary, os.X_OK), "wa-emu is not built at %s" % binary
        with open(os.path.join(workdir, "wa-emu.log"), "w") as err:
            self.proc = subprocess.Popen(
                [binary, "--listen", "127.0.0.1:0", "--port-file", port_file, "--token", WA_TOKEN,
                 "--record", self.record], stdout=subprocess.PIPE, stderr=err, text=True)
        m = re.fullmatch(r"listening (\d+)\n", self.proc.stdout.readline())
        assert m, "wa-emu did not start"
        self.url = "http://127.0.0.1:%s" % m.group(1)

    def control(self, method, what, body=None):
        r = linbat.http(method, self.url + "/_emu/" + what,
                        json.dumps(body).encode() if body is not None else None,
                        {"Content-Type": "application/json"})
        assert r.status == 200, r
        return r.json()

    def faults(self, **faults):
        return self.control("POST", "faults", faults)

    def records(self):
        """What the emulator accepted; its record is flushed every 100 ms."""
        time.sleep(0.3)
        return read_records(self.record)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)
        self.proc.stdout.close()


@pytest.fixture
def emu(tmp_path):
    e = WaEmu(str(tmp_path))
    yield e
    e.stop()


def wa_channel(emu, **keys):
    """[channel wa1]: the WhatsApp adapter pointed at the emulator, no rate limit."""
    section = {"type": "whatsapp", "phone_number_id": WA_PNID, "access_token": WA_TOKEN,
               "app_secret": "dispatch-app-secret", "verify_token": "dispatch-verify",
               "api_base": emu.url + "/v21.0", "rate": "0"}
    section.update({k: str(v) for k, v in keys.items()})
    return {"channel wa1": section}


def wa_number(conn, mid):
    """The wa_id (digits, no '+') a message goes to."""
    with conn.cursor() as cur:
        cur.execute("select i.address from linbat.message m join linbat.identity i on i.id = m.identity_id "
                    "where m.id = %s", (mid,))
        return cur.fetchone()[0][1:]


class BackoffWatch(threading.Thread):
    """Polls the outbox every 50 ms and keeps, for each (message, attempts)
    requeued after a failure, the kind of failure and the delay it scheduled.

    The requeue happened between the previous poll's snapshot and this one's,
    so the delay lies between next_attempt_at minus this snapshot's time and
    next_attempt_at minus the previous one's; the midpoint is kept when that
    span is under 0.25 s, and the sample dropped otherwise. A loaded machine
    then makes polls rarer, not delays shorter."""

    SPAN = 0.25

    def __init__(self, dsn):
        super().__init__(daemon=True)
        import psycopg2
        self.conn = psycopg2.connect(dsn)
        self.conn.autocommit = True
        self.seen = {}
        self.done = threading.Event()

    def run(self):
        prev_t, prev_keys = None, set()
        with self.conn.cursor() as cur:
            while not self.done.is_set():
                cur.execute("select extract(epoch from statement_timestamp()), id, attempts, error_kind, "
                            "extract(epoch from next_attempt_at) from linbat.message where direction = 'out' "
                            "and status = 'queued' and attempts > 0 "
                            "union all select extract(epoch from statement_timestamp()), null, null, null, null")
                rows = cur.fetchall()
                now = float(rows[0][0])
                keys = set()
                for _, mid, attempts, kind, due in rows:
                    if mid is None:
                        continue
                    key = (mid, attempts)
                    keys.add(key)
                    if key in self.seen:
                        continue
                    usable = prev_t is not None and key not in prev_keys and now - prev_t <= self.SPAN
                    self.seen[key] = (kind, float(due) - (now + prev_t) / 2) if usable else None
                prev_t, prev_keys = now, keys
                time.sleep(0.05)

    def stop(self):
        self.done.set()
        self.join(5)
        self.conn.close()

    def delays(self, kind):
        """{attempts: [delays]} of failures of kind."""
        out = collections.defaultdict(list)
        for (mid, attempts), v in self.seen.items():
            if v is not None and v[0] == kind:
                out[attempts].append(v[1])
        return out


def test_whatsapp_faults_all_end_up_sent_once_with_growing_gaps(start_linbatd, tmp_path, conn, emu, db):
    """1,000 messages while 30% of sends get a 5xx or a 429 (Retry-After: 1):
    all are accepted exactly once, 5xx retries wait longer at each attempt,
    429 retries wait at least the second the provider asked for."""
    emu.faults(fail_rate=0.3, fail_kinds=["5xx", "429"], retry_after=1)
    start(start_linbatd, tmp_path, wa_channel(emu), dispatch={"backoff_base": "200ms"})
    watch = BackoffWatch(db)
    watch.start()
    ids = seed(conn, "wa1", 1000, kinds=("whatsapp",))
    try:
        assert wait_all_sent(conn, ids, 120) == {"sent": 1000}
    finally:
        watch.stop()
    sent_counts(emu.records(), ids, key="biz_opaque_callback_data")
    stats = emu.control("GET", "stats")
    print("emulator stats:", json.dumps(stats))
    temporary = watch.delays("temporary")
    # Each delay is the base times 2^(attempt - 1) times a jitter of 0.5-1.5,
    # so a median of fewer than 10 samples (attempt 3 has about 13 here, 4
    # about 4) wanders too far for a ratio; those are left out.
    medians = {k: statistics.median(v) for k, v in temporary.items() if len(v) >= 10}
    print("5xx: median delay (samples) by attempt:",
          {k: (round(statistics.median(v), 3), len(v)) for k, v in sorted(temporary.items())})
    assert {1, 2} <= set(medians), medians
    for k in sorted(medians)[:-1]:
        if k + 1 in medians:
            assert medians[k + 1] > 1.3 * medians[k], medians
    # After a first 429 the backoff alone would be 0.1-0.3 s: a delay of one
    # second is Retry-After's. Each sample is within SPAN / 2 of the truth.
    limited = watch.delays("rate_limited")[1]
    assert len(limited) >= 30, len(limited)
    assert statistics.median(limited) >= 1.0 - BackoffWatch.SPAN / 2, sorted(limited)[:5]


def test_whatsapp_undeliverable_falls_back_to_sms(start_linbatd, tmp_path, conn, emu):
    """131026 (not a WhatsApp user) fails the message on WhatsApp at once; a
    new message on the investor's next channel (sms, the test channel) carries
    it, linked by fallback_of, in the same conversation."""
    rec = str(tmp_path / "sms.jsonl")
    channels = dict(wa_channel(emu), **tchannel("sms1", rec))
    start(start_linbatd, tmp_path, channels)
    with conn.cursor() as cur:
        cur.execute("select coalesce(max(id), 0) + 1 from linbat.investor")
        first = cur.fetchone()[0]
    lost = ["62812%08d" % i for i in range(first, first + 5)]
    emu.faults(per_recipient={n: 131026 for n in lost})
    ids = seed(conn, "wa1", 10, kinds=("whatsapp", "sms"))
    assert {wa_number(conn, i) for i in ids[:5]} == set(lost)

    def settled():
        with conn.cursor() as cur:
            cur.execute("select count(*) from linbat.message where fallback_of = any(%s) and status = 'sent'",
                        (ids,))
            return statuses(conn, ids) == {"failed": 5, "sent": 5} and cur.fetchone()[0] == 5
    assert linbat.wait_for(settled, 20), statuses(conn, ids)
    with conn.cursor() as cur:
        cur.execute("select o.id, o.status, o.attempts, o.error_code, f.id, f.channel_instance, f.status, "
                    "f.body = o.body from linbat.message o join linbat.message f on f.fallback_of = o.id "
                    "where o.id = any(%s) order by o.id", (ids,))
        rows = cur.fetchall()
        cur.execute("select conversation_id, array_agg(channel_instance order by id) from linbat.message "
                    "where conversation_id in (select conversation_id from linbat.message where id = any(%s)) "
                    "group by 1", (ids[:5],))
        conversations = cur.fetchall()
    assert [r[0] for r in rows] == ids[:5]
    assert all(r[1:4] == ("failed", 1, "131026") and r[5:] == ("sms1", "sent", True) for r in rows), rows
    assert sorted(c[1] for c in conversations) == [["wa1", "sms1"]] * 5
    sent_counts(emu.records(), ids[5:], key="biz_opaque_callback_data")
    sent_counts(read_records(rec), [r[4] for r in rows])


def test_whatsapp_window_closed_sends_the_template(start_linbatd, tmp_path, conn, emu):
    """131047: free text outside the 24-hour window is refused; the same
    message goes out again as its template, and nothing falls back."""
    start(start_linbatd, tmp_path, wa_channel(emu))
    with conn.cursor() as cur:
        cur.execute("select coalesce(max(id), 0) + 1 from linbat.investor")
        first = cur.fetchone()[0]
    emu.faults(per_recipient={"62812%08d" % i: 131047 for i in range(first, first + 5)})
    ids = seed(conn, "wa1", 5, kinds=("whatsapp", "sms"), template=TEMPLATE)
    assert wait_all_sent(conn, ids, 20) == {"sent": 5}
    records = emu.records()
    sent_counts(records, ids, key="biz_opaque_callback_data")
    assert {r["type"] for r in records} == {"template"}
    assert {r["template"]["name"] for r in records} == {TEMPLATE["name"]}
    with conn.cursor() as cur:
        cur.execute("select bool_and(use_template), min(attempts), max(attempts), min(error_code), "
                    "count(*) filter (where fallback_of is not null) from linbat.message "
                    "where conversation_id in (select conversation_id from linbat.message where id = any(%s))",
                    (ids,))
        assert cur.fetchone() == (True, 2, 2, "131047", 0)


def test_whatsapp_two_processes_never_send_one_message_twice(start_linbatd, tmp_path, conn, emu):
    emu.faults(fail_rate=0.1, fail_kinds=["5xx"])
    small = {"batch": "20", "in_flight": "40"}
    daemons = [start(start_linbatd, tmp_path, wa_channel(emu), dispatch=small, name="linbatd-%d" % i)
               for i in range(2)]
    ids = seed(conn, "wa1", 3000, kinds=("whatsapp",))
    assert wait_all_sent(conn, ids, 120) == {"sent": 3000}
    sent_counts(emu.records(), ids, key="biz_opaque_callback_data")
    with conn.cursor() as cur:
        cur.execute("select count(*) from linbat.message where id = any(%s) and attempts > 1", (ids,))
        assert cur.fetchone()[0] > 100
    for d in daemons:
        with open(d.log_path) as f:
            assert "Claimed a message this process still handles" not in f.read()


def test_sigkill_while_sending_loses_nothing(start_linbatd, tmp_path, conn, emu):
    """SIGKILL linbatd while it sends 5,000 messages and start it again: all
    reach the emulator; a message sent but not yet recorded is sent again
    after its lease, so duplicates are at most the in-flight limit."""
    d = start(start_linbatd, tmp_path, wa_channel(emu))
    ids = seed(conn, "wa1", 5000, kinds=("whatsapp",))
    assert linbat.wait_for(lambda: count_lines(emu.record) >= 1500, 60)
    d.kill()
    before = len(emu.records())
    held = statuses(conn, ids).get("sending", 0)
    start(start_linbatd, tmp_path, wa_channel(emu), name="linbatd-again")
    assert wait_all_sent(conn, ids, 120) == {"sent": 5000}
    dups = sent_counts(emu.records(), ids, key="biz_opaque_callback_data",
                       max_dup=int(DISPATCH["in_flight"]))
    assert dups <= held
    with conn.cursor() as cur:
        cur.execute("select count(*) from linbat.message where id = any(%s) and attempts > 1", (ids,))
        reclaimed = cur.fetchone()[0]
    print("SIGKILL after %d of 5000 accepted, %d held: %d claimed again after the lease, %d sent "
          "twice (in_flight = %s)" % (before, held, reclaimed, dups, DISPATCH["in_flight"]))
    assert reclaimed == held
