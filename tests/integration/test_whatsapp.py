"""Integration tests of the WhatsApp Cloud API adapter (channels/whatsapp*.c)
against a real linbatd, a private PostgreSQL and wa-emu, the Cloud API
emulator (tests/emulators/wa-emu). Webhooks are built and signed by
tests/emulators/wa_webhook.py as Meta sends them; what the adapter sends is
checked on the emulator's record file, not on the daemon's own word, and
what it stores on the database rows.

Covered: the subscription handshake; signature checks before anything is
stored; one investor, identity, conversation and message per new sender, and
nothing more when Meta delivers the same webhook again; every message type
with its content_type and metadata; several entries, changes and messages in
one webhook; forward-only statuses; 503 while PostgreSQL is down; media
fetched in two steps and stored with their SHA-256; the shape of text and
template sends and the classes of Graph API errors.
"""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

import psycopg2
import pytest

import linbat

sys.path.insert(0, os.path.join(linbat.TOP_SRCDIR, "tests", "emulators"))
import wa_webhook as wh  # noqa: E402

TOKEN = "EAAlinbat-test-token-7f3a"
SECRET = "wa1-app-secret-0c2d"
VERIFY = "wa1-verify-token-91be"
PNID = wh.PHONE_NUMBER_ID
BUDI = "6281234567890"
TABLES = ("investor", "identity", "conversation", "message", "attachment")
# What counts() counts per table: inbound messages only, since routing may queue an
# acknowledgement (an outbound message) for a new conversation.
WHERE = {"message": " where direction = 'in'"}
DISPATCH = {"batch": "50", "in_flight": "50", "backoff_base": "100ms", "max_attempts": "3",
            "lease": "5s"}


