"""The first API an operator needs: linbatctl operator add and token create,
bearer authentication, listing conversations and messages, and a reply that
leaves through the conversation's channel (a test channel of kind sms)."""

import json
import os

import psycopg2
import pytest

import linbat


def ingest(dsn, address, provider_id, body):
    """Store one inbound SMS on instance t1, as an adapter would."""
    with psycopg2.connect(dsn) as c, c.cursor() as cur:
        cur.execute("select conversation_id from linbat.ingest_inbound('t1', 'sms', %s, %s, %s, "
                    "'text', '{}', now(), null)", (address, provider_id, body))
        return cur.fetchone()[0]


def add_operator(dsn, email, role="operator", password="rahasia-sekali"):
    r = linbat.run([linbat.LINBATCTL, "-d", dsn, "operator", "add", "--email", email,
                    "--name", "Operator " + role, "--role", role], input=password + "\n")
    assert r.returncode == 0, r.stderr
    r = linbat.run([linbat.LINBATCTL, "-d", dsn, "token", "create", "--email", email])
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert len(token) == 64
    # on duty, so an investor who writes is routed to them, not acknowledged
    with psycopg2.connect(dsn) as c, c.cursor() as cur:
        cur.execute("select linbat.set_presence(id, 'online') from linbat.operator where email = lower(%s)",
                    (email,))
    return token


@pytest.fixture
def daemon(start_linbatd, tmp_path):
    record = str(tmp_path / "t1.jsonl")
    d = start_linbatd(extra={"channel t1": {"type": "test", "record": record}})
    d.record = record
    return d


def auth(token):
    return {"Authorization": "Bearer " + token, "Content-Type": "application/json"}


def test_token_is_stored_hashed_and_password_as_argon2id(daemon, db):
    token = add_operator(db, "Ani@DPMPTSP.example.go.id")
    with psycopg2.connect(db) as c, c.cursor() as cur:
        cur.execute("select email, password_hash from linbat.operator")
        email, pw = cur.fetchone()
        cur.execute("select token_hash from linbat.api_token")
        (th,) = cur.fetchone()
    assert email == "ani@dpmptsp.example.go.id"
    assert pw.startswith("$argon2id$")
    assert th != token and len(th) == 64


def test_short_password_is_refused_and_nothing_added(daemon, db):
    r = linbat.run([linbat.LINBATCTL, "-d", db, "operator", "add", "--email", "a@b.id", "--name", "A"],
                   input="short\n")
    assert r.returncode == 1
    assert "at least 8" in r.stderr
    with psycopg2.connect(db) as c, c.cursor() as cur:
        cur.execute("select count(*) from linbat.operator")
        assert cur.fetchone()[0] == 0


def test_anonymous_and_bad_tokens_get_401(daemon):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"}):
        r = daemon.request("GET", "/api/v1/conversations", headers=headers)
        assert r.status == 401, r
        assert r.json()["error"]["code"] == "unauthorized"


def test_list_reply_and_read_back(daemon, db):
    token = add_operator(db, "budi@dpmptsp.example.go.id")
    conv = ingest(db, "+6281234567890", "k-1", "Selamat pagi, bagaimana cara lapor LKPM?")

    r = daemon.request("GET", "/api/v1/conversations", headers=auth(token))
    assert r.status == 200, r
    convs = r.json()["conversations"]
    assert [c["id"] for c in convs] == [conv]
    assert convs[0]["channel"] == "t1" and convs[0]["status"] == "open"
    assert "investor" in convs[0] and "waiting_since" in convs[0]

    body = "Selamat pagi. Silakan masuk ke OSS, menu LKPM."
    r = daemon.request("POST", "/api/v1/conversations/%d/messages" % conv,
                       body=json.dumps({"body": body}).encode(), headers=auth(token))
    assert r.status == 201, r
    mid = r.json()["id"]

    # The reply leaves through the conversation's channel, exactly once.
    def sent():
        if not os.path.exists(daemon.record):
            return None
        with open(daemon.record) as f:
            recs = [json.loads(ln) for ln in f if ln.strip()]
        return recs or None
    recs = linbat.wait_for(sent, 10)
    assert [(r_["id"], r_["to"], r_["body"]) for r_ in recs] == [(mid, "+6281234567890", body)]

    r = daemon.request("GET", "/api/v1/conversations/%d/messages" % conv, headers=auth(token))
    msgs = r.json()["messages"]
    assert [m["direction"] for m in msgs] == ["in", "out"]
    assert msgs[1]["body"] == body


@pytest.mark.parametrize("payload,status", [
    (b'{"body": ""}', 400),
    (b'{"text": "x"}', 400),
    (b'not json', 400),
    (b'["body"]', 400),
])
def test_bad_replies_are_refused_and_change_nothing(daemon, db, payload, status):
    token = add_operator(db, "citra@dpmptsp.example.go.id")
    conv = ingest(db, "+6281234567891", "k-2", "Halo")
    r = daemon.request("POST", "/api/v1/conversations/%d/messages" % conv, body=payload, headers=auth(token))
    assert r.status == status, r
    assert r.json()["error"]["code"] == "bad_request"
    with psycopg2.connect(db) as c, c.cursor() as cur:
        cur.execute("select count(*) from linbat.message where direction = 'out'")
        assert cur.fetchone()[0] == 0


def test_unknown_conversation_and_route_are_404_json(daemon, db):
    token = add_operator(db, "dewi@dpmptsp.example.go.id")
    r = daemon.request("GET", "/api/v1/conversations/999999/messages", headers=auth(token))
    assert r.status == 404, r
    r = daemon.request("POST", "/api/v1/conversations/999999/messages", body=b'{"body":"x"}',
                       headers=auth(token))
    assert r.status == 404, r
    r = daemon.request("GET", "/api/v1/nothing-here", headers=auth(token))
    assert r.status == 404 and r.json()["error"]["code"] == "not_found"
