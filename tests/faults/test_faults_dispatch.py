"""Faults on the outbound side: linbatd killed while it dispatches, two
processes on one database with one of them killed, and a provider that
fails (5xx, 429 with Retry-After, answers too slow, connections reset).

What reached the provider is read from wa-emu's record (one line per send
it accepted, with our message id in biz_opaque_callback_data), never from
the daemon's own word. Every row of the fault table checks: nothing queued
is lost, and duplicates stay within the bound the fault allows (a killed
process's sends in flight; a send the provider took but answered too late).
"""

import collections
import time

import pytest

import faults
import linbat
from test_dispatch import (DISPATCH, WaEmu, count_lines, metrics, read_records, seed,
                           wa_channel, wait_all_sent)

KEY = "biz_opaque_callback_data"


@pytest.fixture
def conn(db):
    import psycopg2
    c = psycopg2.connect(db)
    c.autocommit = True
    yield c
    c.close()


@pytest.fixture
def emu(tmp_path):
    e = WaEmu(str(tmp_path))
    yield e
    e.stop()


def sent_ids(emu):
    """Our message ids as wa-emu recorded them, one per accepted send."""
    time.sleep(0.3)  # the record is flushed every 100 ms
    return [int(r[KEY]) for r in read_records(emu.record)]


def sending(conn, ids):
    """The ids of ids that are claimed and not yet recorded as sent."""
    with conn.cursor() as cur:
        cur.execute("select id from linbat.message where id = any(%s) and status = 'sending'", (list(ids),))
        return {r[0] for r in cur.fetchall()}


def reclaimed(conn, ids):
    """The ids of ids claimed more than once."""
    with conn.cursor() as cur:
        cur.execute("select id from linbat.message where id = any(%s) and attempts > 1", (list(ids),))
        return {r[0] for r in cur.fetchall()}


def duplicated_ids(sent):
    return {i for i, c in collections.Counter(sent).items() if c > 1}