class WaEmu:
    """A wa-emu process on a free loopback port, recording what it accepts."""

    def __init__(self, workdir, listen="127.0.0.1:0", extra=("--status-delay-ms", "-1")):
        self.record = os.path.join(workdir, "wa-emu.jsonl")
        self.log = os.path.join(workdir, "wa-emu.log")
        port_file = os.path.join(workdir, "wa-emu.port")
        binary = os.path.join(linbat.TOP_BUILDDIR, "tests", "emulators", "wa-emu")
        assert os.access(binary, os.X_OK), "wa-emu is not built at %s" % binary
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                [binary, "--listen", listen, "--port-file", port_file, "--token", TOKEN,
                 "--record", self.record, "--phone-number-id", PNID] + list(extra),
                stdout=subprocess.PIPE, stderr=err, text=True)
        line = self.proc.stdout.readline()
        m = re.fullmatch(r"listening (\d+)\n", line)
        assert m, "wa-emu did not start: %r" % line
        self.port = int(m.group(1))
        self.url = "http://127.0.0.1:%d" % self.port

    def control(self, method, what, body=None, headers=None):
        """A control API call under /_emu/; returns the parsed JSON answer."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = dict(headers or {}, **{"Content-Type": "application/json"})
        r = linbat.http(method, self.url + "/_emu/" + what, body, headers)
        assert r.status == 200, r
        return r.json()

    def add_media(self, data, mime_type):
        """Register bytes as a media object; returns {id, mime_type, sha256, file_size}."""
        return self.control("POST", "media", data, {"Content-Type": mime_type})

    def records(self):
        if not os.path.exists(self.record):
            return []
        with open(self.record) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=5)
        self.proc.stdout.close()


class Wa:
    """A linbatd with one WhatsApp instance, wa1, speaking to a wa-emu."""

    def __init__(self, daemon, emu, dsn):
        self.d = daemon
        self.emu = emu
        self.dsn = dsn
        self.conn = psycopg2.connect(dsn)
        self.conn.autocommit = True
        self.hook_url = daemon.url + "/webhooks/wa1"

    def post(self, payload, secret=SECRET, signature=None):
        """POST a webhook signed with secret; returns (status, parsed answer or bytes)."""
        status, body = wh.post(self.hook_url, payload, secret, signature=signature)
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body

    def q(self, sql, params=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def one(self, sql, params=None):
        rows = self.q(sql, params)
        assert len(rows) == 1, rows
        return rows[0]

    def counts(self):
        """{table: rows} of the tables a webhook may add to."""
        return {t: self.q("select count(*) from linbat.%s%s" % (t, WHERE.get(t, "")))[0][0]
                for t in TABLES}

    def message(self, wamid):
        """The inbound message of a wamid as a dict."""
        rows = self.q("select id, content_type, body, meta, conversation_id, identity_id "
                      "from linbat.message where provider_id = %s and channel_instance = 'wa1'",
                      (wamid,))
        assert len(rows) == 1, "want one message %s, have %d" % (wamid, len(rows))
        keys = ("id", "content_type", "body", "meta", "conversation_id", "identity_id")
        return dict(zip(keys, rows[0]))

    def sent(self, mid):
        """The emulator's record of our message mid (by biz_opaque_callback_data).
        wa-emu flushes its record file every 100 ms: wait for the line."""
        def mine():
            return [r for r in self.emu.records() if r["biz_opaque_callback_data"] == str(mid)]
        recs = linbat.wait_for(mine, 2)
        time.sleep(0.2)
        recs = mine()
        assert len(recs) == 1, "message %d was sent %d times" % (mid, len(recs))
        return recs[0]

    def log(self):
        with open(self.d.log_path, errors="replace") as f:
            return f.read()


def wa_section(emu_url, **keys):
    """The [channel wa1] section pointing at a wa-emu."""
    section = {"type": "whatsapp", "phone_number_id": PNID, "access_token": TOKEN,
               "app_secret": SECRET, "verify_token": VERIFY, "api_base": emu_url + "/v21.0",
               "template_name": "lkpm_balasan", "template_language": "id"}
    section.update({k: str(v) for k, v in keys.items()})
    return section


@pytest.fixture
def emu(tmp_path):
    e = WaEmu(str(tmp_path))
    yield e
    e.stop()


@pytest.fixture
def start_wa(start_linbatd, emu, db):
    """A function that starts linbatd with wa1 (extra [channel wa1] keys as kwargs)."""
    made = []

    def start(dsn=None, allow=(), sections=None, **keys):
        extra = {"channel wa1": wa_section(emu.url, **keys), "dispatch": DISPATCH}
        extra.update(sections or {})
        d = start_linbatd(dsn=dsn, allow=allow, extra=extra)
        w = Wa(d, emu, dsn or db)
        made.append(w)
        return w

    yield start
    for w in made:
        w.conn.close()


@pytest.fixture
def wa(start_wa):
    return start_wa()


def text_hook(frm=BUDI, body="Selamat pagi, saya mau lapor LKPM.", name="Budi Santoso", **kw):
    """A webhook of one text message; returns (payload, wamid)."""
    msg = wh.text(frm, body, **kw)
    return wh.webhook(wh.value(messages=[msg], names={frm: name})), msg["id"]


# Handshake -------------------------------------------------------------------

def handshake(wa, **params):
    return wa.d.get("/webhooks/wa1?" + urllib.parse.urlencode(params))


def test_handshake_answers_the_challenge(wa):
    r = handshake(wa, **{"hub.mode": "subscribe", "hub.challenge": "1158201444",
                         "hub.verify_token": VERIFY})
    assert r.status == 200
    assert r.body == b"1158201444"
    assert r.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("params", [
    {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": "wrong"},
    {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": VERIFY[:-1]},
    {"hub.mode": "unsubscribe", "hub.challenge": "1158201444", "hub.verify_token": VERIFY},
    {"hub.challenge": "1158201444", "hub.verify_token": VERIFY},
    {"hub.mode": "subscribe", "hub.challenge": "1158201444"},
])
def test_handshake_refused(wa, params):
    r = handshake(wa, **params)
    assert r.status == 403
    assert b"1158201444" not in r.body
    assert r.json()["error"]["code"]


# Signatures ------------------------------------------------------------------

def test_signed_text_makes_investor_identity_conversation_message(wa):
    before = wa.counts()
    payload, wamid = text_hook(timestamp="1764300000")
    status, answer = wa.post(payload)
    assert status == 200, answer
    after = wa.counts()
    assert {t: after[t] - before[t] for t in TABLES} == {
        "investor": 1, "identity": 1, "conversation": 1, "message": 1, "attachment": 0}
    m = wa.message(wamid)
    assert (m["content_type"], m["body"]) == ("text", "Selamat pagi, saya mau lapor LKPM.")
    assert m["meta"]["wa_id"] == BUDI
    kind, address, name, status_, received = wa.one(
        "select i.kind, i.address, inv.display_name, c.status, "
        "extract(epoch from msg.received_at)::bigint "
        "from linbat.message msg join linbat.identity i on i.id = msg.identity_id "
        "join linbat.investor inv on inv.id = i.investor_id "
        "join linbat.conversation c on c.id = msg.conversation_id where msg.id = %s", (m["id"],))
    assert (kind, address, name, status_, received) == (
        "whatsapp", "+" + BUDI, "Budi Santoso", "open", 1764300000)


def test_the_same_webhook_again_changes_nothing(wa):
    payload, wamid = text_hook()
    assert wa.post(payload)[0] == 200
    before = wa.counts()
    for _ in range(3):
        status, answer = wa.post(payload)
        assert status == 200
        assert answer["duplicates"] == 1 and answer["stored"] == 0
    assert wa.counts() == before
    wa.message(wamid)


def test_counts_can_tell_a_change(wa):
    """The check above must be able to fail: a new sender changes the counts."""
    before = wa.counts()
    assert wa.post(text_hook(frm="6281200000777")[0])[0] == 200
    assert wa.counts() != before


@pytest.mark.parametrize("how", ["wrong secret", "missing", "tampered body", "not sha256",
                                 "truncated"])
def test_bad_signature_is_refused_and_nothing_stored(wa, how):
    payload, _ = text_hook()
    body = wh.encode(payload)
    signature = {
        "wrong secret": wh.sign(body, "not-the-secret"),
        "missing": "",
        "tampered body": wh.sign(body.replace(b"Selamat", b"Salamat"), SECRET),
        "not sha256": "sha1=" + hashlib.sha1(body).hexdigest(),
        "truncated": wh.sign(body, SECRET)[:-2],
    }[how]
    before = wa.counts()
    status, answer = wa.post(body, signature=signature)
    assert status == 401, answer
    assert answer["error"]["code"]
    assert wa.counts() == before


# Parsing ---------------------------------------------------------------------

def test_every_message_type_is_stored_with_its_metadata(wa):
    ours = "wamid.OURS0001"
    msgs = {
        "text": wh.text(BUDI, "Halo", context=wh.context(ours)),
        "image": wh.image(BUDI, "1001", caption="Foto KTP"),
        "document": wh.document(BUDI, "1002", filename="lkpm_q3.pdf", caption="Laporan"),
        "audio": wh.audio(BUDI, "1003"),
        "voice": wh.voice(BUDI, "1004"),
        "video": wh.video(BUDI, "1005", caption="Lokasi usaha"),
        "sticker": wh.sticker(BUDI, "1006"),
        "location": wh.location(BUDI, -2.3245, 115.4629, name="Kantor DPMPTSP",
                                address="Paringin, Balangan"),
        "contacts": wh.contacts(BUDI, [wh.contact_card("Siti Aminah", "+62 812 0000 1111",
                                                       wa_id="6281200001111")]),
        "reaction": wh.reaction(BUDI, ours, "\U0001F44D"),
        "button": wh.button(BUDI, "Sudah lapor", "SUDAH", ours),
        "button_reply": wh.button_reply(BUDI, "ya", "Ya", ours),
        "list_reply": wh.list_reply(BUDI, "kbli-01111", "01111", ours,
                                    description="Pertanian jagung"),
        "unsupported": wh.unsupported(BUDI),
        "unknown": wh.unknown(BUDI),
    }
    status, answer = wa.post(wh.webhook(wh.value(messages=list(msgs.values()),
                                                 names={BUDI: "Budi"})))
    assert status == 200 and answer["stored"] == len(msgs), answer
    got = {k: wa.message(m["id"]) for k, m in msgs.items()}

    want = {  # key: (content_type, body)
        "text": ("text", "Halo"), "image": ("image", "Foto KTP"),
        "document": ("document", "Laporan"), "audio": ("audio", ""), "voice": ("voice", ""),
        "video": ("video", "Lokasi usaha"), "sticker": ("sticker", ""),
        "location": ("location", "Kantor DPMPTSP, Paringin, Balangan"),
        "contacts": ("contacts", "Siti Aminah"), "reaction": ("reaction", "\U0001F44D"),
        "button": ("button", "Sudah lapor"), "button_reply": ("interactive", "Ya"),
        "list_reply": ("interactive", "01111"), "unsupported": ("unsupported", ""),
        "unknown": ("unsupported", ""),
    }
    assert {k: (g["content_type"], g["body"]) for k, g in got.items()} == want

    meta = {k: g["meta"] for k, g in got.items()}
    assert meta["text"]["context"]["id"] == ours
    assert meta["image"]["media"]["id"] == "1001"
    assert meta["image"]["media"]["mime_type"] == "image/jpeg"
    assert meta["image"]["media"]["sha256"] == msgs["image"]["image"]["sha256"]
    assert meta["document"]["media"]["filename"] == "lkpm_q3.pdf"
    assert meta["voice"]["media"]["voice"] is True
    assert meta["voice"]["media"]["mime_type"] == "audio/ogg; codecs=opus"
    assert meta["audio"]["media"]["voice"] is False
    assert (meta["location"]["location"]["latitude"],
            meta["location"]["location"]["longitude"]) == (-2.3245, 115.4629)
    assert meta["contacts"]["contacts"][0]["phones"][0]["wa_id"] == "6281200001111"
    assert meta["reaction"]["reaction"] == {"message_id": ours, "emoji": "\U0001F44D"}
    assert meta["button"]["button"] == {"text": "Sudah lapor", "payload": "SUDAH"}
    assert meta["button"]["context"]["id"] == ours
    assert meta["button_reply"]["interactive"] == {"type": "button_reply", "id": "ya", "title": "Ya"}
    assert meta["list_reply"]["interactive"]["description"] == "Pertanian jagung"
    for k in ("unsupported", "unknown"):
        assert meta[k]["raw"] == msgs[k], k
        assert meta[k]["raw"]["errors"][0]["code"] == 131051
    for k, m in meta.items():
        assert m["type"] == msgs[k]["type"] and m["wa_id"] == BUDI, k


def test_many_entries_changes_and_messages_in_one_webhook(wa):
    senders = ["62812000001%02d" % i for i in range(12)]
    msgs = [wh.text(s, "pesan %d" % i) for i, s in enumerate(senders)]
    foreign = wh.text("6281299999999", "for another number")
    entries = [
        wh.entry(wh.value(messages=msgs[0:3]), wh.value(messages=msgs[3:6])),
        wh.entry(wh.value(messages=msgs[6:9]),
                 wh.value(messages=[foreign], phone_number_id="999000999"),
                 wh.value(messages=msgs[9:12])),
    ]
    status, answer = wa.post(wh.webhook(entries=entries))
    assert status == 200 and answer["stored"] == 12, answer
    rows = wa.q("select i.address, m.body from linbat.message m "
                "join linbat.identity i on i.id = m.identity_id where m.direction = 'in'")
    assert sorted(rows) == sorted(("+" + s, "pesan %d" % i) for i, s in enumerate(senders))
    assert wa.counts()["investor"] == 12
    assert not wa.q("select 1 from linbat.message where provider_id = %s", (foreign["id"],))


# Statuses --------------------------------------------------------------------

def outbound(wa, wamid):
    """An outbound message in status sent under wamid, to BUDI; returns its id."""
    assert wa.post(text_hook()[0])[0] == 200
    conv, ident = wa.one("select conversation_id, identity_id from linbat.message "
                         "where direction = 'in' order by id limit 1")
    return wa.one("insert into linbat.message (conversation_id, direction, identity_id, "
                  "channel_instance, provider_id, body, status, sent_at) values "
                  "(%s, 'out', %s, 'wa1', %s, 'Balasan', 'sent', now()) returning id",
                  (conv, ident, wamid))[0]


def post_statuses(wa, *statuses):
    status, answer = wa.post(wh.webhook(wh.value(statuses=statuses)))
    assert status == 200, answer
    return answer


def test_delivered_then_read_is_read(wa):
    mid = outbound(wa, "wamid.OUT1")
    post_statuses(wa, wh.status("wamid.OUT1", "delivered", BUDI, timestamp="1764300010"))
    assert wa.one("select status from linbat.message where id = %s", (mid,)) == ("delivered",)
    post_statuses(wa, wh.status("wamid.OUT1", "read", BUDI, timestamp="1764300020"))
    assert wa.one("select status, extract(epoch from delivered_at)::bigint, "
                  "extract(epoch from read_at)::bigint from linbat.message where id = %s",
                  (mid,)) == ("read", 1764300010, 1764300020)


def test_read_then_delivered_stays_read(wa):
    mid = outbound(wa, "wamid.OUT2")
    post_statuses(wa, wh.status("wamid.OUT2", "read", BUDI, timestamp="1764300020"),
                  wh.status("wamid.OUT2", "delivered", BUDI, timestamp="1764300010"))
    post_statuses(wa, wh.status("wamid.OUT2", "delivered", BUDI, timestamp="1764300010"))
    assert wa.one("select status, delivered_at is not null from linbat.message where id = %s",
                  (mid,)) == ("read", True)


def test_failed_status_carries_the_error(wa):
    mid = outbound(wa, "wamid.OUT3")
    post_statuses(wa, wh.failed("wamid.OUT3", BUDI, code=131026, title="Message undeliverable"))
    assert wa.one("select status, error_code, error_text from linbat.message where id = %s",
                  (mid,)) == ("failed", "131026", "Message undeliverable")


# Database down ----------------------------------------------------------------

def test_webhook_while_postgresql_is_down_is_503_then_stored_once(start_wa, private_pg):
    wa = start_wa(dsn=private_pg.dsn(private_pg.create_database()))
    payload, wamid = text_hook()
    wa.conn.close()
    private_pg.stop()
    status, answer = wa.post(payload)
    assert status == 503, answer
    private_pg.start()
    assert linbat.wait_for(lambda: wa.post(payload)[0] == 200, 15, interval=0.3)
    wa.conn = psycopg2.connect(wa.dsn)
    wa.conn.autocommit = True
    wa.message(wamid)
    assert wa.post(payload) == (200, {"status": "ok", "stored": 0, "duplicates": 1, "statuses": 0})


# Media -----------------------------------------------------------------------

def attachment(wa, wamid):
    rows = wa.q("select a.status, a.mime_type, a.size, a.sha256, a.data, a.error, "
                "a.provider_media_id from linbat.attachment a join linbat.message m "
                "on m.id = a.message_id where m.provider_id = %s", (wamid,))
    keys = ("status", "mime_type", "size", "sha256", "data", "error", "media_id")
    return [dict(zip(keys, r)) for r in rows]


def wait_attachment(wa, wamid, timeout=10):
    def done():
        a = attachment(wa, wamid)
        return a if a and a[0]["status"] != "pending" else None
    got = linbat.wait_for(done, timeout, interval=0.1)
    assert got, "attachment of %s still %s" % (wamid, attachment(wa, wamid))
    assert len(got) == 1
    return got[0]


def test_media_is_fetched_and_stored_with_its_hash(wa):
    jpeg = b"\xff\xd8\xff\xe0" + os.urandom(50000) + b"\xff\xd9"
    opus = b"OggS" + os.urandom(3000)
    m1 = wa.emu.add_media(jpeg, "image/jpeg")
    m2 = wa.emu.add_media(opus, "audio/ogg; codecs=opus")
    img = wh.image(BUDI, m1["id"], sha256=m1["sha256"], caption="Foto NIB")
    voc = wh.voice(BUDI, m2["id"], sha256=m2["sha256"])
    assert wa.post(wh.webhook(wh.value(messages=[img, voc])))[0] == 200

    a = wait_attachment(wa, img["id"])
    assert a["status"] == "stored", a
    assert bytes(a["data"]) == jpeg
    assert a["sha256"] == hashlib.sha256(jpeg).hexdigest() == m1["sha256"]
    assert (a["size"], a["mime_type"], a["media_id"]) == (len(jpeg), "image/jpeg", m1["id"])
    v = wait_attachment(wa, voc["id"])
    assert (v["status"], v["mime_type"], bytes(v["data"])) == ("stored", "audio/ogg", opus)
    assert "Media stored." in wa.log()
    # Delivered again: no second attachment, no second fetch.
    assert wa.post(wh.webhook(wh.value(messages=[img])))[1]["duplicates"] == 1
    assert wa.q("select count(*) from linbat.attachment") == [(2,)]


def test_failed_media_fetch_is_recorded_and_the_message_kept(wa):
    img = wh.image(BUDI, "424242424242", caption="expired id")
    assert wa.post(wh.webhook(wh.value(messages=[img])))[0] == 200
    a = wait_attachment(wa, img["id"])
    assert a["status"] == "failed" and a["data"] is None
    assert "code 100" in a["error"], a
    assert wa.message(img["id"])["body"] == "expired id"
    # the warning is logged after the commit that the test has just seen
    assert linbat.wait_for(lambda: re.search(r" WARN whatsapp: A media fetch failed\. .*attachment=\d+ "
                                             r"media_id=424242424242 status=failed", wa.log()), 10), wa.log()


def test_media_over_media_max_is_refused(start_wa):
    wa = start_wa(media_max="1k")
    m = wa.emu.add_media(os.urandom(4096), "application/pdf")
    doc = wh.document(BUDI, m["id"])
    assert wa.post(wh.webhook(wh.value(messages=[doc])))[0] == 200
    a = wait_attachment(wa, doc["id"])
    assert a["status"] == "failed" and "media_max" in a["error"], a


# Sends -----------------------------------------------------------------------

def reply(wa, body, frm=BUDI):
    """Queue an operator's reply in the conversation of frm; returns its id."""
    conv = wa.one("select c.id from linbat.conversation c join linbat.identity i "
                  "on i.investor_id = c.investor_id where i.address = %s", ("+" + frm,))[0]
    return wa.one("select linbat.enqueue_reply(%s, %s, null)", (conv, body))[0]


