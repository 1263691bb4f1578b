"""Faults on the inbound side: signed WhatsApp webhooks posted by a load
driver over keep-alive connections while linbatd is SIGKILLed, and while
PostgreSQL is restarted. linbatd answers 200 only after the commit, so
every webhook answered 200 must be stored, at every moment; a webhook not
answered 200 (503 while the database is away, a refused or reset connection
while linbatd is dead) is posted again, as Meta does, and is stored once.
"""

import psycopg2
import pytest

import faults
import linbat
from test_dispatch import DISPATCH, WaEmu, wa_channel

APP_SECRET = "dispatch-app-secret"  # wa_channel's


@pytest.fixture
def emu(tmp_path):
    """wa-emu takes the acknowledgements that new conversations get."""
    e = WaEmu(str(tmp_path))
    yield e
    e.stop()


def connect(dsn):
    c = psycopg2.connect(dsn)
    c.autocommit = True
    return c


def check_answered_are_stored(load, dsn, when):
    """Every webhook answered 200 so far is stored (a 200 comes after the commit)."""
    answered = load.snapshot()
    c = connect(dsn)
    try:
        stored = set(faults.stored_wamids(c))
    finally:
        c.close()
    missing = answered - stored
    assert not missing, "%s: %d webhooks answered 200 are not stored, e.g. %s" % (
        when, len(missing), sorted(missing)[:3])
    return len(answered)


def test_sigkill_five_times_under_ingestion(start_linbatd, db, emu):
    n = faults.scaled(1500, 200)
    kills = 5
    r = faults.rng()
    d = start_linbatd(extra=dict({"dispatch": DISPATCH}, **wa_channel(emu)))
    load = faults.Webhooks(lambda: d.url + "/webhooks/wa1", APP_SECRET, n, conns=4).start()
    moments = sorted(r.sample(range(n // 20, n * 17 // 20), kills))
    checked = []
    try:
        for at in moments:
            assert load.wait_count(at, 120), "only %d of %d webhooks answered 200" % (load.count(), at)
            d.kill()
            checked.append(check_answered_are_stored(load, db, "after SIGKILL"))
            d.start()
        assert load.wait(180), "only %d of %d webhooks answered 200: %s" % (load.count(), n, load.summary())
    finally:
        load.stop()
    c = connect(db)
    stored = faults.stored_wamids(c)
    c.close()
    faults.report("SIGKILL x5 during ingestion", "%d webhooks, 4 conns" % n, load.answered, stored, 0,
                  "kills after %s answered 200; %s" % (checked, load.summary()))
    assert not load.unexpected, load.unexpected[:5]
    assert sum(load.errors.values()) > 0, "the kills never hit the load: %s" % load.summary()


@pytest.mark.log_allow(r"db: ", r"PostgreSQL", r"database", r"terminating connection")
def test_postgresql_restart_under_ingestion(start_linbatd, private_pg, emu):
    """Restart PostgreSQL twice while webhooks come in: the ones answered 200
    are stored; the others got 503 (or a connection error) and are stored
    once when posted again."""
    n = faults.scaled(1500, 200)
    r = faults.rng()
    dsn = private_pg.dsn(private_pg.create_database())
    d = start_linbatd(dsn=dsn, extra=dict({"dispatch": DISPATCH}, **wa_channel(emu)))
    load = faults.Webhooks(lambda: d.url + "/webhooks/wa1", APP_SECRET, n, conns=4).start()
    moments = sorted(r.sample(range(n // 10, n * 8 // 10), 2))
    try:
        for at in moments:
            assert load.wait_count(at, 120), "only %d of %d webhooks answered 200" % (load.count(), at)
            private_pg.stop()
            before = load.snapshot()
            # Let the load meet the outage: wait until linbatd has refused some.
            refused = load.statuses[503]
            linbat.wait_for(lambda: load.statuses[503] > refused, 5, interval=0.02)
            private_pg.start()
            c = connect(dsn)
            missing = before - set(faults.stored_wamids(c))
            c.close()
            assert not missing, "answered 200 before the restart, not stored: %s" % sorted(missing)[:3]
        assert load.wait(180), "only %d of %d webhooks answered 200: %s" % (load.count(), n, load.summary())
    finally:
        load.stop()
    c = connect(dsn)
    stored = faults.stored_wamids(c)
    c.close()
    faults.report("PostgreSQL restart x2 in ingestion", "%d webhooks, 4 conns" % n, load.answered, stored, 0,
                  load.summary())
    assert not load.unexpected, "answers other than 200 and 503: %s" % load.unexpected[:5]
    assert load.statuses[503] > 0, "no webhook met the outage: %s" % load.summary()
    assert d.healthz() == 200