def test_sigkill_five_times_during_a_dispatch(start_linbatd, tmp_path, conn, emu):
    """SIGKILL linbatd at 5 random moments of a 20,000-message dispatch,
    starting it again at once each time. Every message reaches the emulator;
    a message sent twice is one a killed process had in flight (claimed, sent,
    its answer not yet recorded), so duplicates are at most 5 x in_flight."""
    n = faults.scaled(20000, 500)
    kills = 5
    r = faults.rng()
    d = start_linbatd(extra=dict({"dispatch": DISPATCH}, **wa_channel(emu)))
    ids = seed(conn, "wa1", n, kinds=("whatsapp",))
    moments = sorted(r.sample(range(n // 20, n * 17 // 20), kills))
    held = set()
    for at in moments:
        assert linbat.wait_for(lambda: count_lines(emu.record) >= at, 120, interval=0.01), \
            "the emulator took only %d of %d sends" % (count_lines(emu.record), at)
        d.kill()
        held |= sending(conn, ids)
        d.start()
    assert wait_all_sent(conn, ids, 180) == {"sent": n}
    sent = sent_ids(emu)
    dups = duplicated_ids(sent)
    bound = kills * int(DISPATCH["in_flight"])
    faults.report("SIGKILL x5 during dispatch", "%d msgs to wa-emu" % n, ids, sent, bound,
                  "kills after %s sends; %d in flight at kills" % (moments, len(held)))
    assert dups <= held, "sent twice but never in flight in a killed process: %s" % sorted(dups - held)[:5]
    assert dups <= reclaimed(conn, ids)


def test_two_processes_one_killed(start_linbatd, tmp_path, conn, emu):
    """Two linbatd on one database share a dispatch; one is killed half way.
    The other finishes it, taking over the killed one's claims once their
    lease ends. While both were alive nothing was sent twice: every second
    copy at the emulator arrived after the kill, and was in flight in the
    killed process."""
    n = faults.scaled(3000, 400)
    small = dict(DISPATCH, batch="25", in_flight="50")
    a = start_linbatd(extra=dict({"dispatch": small}, **wa_channel(emu)), name="linbatd-a")
    b = start_linbatd(extra=dict({"dispatch": small}, **wa_channel(emu)), name="linbatd-b")
    ids = seed(conn, "wa1", n, kinds=("whatsapp",))
    assert linbat.wait_for(lambda: count_lines(emu.record) >= n * 2 // 5, 120, interval=0.01)
    a_sent = metrics(a)["linbat_dispatch_sent_total"]
    killed_ms = time.time() * 1000
    a.kill()
    held = sending(conn, ids)
    b_sent_before = metrics(b)["linbat_dispatch_sent_total"]
    assert wait_all_sent(conn, ids, 180) == {"sent": n}
    time.sleep(0.3)  # the record is flushed every 100 ms
    records = read_records(emu.record)
    sent = [int(rec[KEY]) for rec in records]
    dups = duplicated_ids(sent)
    bound = int(small["in_flight"])
    faults.report("two processes, one SIGKILLed", "%d msgs, 2 x linbatd" % n, ids, sent, bound,
                  "a sent %d, b %d before the kill" % (a_sent, b_sent_before))
    assert a_sent > 0 and b_sent_before > 0, (a_sent, b_sent_before)
    assert dups <= held
    times = collections.defaultdict(list)
    for rec in records:
        times[int(rec[KEY])].append(rec["received_at_ms"])
    early = [i for i in dups if sorted(times[i])[1] < killed_ms]
    assert not early, "sent twice while both processes were alive: %s" % early[:5]


# kind: (faults for wa-emu, extra keys of [channel wa1], whether the provider
# may take a send twice)
PROVIDER_FAULTS = {
    "5xx": ({"fail_rate": 0.3, "fail_kinds": ["5xx"]}, {}, False),
    "429": ({"fail_rate": 0.3, "fail_kinds": ["429"], "retry_after": 1}, {}, False),
    "timeout": ({"fail_rate": 0.05, "fail_kinds": ["timeout"], "hold_ms": 8000}, {"send_timeout": "1s"}, True),
    "reset": ({"fail_rate": 0.2, "fail_kinds": ["reset"]}, {}, False),
}


@pytest.mark.parametrize("kind", sorted(PROVIDER_FAULTS))
def test_provider_faults(start_linbatd, tmp_path, conn, emu, kind):
    """The provider fails a share of sends: 5xx, 429 with Retry-After, an
    answer slower than send_timeout (the provider took the message), or a
    connection reset. Every message ends up accepted; only a send the
    provider took but answered too late may be accepted twice."""
    emu_faults, keys, may_repeat = PROVIDER_FAULTS[kind]
    n = faults.scaled(600, 200)
    emu.faults(**emu_faults)
    start_linbatd(extra=dict({"dispatch": dict(DISPATCH, backoff_base="100ms")}, **wa_channel(emu, **keys)),
                  allow=[])
    ids = seed(conn, "wa1", n, kinds=("whatsapp",))
    final = wait_all_sent(conn, ids, 120)
    stats = emu.control("GET", "stats")
    emu.faults()
    assert final == {"sent": n}, (final, stats)
    sent = sent_ids(emu)
    injected = {"5xx": stats["by_code"].get("1", 0) + stats["by_code"].get("2", 0),
                "429": stats["by_code"].get("130429", 0), "timeout": stats["timeouts"],
                "reset": stats["resets"]}[kind]
    bound = stats["timeouts"] if may_repeat else 0
    faults.report("provider %s (%d%%)" % (kind, round(emu_faults["fail_rate"] * 100)), "%d msgs" % n,
                  ids, sent, bound, "%d faults injected" % injected)
    assert injected >= n * emu_faults["fail_rate"] / 2, stats
    assert duplicated_ids(sent) <= reclaimed(conn, ids)