def wait_status(wa, mid, want, timeout=15):
    def done():
        row = wa.one("select status, provider_id, error_kind, error_code, error_text, attempts "
                     "from linbat.message where id = %s", (mid,))
        return row if row[0] in want else None
    row = linbat.wait_for(done, timeout, interval=0.1)
    assert row, "message %d: %s" % (mid, wa.one("select status, error_kind, error_code, "
                                               "error_text from linbat.message where id = %s",
                                               (mid,)))
    return row


def test_text_reply_inside_the_window(wa):
    assert wa.post(text_hook()[0])[0] == 200
    mid = reply(wa, "Baik Pak Budi,\nsilakan kirim NIB Anda.")
    status, wamid, *_ = wait_status(wa, mid, ("sent",))
    r = wa.sent(mid)
    assert r["wamid"] == wamid
    assert r["auth"] == "ok"
    assert (r["type"], r["to"], r["body"]) == ("text", BUDI, "Baik Pak Budi,\nsilakan kirim NIB Anda.")
    assert TOKEN not in wa.log()


def test_template_when_the_window_is_closed(wa):
    assert wa.post(text_hook()[0])[0] == 200
    wa.q("update linbat.identity set last_inbound_at = now() - interval '2 days'")
    mid = reply(wa, "Baik Pak,\n\tLKPM Anda sudah kami terima.")
    wait_status(wa, mid, ("sent",))
    r = wa.sent(mid)
    assert r["type"] == "template"
    assert r["template"] == {
        "name": "lkpm_balasan", "language": {"code": "id"},
        "components": [{"type": "body", "parameters": [
            {"type": "text", "text": "Baik Pak, LKPM Anda sudah kami terima."}]}]}


