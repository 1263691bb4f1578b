"""The inbox API: conversations listed with filters and cursor pages, what an
operator may see and do, a conversation with its investor, messages paged,
internal notes that never leave, take/transfer/release/resolve through the
routing SQL, presence, operators for managers, and investors searched,
edited and merged."""

import json
import os
import time

import pytest

import inbox
import linbat
from inbox import call, sql


@pytest.fixture
def daemon(start_linbatd, tmp_path):
    record = str(tmp_path / "t1.jsonl")
    d = start_linbatd(extra={"channel t1": {"type": "test", "record": record}})
    d.record = record
    return d


def get(daemon, tok, path):
    r = call(daemon, "GET", path, None, inbox.bearer(tok))
    assert r.status == 200, r
    return r.json()


def post(daemon, tok, path, body=None, method="POST"):
    return call(daemon, method, path, body, inbox.bearer(tok))


def ids(page):
    return [c["id"] for c in page["conversations"]]


def test_list_filters_and_cursor_pages(daemon, db):
    a = inbox.add_operator(db, "ani@x.id", capacity=2, online=True)
    inbox.add_operator(db, "mira@x.id", role="manager")
    ta, tm = inbox.token(db, "ani@x.id"), inbox.token(db, "mira@x.id")
    convs = [inbox.ingest(db, "+628120000010%d" % i, "f-%d" % i, "Pesan nomor %d" % i) for i in range(5)]
    sql(db, "update linbat.investor set company_name = 'PT Sinar Makassar' where id = "
        "(select investor_id from linbat.conversation where id = %s)", (convs[3],))
    # newest activity first; Ani has the first two, the rest wait
    assert ids(get(daemon, tm, "/api/v1/conversations")) == convs[::-1]
    assert ids(get(daemon, tm, "/api/v1/conversations?assigned=none")) == convs[:1:-1]
    assert ids(get(daemon, ta, "/api/v1/conversations?assigned=me")) == convs[1::-1]
    page = get(daemon, tm, "/api/v1/conversations?assigned=none")["conversations"][0]
    assert page["assignee"] is None and page["waiting_since"] is not None and page["channel"] == "t1"
    assert set(page) >= {"id", "status", "assignee", "channel", "investor", "last_message_at", "waiting_since"}
    assert ids(get(daemon, tm, "/api/v1/conversations?channel=sms")) == convs[::-1]
    assert ids(get(daemon, tm, "/api/v1/conversations?channel=whatsapp")) == []
    assert ids(get(daemon, tm, "/api/v1/conversations?q=nomor%202")) == [convs[2]]
    assert ids(get(daemon, tm, "/api/v1/conversations?q=SINAR")) == [convs[3]]
    assert ids(get(daemon, tm, "/api/v1/conversations?q=6281200000104")) == [convs[4]]
    assert post(daemon, ta, "/api/v1/conversations/%d/resolve" % convs[0]).status == 200
    assert ids(get(daemon, tm, "/api/v1/conversations?status=resolved")) == [convs[0]]
    assert convs[0] not in ids(get(daemon, tm, "/api/v1/conversations?status=active"))
    # pages of two cover the list once, in order
    seen, cursor = [], ""
    for _ in range(5):
        page = get(daemon, tm, "/api/v1/conversations?limit=2" + ("&cursor=" + cursor if cursor else ""))
        seen += ids(page)
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ids(get(daemon, tm, "/api/v1/conversations"))
    for bad in ("cursor=zz", "assigned=all", "status=closed"):
        assert call(daemon, "GET", "/api/v1/conversations?" + bad, None, inbox.bearer(tm)).status == 400
    assert a


def test_an_operator_sees_own_and_the_queue_and_acts_only_on_own(daemon, db):
    inbox.add_operator(db, "ani@x.id", capacity=1, online=True)
    b = inbox.add_operator(db, "budi@x.id", capacity=1)
    ta, tb = inbox.token(db, "ani@x.id"), inbox.token(db, "budi@x.id")
    mine = inbox.ingest(db, "+6281200000201", "v-1")
    queued = inbox.ingest(db, "+6281200000202", "v-2")
    assert ids(get(daemon, tb, "/api/v1/conversations")) == [queued]
    for method, path, body in (("GET", "", None), ("GET", "/messages", None),
                               ("POST", "/messages", {"body": "x"}), ("POST", "/notes", {"body": "x"}),
                               ("POST", "/resolve", None), ("POST", "/transfer", {"operator": b})):
        r = call(daemon, method, "/api/v1/conversations/%d%s" % (mine, path), body, inbox.bearer(tb))
        assert r.status == 403, (method, path, r)
    assert post(daemon, tb, "/api/v1/conversations/%d/take" % mine).status == 409
    # the queue is readable, and taking it makes it Budi's
    assert get(daemon, tb, "/api/v1/conversations/%d" % queued)["id"] == queued
    r = post(daemon, tb, "/api/v1/conversations/%d/take" % queued)
    assert r.status == 200 and r.json()["assignee"] == b, r
    assert ids(get(daemon, ta, "/api/v1/conversations")) == [mine]
    assert call(daemon, "GET", "/api/v1/conversations/999999", None, inbox.bearer(ta)).status == 404


