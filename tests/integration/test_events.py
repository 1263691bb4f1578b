"""Live events: GET /api/v1/events across two linbatd processes on one
database. What one process stores reaches the streams of the other through
NOTIFY; each operator sees only their own conversations and the queue; an
operator whose last stream closed, in either process, goes away after
[routing] away_grace; open streams do not hold up a stop; and a webhook's
ingest commits without NOTIFY, its events sent in a batch after it."""

import json
import select
import time

import psycopg2
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


# Events of webhooks: kept out of the ingest's transaction ----------------------

@pytest.fixture
def wa_pair(start_linbatd, tmp_path, db):
    """Two linbatd processes on one database, each with the WhatsApp instance wa1."""
    from test_whatsapp import DISPATCH, WaEmu, wa_section
    emu = WaEmu(str(tmp_path))
    extra = {"channel wa1": wa_section(emu.url), "dispatch": DISPATCH}
    yield start_linbatd(extra=extra), start_linbatd(extra=extra)
    emu.stop()


def notifications(conn, marker, timeout=10):
    """What conn (LISTENing) receives up to the NOTIFY whose payload is marker."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        select.select([conn], [], [], 0.2)
        conn.poll()
        while conn.notifies:
            n = conn.notifies.pop(0)
            if n.payload == marker:
                return got
            got.append((n.channel, n.payload))
    raise AssertionError("the marker notification never came; got %r" % got)


def test_an_ingest_commits_without_notify_and_a_webhook_still_reaches_the_other_process(wa_pair, db):
    import wa_webhook as wh
    from test_whatsapp import SECRET, text_hook
    d1, d2 = wa_pair
    inbox.add_operator(db, "ani@x.id", online=True)
    listener = psycopg2.connect(db)
    listener.autocommit = True
    listener.cursor().execute("listen linbat_event; listen linbat_outbox")
    writer = psycopg2.connect(db)
    writer.autocommit = True
    cur = writer.cursor()
    # The transaction of linbat.ingest_inbound_deferred (a new conversation:
    # routed and assigned) notifies nothing; it hands its events back, in
    # order. Notifications arrive in commit order: whatever the ingest had
    # notified would come before the marker, committed after it.
    cur.execute("select conversation_id, message_id, events from linbat.ingest_inbound_deferred('wa1', "
                "'whatsapp', '+6281200000701', 'wamid.ev-1', 'Halo', 'text', '{}', now(), null)")
    conv, mid, events = cur.fetchone()
    cur.execute("notify linbat_event, 'marker-1'")
    assert notifications(listener, "marker-1") == []
    events = [(c, json.loads(p)) for c, p in json.loads(events)]
    assert [(c, p["type"], p["conversation"]) for c, p in events] == \
        [("linbat_event", "assignment", conv), ("linbat_event", "message", conv)]
    assert events[1][1]["message"] == mid
    # Called directly, linbat.ingest_inbound still notifies at its commit.
    cur.execute("select conversation_id from linbat.ingest_inbound('wa1', 'whatsapp', '+6281200000702', "
                "'wamid.ev-2', 'Halo', 'text', '{}', now(), null)")
    conv2 = cur.fetchone()[0]
    cur.execute("notify linbat_event, 'marker-2'")
    assert [json.loads(p)["conversation"] for c, p in notifications(listener, "marker-2")] == [conv2, conv2]
    # A webhook to one process: its events, sent after the commit, reach
    # the stream of the other (each after a look-up of its own there, so
    # in either order).
    stream = inbox.Events(d2, inbox.bearer(inbox.token(db, "ani@x.id")))
    assert stream.wait(lambda ev: ev["event"] == "hello", 10)
    payload, wamid = text_hook(frm="6281200000703", body="Halo dari webhook")
    status, _ = wh.post(d1.url + "/webhooks/wa1", payload, SECRET)
    assert status == 200
    conv3, mid3 = sql(db, "select conversation_id, id from linbat.message where provider_id = %s", (wamid,))[0]
    assert stream.wait(lambda ev: ev["event"] == "message" and ev["data"].get("message") == mid3, 10)
    assert stream.wait(lambda ev: ev["event"] == "assignment" and ev["data"]["conversation"] == conv3, 10)
    stream.close()
    listener.close()
    writer.close()