@pytest.mark.parametrize("code,kind,final", [
    (131026, "permanent", "failed"),
    (131051, "permanent", "failed"),
    (132001, "permanent", "failed"),
    (131000, "temporary", "queued"),
    (130429, "rate_limited", "queued"),
])
def test_graph_api_errors_are_classified(wa, code, kind, final):
    assert wa.post(text_hook()[0])[0] == 200
    wa.emu.control("POST", "faults", {"per_recipient": {BUDI: code}, "retry_after": 30})
    mid = reply(wa, "Balasan")
    row = linbat.wait_for(lambda: wa.one(
        "select status, error_kind, error_code, error_text from linbat.message where id = %s "
        "and error_code is not null", (mid,)) if wa.q(
        "select 1 from linbat.message where id = %s and error_code is not null", (mid,)) else None,
        15, interval=0.1)
    assert row, wa.one("select status, error_kind from linbat.message where id = %s", (mid,))
    status, error_kind, error_code, error_text = row
    assert (error_kind, error_code) == (kind, str(code))
    assert error_text.startswith("(#%d)" % code)
    if final == "failed":
        assert wait_status(wa, mid, ("failed",))[0] == "failed"
    if kind == "rate_limited":
        later = wa.one("select next_attempt_at - now() from linbat.message where id = %s", (mid,))[0]
        assert later.total_seconds() > 20, later