def test_detail_messages_paged_and_notes_never_leave(daemon, db):
    inbox.add_operator(db, "ani@x.id", online=True)
    ta = inbox.token(db, "ani@x.id")
    conv = inbox.ingest(db, "+6281200000301", "d-1", "Satu")
    for i in range(2, 6):
        inbox.ingest(db, "+6281200000301", "d-%d" % i, "Pesan %d" % i)
    detail = get(daemon, ta, "/api/v1/conversations/%d" % conv)
    assert detail["investor"]["identities"][0]["address"] == "+6281200000301"
    assert detail["investor"]["identities"][0]["kind"] == "sms" and detail["assignee"] is not None
    r = post(daemon, ta, "/api/v1/conversations/%d/notes" % conv, {"body": "Investor ini sudah lapor Q3."})
    assert r.status == 201, r
    note = r.json()["id"]
    r = post(daemon, ta, "/api/v1/conversations/%d/messages" % conv, {"body": "Terima kasih, kami cek."})
    assert r.status == 201
    reply = r.json()["id"]
    first = get(daemon, ta, "/api/v1/conversations/%d/messages?limit=4" % conv)
    rest = get(daemon, ta, "/api/v1/conversations/%d/messages?limit=4&after=%s" % (conv, first["next"]))
    msgs = first["messages"] + rest["messages"]
    assert [m["body"] for m in msgs][:2] == ["Satu", "Pesan 2"] and len(msgs) == 7 and rest["next"] is None
    assert [m for m in msgs if m["id"] == note][0]["content_type"] == "note"

    def sent():
        if not os.path.exists(daemon.record):
            return None
        with open(daemon.record) as f:
            return [json.loads(ln)["id"] for ln in f if ln.strip()] or None
    assert linbat.wait_for(sent, 10) == [reply]
    time.sleep(0.5)  # one more dispatcher pass: the note must still not leave
    assert sent() == [reply]
    assert sql(db, "select status from linbat.message where id = %s", (note,))[0][0] == "sent"
    assert post(daemon, ta, "/api/v1/conversations/%d/notes" % conv, {"body": ""}).status == 400


def test_take_transfer_release_resolve_and_presence(daemon, db):
    a = inbox.add_operator(db, "ani@x.id", capacity=1)
    b = inbox.add_operator(db, "budi@x.id", capacity=1)
    ta, tb = inbox.token(db, "ani@x.id"), inbox.token(db, "budi@x.id")
    assert get(daemon, ta, "/api/v1/me/presence") == {"presence": "offline"}
    c1 = inbox.ingest(db, "+6281200000401", "t-1")
    c2 = inbox.ingest(db, "+6281200000402", "t-2")
    # coming online takes the oldest waiting conversation
    r = post(daemon, ta, "/api/v1/me/presence", {"presence": "online"}, method="PUT")
    assert r.status == 200 and r.json()["assigned"] == 1
    assert post(daemon, ta, "/api/v1/me/presence", {"presence": "busy"}, method="PUT").status == 400
    assert get(daemon, ta, "/api/v1/conversations/%d" % c1)["assignee"] == a
    # Budi is offline: no transfer to him
    assert post(daemon, ta, "/api/v1/conversations/%d/transfer" % c1, {"operator": b}).status == 409
    post(daemon, tb, "/api/v1/me/presence", {"presence": "online"}, method="PUT")
    assert get(daemon, tb, "/api/v1/conversations/%d" % c2)["assignee"] == b
    post(daemon, tb, "/api/v1/conversations/%d/resolve" % c2)
    r = post(daemon, ta, "/api/v1/conversations/%d/transfer" % c1, {"operator": b})
    assert r.status == 200 and r.json()["assignee"] == b, r
    assert post(daemon, ta, "/api/v1/conversations/%d/transfer" % c1, {"operator": "b"}).status == 400
    # Budi gives it back: it waits again, and free Ani takes it
    r = post(daemon, tb, "/api/v1/conversations/%d/release" % c1)
    assert r.status == 200, r
    assert get(daemon, ta, "/api/v1/conversations/%d" % c1)["assignee"] == a
    assert post(daemon, ta, "/api/v1/conversations/%d/resolve" % c1).json()["status"] == "resolved"
    assert post(daemon, ta, "/api/v1/conversations/%d/release" % c1).status == 409
    acts = [r for (r,) in sql(db, "select action from linbat.audit_log where object_type = 'conversation'")]
    assert acts.count("conversation.transfer") == 1 and acts.count("conversation.release") == 1


