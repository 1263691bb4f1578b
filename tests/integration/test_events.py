"""Live events: GET /api/v1/events across two linbatd processes on one
database. What one process stores reaches the streams of the other through
NOTIFY; each operator sees only their own conversations and the queue; an
operator whose last stream closed, in either process, goes away after
[routing] away_grace; and open streams do not hold up a stop."""

import pytest

import inbox
import linbat
from inbox import call, sql


@pytest.fixture
def pair(start_linbatd, tmp_path, db):
    extra = {"channel t1": {"type": "test", "record": str(tmp_path / "t1.jsonl")},
             "routing": {"away_grace": "1s"}}
    return start_linbatd(extra=extra), start_linbatd(extra=extra)


def about(conv):
    return lambda ev: ev["data"].get("conversation") == conv


def presence(db, oid):
    return sql(db, "select presence from linbat.operator where id = %s", (oid,))[0][0]


def test_events_cross_processes_and_each_operator_sees_only_theirs(pair, db):
    d1, d2 = pair
    a = inbox.add_operator(db, "ani@x.id", online=True)
    inbox.add_operator(db, "budi@x.id", capacity=0, online=True)
    inbox.add_operator(db, "mira@x.id", role="manager")
    ta, tb, tm = (inbox.token(db, e) for e in ("ani@x.id", "budi@x.id", "mira@x.id"))
    ea, eb = inbox.Events(d1, inbox.bearer(ta)), inbox.Events(d1, inbox.bearer(tb))
    em = inbox.Events(d2, inbox.bearer(tm))
    for e in (ea, eb, em):
        assert e.status == 200 and "text/event-stream" in e.headers
        assert e.wait(lambda ev: ev["event"] == "hello", 10)
    # an investor writes; Ani (online, free) gets it; Budi (no capacity) does not
    c1 = inbox.ingest(db, "+6281200000601", "e-1", "Halo")
    assert ea.wait(lambda ev: ev["event"] == "assignment" and ev["data"]["conversation"] == c1, 10)
    assert ea.wait(lambda ev: ev["event"] == "message" and ev["data"]["conversation"] == c1, 10)
    assert em.wait(about(c1), 10)
    # a note written through the other process reaches Ani's stream on d1
    r = call(d2, "POST", "/api/v1/conversations/%d/notes" % c1, {"body": "dicek"}, inbox.bearer(ta))
    assert r.status == 201
    assert ea.wait(lambda ev: ev["data"].get("message") == r.json()["id"], 10)
    # a conversation nobody can take is the queue's: Budi sees it, and presence changes too
    sql(db, "select linbat.set_capacity(%s, 1)", (a,))
    c2 = inbox.ingest(db, "+6281200000602", "e-2", "Halo juga")
    assert eb.wait(about(c2), 10)
    call(d2, "PUT", "/api/v1/me/presence", {"presence": "away"}, inbox.bearer(tm))
    assert eb.wait(lambda ev: ev["event"] == "presence", 10)
    assert not [ev for ev in eb.events if ev["data"].get("conversation") == c1]
    for e in (ea, eb):
        e.close()
    em_open = em  # left open: stopping d2 must end it, not wait for it
    assert em_open.status == 200


def test_an_operator_goes_away_only_when_the_last_stream_in_any_process_closes(pair, db):
    d1, d2 = pair
    a = inbox.add_operator(db, "ani@x.id", online=True)
    s = inbox.Session(d1, "ani@x.id")
    e1 = inbox.Events(d1, s.headers(csrf=False))  # the web page: cookie, no CSRF on GET
    e2 = inbox.Events(d2, inbox.bearer(inbox.token(db, "ani@x.id")))
    assert e1.wait(lambda ev: ev["event"] == "hello") and e2.wait(lambda ev: ev["event"] == "hello")
    assert linbat.wait_for(lambda: sql(db, "select count(*) from linbat.live_connection")[0][0] == 2, 10)
    e1.close()
    assert linbat.wait_for(lambda: sql(db, "select count(*) from linbat.live_connection")[0][0] == 1, 10)
    e2.drain(2.5)  # more than the grace period of d1
    assert presence(db, a) == "online"
    e2.close()
    assert linbat.wait_for(lambda: presence(db, a) == "away", 10)
    assert sql(db, "select count(*) from linbat.live_connection")[0][0] == 0