@pytest.mark.log_allow(r"ERROR whatsapp: The Graph API rejected the access token")
def test_expired_token_is_told_to_the_admin_once(wa):
    for frm in ("6281200000501", "6281200000502", "6281200000503"):
        assert wa.post(text_hook(frm=frm)[0])[0] == 200
    wa.emu.control("POST", "faults", {"fail_rate": 1.0, "fail_kinds": [190]})
    mids = [reply(wa, "Balasan %s" % frm, frm=frm)
            for frm in ("6281200000501", "6281200000502", "6281200000503")]
    for mid in mids:
        row = wait_status(wa, mid, ("failed",))
        assert (row[2], row[3]) == ("permanent", "190")
    lines = [ln for ln in wa.log().splitlines() if " ERROR " in ln]
    assert len(lines) == 1, lines
    assert "access_token" in lines[0] and "channel=wa1" in lines[0]
    assert TOKEN not in wa.log()


def test_unreachable_graph_api_is_a_temporary_failure(start_wa, tmp_path):
    with linbat.refused_port() as port:
        wa = start_wa(api_base="http://127.0.0.1:%d/v21.0" % port)
        assert wa.post(text_hook()[0])[0] == 200
        mid = reply(wa, "Balasan")
        status, _, kind, code, text, attempts = wait_status(wa, mid, ("failed",), timeout=20)
    assert (kind, code) == ("temporary", "curl-7"), (kind, code, text)
    assert attempts == int(DISPATCH["max_attempts"])