def test_operators_for_managers_and_investors_search_edit_merge(daemon, db):
    inbox.add_operator(db, "mira@x.id", role="manager")
    inbox.add_operator(db, "adi@x.id", role="admin")
    tm, tadm = inbox.token(db, "mira@x.id"), inbox.token(db, "adi@x.id")
    r = post(daemon, tm, "/api/v1/operators", {"email": "Eka@X.id", "name": "Eka", "capacity": 3,
                                               "password": "sandi-eka-123"})
    assert r.status == 201 and r.json()["email"] == "eka@x.id", r
    eka = r.json()["id"]
    inbox.Session(daemon, "eka@x.id", "sandi-eka-123")
    assert post(daemon, tm, "/api/v1/operators", {"email": "eka@x.id", "name": "Lagi"}).status == 409
    assert post(daemon, tm, "/api/v1/operators", {"email": "x@x.id", "name": "X", "password": "short"}).status == 400
    assert post(daemon, tm, "/api/v1/operators", {"email": "boss@x.id", "name": "B", "role": "admin"}).status == 403
    assert post(daemon, tm, "/api/v1/operators/%d" % eka, {"role": "admin"}, method="PATCH").status == 403
    assert post(daemon, tadm, "/api/v1/operators/%d" % eka, {"role": "admin"}, method="PATCH").status == 200
    r = post(daemon, tm, "/api/v1/operators/%d" % eka, {"capacity": 4}, method="PATCH")
    assert r.status == 403  # Eka is an admin now
    assert [o["email"] for o in get(daemon, tm, "/api/v1/operators")["operators"]][-1] == "eka@x.id"

    c1 = inbox.ingest(db, "+6281200000501", "m-1", "Dari WhatsApp lama")
    c2 = inbox.ingest(db, "+6281200000502", "m-2", "Dari nomor baru")
    i1, i2 = [sql(db, "select investor_id from linbat.conversation where id = %s", (c,))[0][0] for c in (c1, c2)]
    found = get(daemon, tm, "/api/v1/investors?q=0000502")["investors"]
    assert [i["id"] for i in found] == [i2]
    r = post(daemon, tm, "/api/v1/investors/%d" % i1, {"nib": "1234567890123", "company_name": "PT Maju"},
             method="PATCH")
    assert r.status == 200 and r.json()["nib"] == "1234567890123", r
    assert post(daemon, tm, "/api/v1/investors/%d" % i1, {"colour": "red"}, method="PATCH").status == 400
    assert post(daemon, tm, "/api/v1/investors/%d" % i1, {"nib": "12"}, method="PATCH").status == 400
    r = post(daemon, tm, "/api/v1/investors/%d/merge" % i1, {"from": i2})
    assert r.status == 200, r
    assert sorted(d["address"] for d in r.json()["identities"]) == ["+6281200000501", "+6281200000502"]
    # both open conversations became one: the messages moved, the other is resolved
    rows = sql(db, "select id, status, investor_id from linbat.conversation order by id")
    assert rows[0] == (c1, "open", i1) and rows[1][1:] == ("resolved", i1)
    assert sql(db, "select count(*) from linbat.message where conversation_id = %s and direction = 'in'", (c1,))[0][0] == 2
    assert [i["id"] for i in get(daemon, tm, "/api/v1/investors?q=0000502")["investors"]] == [i1]
    assert post(daemon, tm, "/api/v1/investors/%d/merge" % i1, {"from": i2}).status == 404
    assert post(daemon, tm, "/api/v1/investors/%d/merge" % i1, {"from": i1}).status == 400
    merges = sql(db, "select detail->>'from' from linbat.audit_log where action = 'investor.merge'")
    assert merges == [(str(i2),)]