def test_statuses_posted_by_the_emulator_end_in_read(start_linbatd, tmp_path):
    """End to end: wa-emu posts sent, delivered and read for our send, signed by
    its own HMAC code (it shares nothing with linbat's), to /webhooks/wa1."""
    port = linbat.free_port()
    d = start_linbatd(extra={"channel wa1": wa_section("http://127.0.0.1:%d" % port),
                             "dispatch": DISPATCH})
    emu = WaEmu(str(tmp_path), listen="127.0.0.1:%d" % port,
                extra=("--webhook", d.url + "/webhooks/wa1", "--app-secret", SECRET,
                       "--status-delay-ms", "50"))
    try:
        wa = Wa(d, emu, d.config["database"]["url"])
        assert wa.post(text_hook()[0])[0] == 200
        mid = reply(wa, "Baik, kami cek.")
        status, wamid, *_ = wait_status(wa, mid, ("read",), timeout=20)
        assert wamid == wa.sent(mid)["wamid"]
        # Meta's timestamps are whole seconds: only their order is checked.
        assert wa.one("select sent_at is not null, delivered_at <= read_at "
                      "from linbat.message where id = %s", (mid,)) == (True, True)
        assert "signature is missing or wrong" not in wa.log()
        wa.conn.close()
    finally:
        emu.stop()


def test_sigterm_lets_a_send_in_flight_finish(wa):
    """stop(drain): a send waiting for the Graph API is answered and recorded
    before linbatd exits, and the adapter reports that it stopped."""
    assert wa.post(text_hook()[0])[0] == 200
    wa.emu.control("POST", "faults", {"delay_ms": 1500})
    mid = reply(wa, "Balasan lambat")
    assert linbat.wait_for(lambda: wa.one("select status from linbat.message where id = %s",
                                          (mid,)) == ("sending",), 10, interval=0.02)
    time.sleep(0.2)
    wa.d.stop(timeout=10)
    assert wa.one("select status, provider_id = %s from linbat.message where id = %s",
                  (wa.sent(mid)["wamid"], mid)) == ("sent", True)
    assert "WhatsApp channel stopped. channel=wa1" in wa.log()


def test_the_stop_deadline_with_a_send_still_waiting(start_wa):
    """A send the Graph API holds past shutdown_timeout: linbatd gives up at
    the deadline and exits 0, touching nothing it has freed (the aborted
    transfer reports to the dispatcher and its record fails on the closed
    pool); the message stays leased as sending, for the next start."""
    wa = start_wa(sections={"daemon": {"shutdown_timeout": "300ms"}})
    assert wa.post(text_hook()[0])[0] == 200
    wa.emu.control("POST", "faults", {"delay_ms": 5000})
    mid = reply(wa, "Balasan lambat")
    wait_status(wa, mid, ("sending",), timeout=10)
    wa.d.stop(timeout=10)
    # the reply, and the acknowledgement of the new conversation (nobody is online)
    assert "Stopping with work still in flight. requests=0 sends=2" in wa.log()
    assert wa.one("select status from linbat.message where id = %s", (mid,)) == ("sending",)


def test_the_stop_deadline_with_an_ingest_still_waiting(start_wa):
    """An ingest that waits on a lock past shutdown_timeout: linbatd gives up
    at the deadline and exits 0, touching nothing it has freed (ASan runs
    this too: the query's failure used to come back after the channel and
    the HTTP server were freed); the webhook is not answered 200 (its
    connection closes), so Meta delivers it again."""
    wa = start_wa(sections={"daemon": {"shutdown_timeout": "300ms"}})
    frm = "6281300000010"
    payload, wamid = text_hook(frm=frm)
    holder = psycopg2.connect(wa.dsn)
    with holder.cursor() as cur:
        cur.execute("select linbat.xact_lock('identity', linbat.identity_lock_key('whatsapp', %s))",
                    ("+" + frm,))
    answers = []

    def post():
        try:
            answers.append(wa.post(payload)[0])
        except OSError as e:
            answers.append(repr(e))

    t = threading.Thread(target=post)
    t.start()
    try:
        assert linbat.wait_for(lambda: wa.one(
            "select count(*) from pg_stat_activity where wait_event_type = 'Lock' "
            "and query like '%%ingest_inbound%%'")[0] == 1, 20), "the ingest never waited"
        wa.d.stop(timeout=10)
    finally:
        holder.rollback()
        holder.close()
        t.join(15)
    assert answers and answers[0] != 200, answers
    assert "Stopping with work still in flight. requests=1" in wa.log()
    # PostgreSQL may still finish that ingest once the lock is free: Meta's
    # next delivery is then a duplicate, never a second message
    assert linbat.wait_for(lambda: wa.one(
        "select count(*) from pg_stat_activity where query like '%%ingest_inbound%%' "
        "and pid <> pg_backend_pid()")[0] == 0, 20)
    assert wa.one("select count(*) <= 1 from linbat.message where provider_id = %s", (wamid,)) == (True,)


def test_two_numbers_each_take_their_own(start_wa, emu):
    """The office runs two numbers (one Meta app): each instance stores the
    changes of its own phone_number_id and fetches its own media."""
    pnid2 = "106540352242999"
    wa = start_wa(sections={"channel wa2": wa_section(emu.url, phone_number_id=pnid2)})
    m = wa.emu.add_media(b"%PDF-1.4 nomor dua", "application/pdf")
    to_wa1 = wh.text(BUDI, "ke nomor satu")
    to_wa2 = wh.document("6281200000222", m["id"], filename="nib.pdf")
    both = wh.webhook(wh.value(messages=[to_wa1]),
                      wh.value(messages=[to_wa2], phone_number_id=pnid2))
    assert wh.post(wa.d.url + "/webhooks/wa1", both, SECRET)[0] == 200
    assert wh.post(wa.d.url + "/webhooks/wa2", both, SECRET)[0] == 200
    rows = wa.q("select provider_id, channel_instance from linbat.message where direction = 'in'")
    assert sorted(rows) == sorted([(to_wa1["id"], "wa1"), (to_wa2["id"], "wa2")])
    a = wait_attachment(wa, to_wa2["id"])
    assert (a["status"], bytes(a["data"])) == ("stored", b"%PDF-1.4 nomor dua")


# Routing settings ------------------------------------------------------------

ACK = "Terima kasih, Bapak/Ibu. Petugas kami segera membalas \\ 24 jam."


def test_the_acknowledgement_text_comes_from_the_config(start_wa):
    """Nobody is on duty: the investor's one acknowledgement is the configured
    text (spaces and a backslash survive libpq's options escaping), sent as the
    WhatsApp reply inside the window."""
    w = start_wa(sections={"routing": {"ack_text_id": ACK}})
    payload, wamid = text_hook()
    assert w.post(payload)[0] == 200
    conv = w.message(wamid)["conversation_id"]
    rows = w.q("select id, body from linbat.message where conversation_id = %s and direction = 'out'",
               (conv,))
    assert [r[1] for r in rows] == [ACK]
    assert w.sent(rows[0][0])["body"] == ACK


def test_the_sla_comes_from_the_config(start_wa):
    """An operator on duty gets the conversation due back within the configured SLA."""
    w = start_wa(sections={"routing": {"sla": "7m"}})
    w.q("insert into linbat.operator (name, email, presence) values ('Rina', 'rina@example.go.id', 'online')")
    payload, wamid = text_hook()
    assert w.post(payload)[0] == 200
    conv = w.message(wamid)["conversation_id"]
    (due,) = w.one("select extract(epoch from sla_due_at - last_message_at)::int from linbat.conversation "
                   "where id = %s", (conv,))
    assert 7 * 60 - 5 <= due <= 7 * 60 + 5, due
