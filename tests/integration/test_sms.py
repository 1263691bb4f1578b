"""Integration tests of the SMS adapters (channels/sms-kannel.c,
channels/sms-twilio.c) against a real linbatd and PostgreSQL.

sms-kannel runs against a real Kannel 1.4 (Debian's bearerbox and smsbox,
with the fake SMSC and its client fakesmsc; tests/lib/kannel.py): what an
operator writes must come out of fakesmsc exactly, long texts joined from
their parts and emoji decoded from UCS-2; an SMS injected at fakesmsc must
land in the investor's open conversation, the one their WhatsApp messages
are in; Kannel's DLRs must move the status to delivered; and a WhatsApp
131026 (wa-emu's per-recipient fault) must reach the investor by SMS with
both attempts in the conversation. Without the secret or from a peer not on
allow_ip, Kannel's webhooks get 401 and store nothing.

sms-twilio is checked with webhooks signed here (Python's hmac, sharing no
code with the daemon): one changed parameter gets 403 and stores nothing.
Its sends go to a small Messages API stand-in on http.server in a thread.
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading
import urllib.parse

import psycopg2
import pytest

import linbat
import kannel as kn

sys.path.insert(0, os.path.join(linbat.TOP_SRCDIR, "tests", "emulators"))
import wa_webhook as wh  # noqa: E402
from test_api import add_operator, auth  # noqa: E402
from test_whatsapp import WaEmu, wa_section  # noqa: E402
from test_whatsapp import SECRET as WA_SECRET  # noqa: E402

pytestmark = pytest.mark.skipif(not kn.available(), reason="Kannel (kannel, kannel-extras) is not installed")

SMS_SECRET = "sms1-inbound-3f9c1e7a"
OFFICE = "+6281100000000"
BUDI = "6281234567890"
DISPATCH = {"batch": "50", "in_flight": "50", "backoff_base": "100ms", "max_attempts": "3", "lease": "5s"}
GET_URL = "/webhooks/sms1?secret=%s&from=%%p&to=%%P&text=%%a&id=%%I&ts=%%T" % SMS_SECRET


class Db:
    """An autocommit connection with two helpers."""

    def __init__(self, dsn):
        self.conn = psycopg2.connect(dsn)
        self.conn.autocommit = True

    def q(self, sql, params=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def one(self, sql, params=None):
        rows = self.q(sql, params)
        assert len(rows) == 1, rows
        return rows[0]

    def counts(self):
        """(inbound messages, identities, investors)."""
        return self.one("select (select count(*) from linbat.message where direction = 'in'), "
                        "(select count(*) from linbat.identity), "
                        "(select count(*) from linbat.investor)")


def sms_section(k, **keys):
    """The [channel sms1] section for Kannel k."""
    s = {"type": "sms-kannel", "sendsms_url": k.sendsms_url, "username": k.username, "password": k.password,
         "from": OFFICE, "inbound_secret": SMS_SECRET, "allow_ip": "127.0.0.1"}
    s.update(keys)
    return s


@pytest.fixture
def office(start_linbatd, tmp_path, db):
    """linbatd with sms1 (a real Kannel) and wa1 (wa-emu), an operator on duty;
    yields (daemon, kannel, wa-emu, Db, operator token)."""
    k = kn.Kannel(str(tmp_path))
    emu = WaEmu(str(tmp_path))
    try:
        d = start_linbatd(extra={"channel sms1": sms_section(k), "channel wa1": wa_section(emu.url),
                                 "dispatch": DISPATCH})
        k.start(d.url + GET_URL)
        token = add_operator(db, "rina@dpmptsp.example.go.id")
        database = Db(db)
        yield d, k, emu, database, token
        database.conn.close()
    finally:
        k.stop()
        emu.stop()


def inbound(database, address, after=0):
    """The inbound messages from address with id > after, as (id, conversation, instance, body)."""
    return database.q("select m.id, m.conversation_id, m.channel_instance, m.body from linbat.message m "
                      "join linbat.identity i on i.id = m.identity_id where m.direction = 'in' "
                      "and i.address = %s and m.id > %s order by m.id", (address, after))


def inject(k, database, sender, text, address="+" + BUDI):
    """Send an SMS at fakesmsc and wait until linbatd stored it; returns its row."""
    before = database.one("select coalesce(max(id), 0) from linbat.message")[0]
    k.inject(sender, OFFICE, text)
    rows = linbat.wait_for(lambda: inbound(database, address, before), 20, interval=0.1)
    assert rows, "the SMS never reached linbatd:\n%s" % k.tail()
    return rows[0]


def reply(d, token, conv, body):
    r = d.request("POST", "/api/v1/conversations/%d/messages" % conv, body=json.dumps({"body": body}).encode(),
                  headers=auth(token))
    assert r.status == 201, r
    return r.json()["id"]


def wait_status(database, mid, want, timeout=20):
    row = linbat.wait_for(lambda: database.one(
        "select status, channel_instance, provider_id, error_code from linbat.message where id = %s",
        (mid,)) if database.one("select status from linbat.message where id = %s", (mid,))[0] in want
        else None, timeout, interval=0.1)
    assert row, database.one("select status, error_kind, error_code, error_text from linbat.message "
                             "where id = %s", (mid,))
    return row


LONG = ("Yth. Bapak Budi, batas LKPM triwulan III adalah 15 Oktober 2025 pukul 23.59 WITA. "
        "Silakan masuk ke OSS, pilih menu LKPM, isi realisasi modal dan tenaga kerja, lalu kirim. "
        "Balas SUDAH bila sudah lapor. Terima kasih.")


def test_replies_reach_fakesmsc_exactly_and_dlrs_deliver_them(office):
    d, k, emu, database, token = office
    _, conv, instance, body = inject(k, database, "081234567890", "Selamat pagi, saya mau tanya LKPM")
    assert (instance, body) == ("sms1", "Selamat pagi, saya mau tanya LKPM")
    texts = ["Selamat pagi Pak Budi, silakan sebutkan NIB Anda (13 digit) & nama usaha: [PT/CV].",
             LONG, "Terima kasih \U0001F64F sudah lapor tepat waktu"]
    assert len(LONG) > 160
    mids = [reply(d, token, conv, t) for t in texts]
    for mid, text in zip(mids, texts):
        got = kn.wait_received(k, lambda m, t=text: m["text"] == t)
        assert got, "fakesmsc never got %r; it got %r" % (text, k.received())
        assert (got["from"], got["to"]) == (OFFICE, "+" + BUDI)
        assert wait_status(database, mid, ("delivered",))[:2] == ("delivered", "sms1")
        # a DLR may come before smsbox's answer is recorded: the provider id follows
        assert linbat.wait_for(lambda m=mid: database.one(
            "select provider_id from linbat.message where id = %s", (m,))[0] == str(m), 10, interval=0.1)
    got = {m["text"]: m["parts"] for m in k.received()}
    assert got == {texts[0]: 1, LONG: 2, texts[2]: 1}, "sent once each, the long one in two parts"
    # Both moments are recorded, in order, though a DLR may arrive before
    # smsbox's answer is recorded and Kannel's times are whole seconds:
    # message_status_apply keeps sent_at no later than delivered_at.
    assert database.one("select count(*) from linbat.message where id = any(%s) and sent_at is not null "
                        "and delivered_at >= sent_at", (mids,))[0] == 3
    with open(d.log_path, errors="replace") as f:
        assert k.password not in f.read()


def test_sms_lands_in_the_conversation_of_the_same_whatsapp_number(office):
    d, k, emu, database, token = office
    payload = wh.webhook(wh.value(messages=[wh.text(BUDI, "Halo, ini Budi di WhatsApp")],
                                  names={BUDI: "Budi Santoso"}))
    assert wh.post(d.url + "/webhooks/wa1", payload, WA_SECRET)[0] == 200
    (wa_conv,) = database.one("select conversation_id from linbat.message where channel_instance = 'wa1'")
    _, conv, instance, _ = inject(k, database, "+62-812-3456-7890", "Ini Budi lewat SMS, pulsa WA habis")
    assert (conv, instance) == (wa_conv, "sms1")
    assert database.q("select kind, address from linbat.identity order by kind") == [
        ("sms", "+" + BUDI), ("whatsapp", "+" + BUDI)]
    assert database.one("select count(distinct investor_id) from linbat.identity")[0] == 1
    # the reply goes back on the channel the investor used last: SMS
    mid = reply(d, token, conv, "Baik Pak, kami balas lewat SMS.")
    assert kn.wait_received(k, lambda m: m["text"] == "Baik Pak, kami balas lewat SMS.")
    assert wait_status(database, mid, ("delivered",))[1] == "sms1"


def test_whatsapp_131026_is_delivered_by_sms(office):
    d, k, emu, database, token = office
    inject(k, database, "081234567890", "Saya SMS dulu")
    payload = wh.webhook(wh.value(messages=[wh.text(BUDI, "lalu WhatsApp")]))
    assert wh.post(d.url + "/webhooks/wa1", payload, WA_SECRET)[0] == 200
    (conv,) = database.one("select distinct conversation_id from linbat.message")
    emu.control("POST", "faults", {"per_recipient": {BUDI: 131026}})
    text = "Jawaban kami: LKPM Anda sudah diterima."
    mid = reply(d, token, conv, text)
    assert kn.wait_received(k, lambda m: m["text"] == text), k.received()
    fallback = linbat.wait_for(lambda: database.q(
        "select id from linbat.message where fallback_of = %s and status = 'delivered'", (mid,)), 20, interval=0.1)
    assert fallback, database.q("select id, channel_instance, status, error_code, fallback_of from linbat.message")
    rows = database.q("select channel_instance, status, error_code, body from linbat.message "
                      "where conversation_id = %s and direction = 'out' order by id", (conv,))
    assert rows == [("wa1", "failed", "131026", text), ("sms1", "delivered", None, text)]


# Kannel's webhooks without the secret or from elsewhere --------------------------------

@pytest.fixture
def lone(start_linbatd, tmp_path, db):
    """linbatd with sms1 (allow_ip 127.0.0.1) and sms2 (allow_ip elsewhere), no Kannel needed."""
    k = kn.Kannel(str(tmp_path))
    d = start_linbatd(extra={"channel sms1": sms_section(k),
                             "channel sms2": sms_section(k, allow_ip="192.0.2.7, ::2")})
    database = Db(db)
    yield d, database
    database.conn.close()


def kannel_get(d, instance="sms1", path="", **query):
    q = dict({"from": "+6281234567890", "to": OFFICE, "text": "Halo", "id": "k-1", "ts": "1795882338"}, **query)
    q = {k: v for k, v in q.items() if v is not None}
    return d.get("/webhooks/%s%s?%s" % (instance, path, urllib.parse.urlencode(q)))


def test_kannel_webhook_without_secret_or_allowed_peer_is_401(lone):
    d, database = lone
    before = database.counts()
    cases = [("sms1", None), ("sms1", ""), ("sms1", SMS_SECRET + "x"), ("sms1", SMS_SECRET[:-1]),
             ("sms1", SMS_SECRET.upper()), ("sms2", SMS_SECRET)]
    for instance, secret in cases:
        r = kannel_get(d, instance, secret=secret)
        assert r.status == 401, (instance, secret, r)
        r = kannel_get(d, instance, "/dlr", secret=secret, id="1", type="1")
        assert r.status == 401, (instance, secret, r)
    assert database.counts() == before
    # the right secret from an allowed peer goes through: the refusals above are not a fluke
    assert kannel_get(d, "sms1", secret=SMS_SECRET).status == 200
    assert database.counts()[0] == before[0] + 1


def test_kannel_webhook_with_secret_stores_once_and_answers_empty(lone):
    d, database = lone
    before = database.counts()
    for _ in range(2):
        r = kannel_get(d, secret=SMS_SECRET, text="Halo pak, apa kabar?")
        assert (r.status, r.body) == (200, b""), r
    assert database.counts() == (before[0] + 1, before[1] + 1, before[2] + 1)
    assert database.one("select provider_id, body, received_at = to_timestamp(1795882338) from linbat.message "
                        "where direction = 'in'") == (
        "k-1", "Halo pak, apa kabar?", True)
    # without Kannel's id the message is keyed on a hash of sender, time and text: still once
    for _ in range(2):
        assert kannel_get(d, secret=SMS_SECRET, id=None, text="tanpa id").status == 200
    assert database.one("select count(*) from linbat.message where body = 'tanpa id'")[0] == 1
    assert kannel_get(d, secret=SMS_SECRET, id="k-2", **{"from": "TELKOMSEL"}).status == 400


SEED_SENT = """
with inv as (
    insert into linbat.investor (display_name) select 'DLR ' || g from generate_series(1, %(n)s) g returning id
), ident as (
    insert into linbat.identity (investor_id, kind, address)
    select id, 'sms', '+62819' || lpad(id::text, 8, '0') from inv returning id, investor_id
), conv as (
    insert into linbat.conversation (investor_id) select id from inv returning id, investor_id
)
insert into linbat.message (conversation_id, direction, identity_id, channel_instance, body, status, sent_at)
select conv.id, 'out', ident.id, 'sms1', 'Pengingat LKPM', 'sent', now()
from conv join ident using (investor_id)
returning id
"""


def test_kannel_dlrs_go_in_batches_and_a_refused_batch_fails_only_its_bad_row(start_linbatd, tmp_path, db):
    """DLRs that come while earlier ones are in the database go in one statement
    (channels/statuses.c). Rows A and B are held by a transaction here, so their
    DLRs keep both batch slots busy; C, D and E then wait and go together. D's
    update is refused by a trigger (a data error): the batch is tried row by row,
    so C and E are recorded, D is rejected, and every DLR is answered 200."""
    k = kn.Kannel(str(tmp_path))
    d = start_linbatd(extra={"daemon": {"log_level": "debug"}, "channel sms1": sms_section(k)})
    database = Db(db)
    ids = sorted(r[0] for r in database.q(SEED_SENT, {"n": 5}))
    a, b, c, bad, e = ids
    database.q("create function public.test_refuse_row() returns trigger language plpgsql as $$ "
               "begin raise exception using errcode = '22023', message = 'refused by the test'; end $$")
    database.q("create trigger test_refuse_row before update on linbat.message for each row "
               "when (new.id = %d and new.status = 'delivered') execute function public.test_refuse_row()" % bad)
    holder = psycopg2.connect(db)
    with holder.cursor() as cur:
        cur.execute("select 1 from linbat.message where id in (%s, %s) for update", (a, b))
    answers = {}

    def dlr(mid):
        q = urllib.parse.urlencode({"secret": SMS_SECRET, "id": mid, "type": 1})
        answers[mid] = d.get("/webhooks/sms1/dlr?" + q, timeout=60)

    def waiting():
        return database.one("select count(*) from pg_stat_activity where wait_event_type = 'Lock' "
                            "and query like '%status_update_by_id%'")[0]

    def received(mids):
        with open(d.log_path) as f:
            log = f.read()
        return all("DLR received. channel=sms1 id=%d type=1" % mid in log for mid in mids)

    threads = []
    for mid, blocked in ((a, 1), (b, 2)):
        threads.append(threading.Thread(target=dlr, args=(mid,)))
        threads[-1].start()
        assert linbat.wait_for(lambda: waiting() >= blocked, 20), "the DLR of %d never waited for its row" % mid
    for mid in (c, bad, e):
        threads.append(threading.Thread(target=dlr, args=(mid,)))
        threads[-1].start()
    # all three are in linbatd, queued behind the two batches that wait
    assert linbat.wait_for(lambda: received((c, bad, e)), 20), d.log_tail()
    assert waiting() == 2 and not answers
    holder.commit()
    holder.close()
    for t in threads:
        t.join(60)
    assert {mid: (r.status, r.body) for mid, r in answers.items()} == {mid: (200, b"") for mid in ids}
    assert dict(database.q("select id, status from linbat.message where id = any(%s)", (ids,))) == {
        a: "delivered", b: "delivered", c: "delivered", bad: "sent", e: "delivered"}
    with open(d.log_path) as f:
        rejected = [ln for ln in f if "Rejected what a webhook carried" in ln]
    assert len(rejected) == 1 and "refused by the test" in rejected[0], rejected
    database.conn.close()


def test_kannel_post_url_takes_the_text_from_the_body(lone):
    d, database = lone
    q = urllib.parse.urlencode({"secret": SMS_SECRET, "id": "k-post"})
    r = d.request("POST", "/webhooks/sms1?" + q, body="Teks lewat post-url".encode(),
                  headers={"Content-Type": "text/plain", "X-Kannel-From": "0812-3456-7890"})
    assert (r.status, r.body) == (200, b""), r
    assert database.one("select i.address, m.body from linbat.message m join linbat.identity i "
                        "on i.id = m.identity_id where m.provider_id = 'k-post'") == (
        "+6281234567890", "Teks lewat post-url")


# Twilio ----------------------------------------------------------------------------------

TW_SID = "AC" + "0123456789abcdef" * 2
TW_TOKEN = "tw1-auth-token-5e21"
TW_HOOK = "https://linbat.dpmptsp.example.go.id/webhooks/tw1?k=1"


def twilio_sign(url, params, token=TW_TOKEN):
    """X-Twilio-Signature as Twilio computes it (written here, apart from the daemon's)."""
    data = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


TW_MEDIA_MAX = 64 * 1024
TW_PHOTO = bytes(range(256)) * 40           # 10 KiB, under media_max
TW_PDF = b"%PDF-1.4\n" + b"\x00\xff" * 1000
TW_MEDIA = "/2010-04-01/Accounts/%s/Messages/MM%s/Media/" % (TW_SID, "b" * 32)


class TwilioApi(http.server.BaseHTTPRequestHandler):
    """POST /2010-04-01/Accounts/{Sid}/Messages.json as Twilio answers it: 201 and
    the message resource, or 401 with Twilio's error shape. GET of MMS media
    (TW_MEDIA + name) with Basic auth: the bytes, a redirect (name "to-X":
    to X on this host; "away-X": to /cdn/X on the CDN in self.server.away;
    "scheme-S": to /cdn/ME1 on that CDN's host and port with scheme S, or
    "scheme-file": to file:///etc/passwd), or
    one byte more than media_max ("big")."""

    def do_GET(self):
        self.server.gets.append((self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != "Basic " + base64.b64encode(
                ("%s:%s" % (TW_SID, TW_TOKEN)).encode()).decode():
            self.answer(401, {"code": 20003, "message": "Authenticate", "status": 401})
            return
        name = self.path[len(TW_MEDIA):] if self.path.startswith(TW_MEDIA) else None
        if name is not None and name.startswith("to-"):
            self.redirect(TW_MEDIA + name[3:])
        elif name is not None and name.startswith("away-"):
            self.redirect(self.server.away + "/cdn/" + name[5:])
        elif name is not None and name.startswith("scheme-"):
            scheme = name[7:]
            self.redirect("file:///etc/passwd" if scheme == "file" else
                          scheme + self.server.away[len("http"):] + "/cdn/ME1")
        elif name in ("ME1", "ME2", "big"):
            body, ctype = {"ME1": (TW_PHOTO, "image/jpeg"), "ME2": (TW_PDF, "application/pdf"),
                           "big": (b"x" * (TW_MEDIA_MAX + 1), "image/png")}[name]
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.answer(404, {"code": 20404, "message": "not found", "status": 404})

    def redirect(self, location):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        form = urllib.parse.parse_qs(self.rfile.read(n).decode(), keep_blank_values=True)
        want = "Basic " + base64.b64encode(("%s:%s" % (TW_SID, TW_TOKEN)).encode()).decode()
        if self.path != "/2010-04-01/Accounts/%s/Messages.json" % TW_SID or self.headers.get("Authorization") != want:
            self.answer(401, {"code": 20003, "message": "Authenticate", "more_info":
                              "https://www.twilio.com/docs/errors/20003", "status": 401})
            return
        sid = "SM%032x" % (len(self.server.sent) + 1)
        self.server.sent.append(dict((k, v[0]) for k, v in form.items()))
        self.answer(201, {"sid": sid, "account_sid": TW_SID, "status": "queued", "to": form["To"][0],
                          "from": form["From"][0], "body": form["Body"][0], "num_segments": "1",
                          "direction": "outbound-api", "error_code": None, "error_message": None,
                          "uri": "/2010-04-01/Accounts/%s/Messages/%s.json" % (TW_SID, sid)})

    def answer(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class TwilioCdn(http.server.BaseHTTPRequestHandler):
    """Where Twilio's media URLs redirect to: another origin that wants no
    credentials. GET /cdn/ME1 is the photo, /cdn/to-X redirects to /cdn/X,
    /cdn/loop redirects to itself; every GET is recorded with its
    Authorization header."""

    def do_GET(self):
        self.server.gets.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/cdn/to-"):
            TwilioApi.redirect(self, "/cdn/" + self.path[len("/cdn/to-"):])
        elif self.path == "/cdn/loop":
            TwilioApi.redirect(self, "/cdn/loop")
        elif self.path in ("/cdn/ME1", "/cdn/ME2"):
            body, ctype = (TW_PHOTO, "image/jpeg") if self.path == "/cdn/ME1" else (TW_PDF, "application/pdf")
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            TwilioApi.answer(self, 404, {"code": 20404, "message": "not found", "status": 404})

    def log_message(self, *args):
        pass


def serve(handler):
    """An http.server on a free loopback port, in a thread, recording GETs in .gets."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.sent, server.gets = [], []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def tw(start_linbatd, db):
    api = serve(TwilioApi)
    # Another origin than api_base's (another port): the CDN media redirects to. Credentials never go there.
    api.other = serve(TwilioCdn)
    api.away = "http://127.0.0.1:%d" % api.other.server_address[1]
    d = start_linbatd(extra={"dispatch": DISPATCH, "channel tw1": {
        "type": "sms-twilio", "api_base": "http://127.0.0.1:%d" % api.server_address[1], "account_sid": TW_SID,
        "auth_token": TW_TOKEN, "from": OFFICE, "webhook_url": TW_HOOK, "media_max": "64k"}})
    add_operator(db, "tono@dpmptsp.example.go.id")
    database = Db(db)
    yield d, api, database
    database.conn.close()
    for server in (api, api.other):
        server.shutdown()
        server.server_close()


def tw_post(d, params, signature=None, sign_params=None):
    """POST a form webhook to tw1 signed over sign_params (default: params)."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    sig = signature if signature is not None else twilio_sign(TW_HOOK, sign_params or params)
    if sig is not False:
        headers["X-Twilio-Signature"] = sig
    return d.request("POST", "/webhooks/tw1", body=urllib.parse.urlencode(params).encode(), headers=headers)


def tw_inbound(sid="SM" + "a" * 32, body="Halo dari Twilio & kawan-kawan +62"):
    return [("MessageSid", sid), ("SmsSid", sid), ("AccountSid", TW_SID), ("From", "+" + BUDI), ("To", OFFICE),
            ("Body", body), ("NumMedia", "0"), ("SmsStatus", "received"), ("ApiVersion", "2010-04-01")]


def test_twilio_inbound_is_stored_and_answered_with_empty_twiml(tw):
    d, api, database = tw
    r = tw_post(d, tw_inbound())
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/xml")
    assert r.body == b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    assert database.one("select i.address, m.body, m.provider_id from linbat.message m join linbat.identity i "
                        "on i.id = m.identity_id") == ("+" + BUDI, "Halo dari Twilio & kawan-kawan +62", "SM" + "a" * 32)


def test_twilio_bad_signature_is_403_and_nothing_stored(tw):
    d, api, database = tw
    params = tw_inbound()
    changed = [(k, v + "!" if k == "Body" else v) for k, v in params]
    before = database.counts()
    attempts = {
        "one parameter changed": tw_post(d, changed, sign_params=params),
        "one parameter added": tw_post(d, params + [("Extra", "1")], sign_params=params),
        "no signature": tw_post(d, params, signature=False),
        "empty signature": tw_post(d, params, signature=""),
        "another token": tw_post(d, params, signature=twilio_sign(TW_HOOK, params, token=TW_TOKEN + "x")),
        "another URL": tw_post(d, params, signature=twilio_sign(TW_HOOK.replace("k=1", "k=2"), params)),
    }
    for how, r in attempts.items():
        assert r.status == 403, (how, r)
    assert database.counts() == before
    # the same request, rightly signed, goes through: the refusals above are not a fluke
    assert tw_post(d, params).status == 200
    assert database.counts()[0] == before[0] + 1


def test_twilio_send_and_status_callbacks(tw):
    d, api, database = tw
    assert tw_post(d, tw_inbound()).status == 200
    (conv,) = database.one("select conversation_id from linbat.message")
    ok, bad = [database.one("select linbat.enqueue_reply(%s, %s, null)", (conv, t))[0]
               for t in ("Balasan pertama", "Balasan kedua")]
    sids = {}
    for mid in (ok, bad):
        sids[mid] = wait_status(database, mid, ("sent",))[2]
    assert sorted(api.sent, key=lambda s: s["Body"]) == [
        {"To": "+" + BUDI, "From": OFFICE, "Body": b, "StatusCallback": TW_HOOK}
        for b in ("Balasan kedua", "Balasan pertama")]
    for mid, st, code in ((ok, "delivered", None), (bad, "undelivered", "30003")):
        params = [("MessageSid", sids[mid]), ("SmsSid", sids[mid]), ("AccountSid", TW_SID),
                  ("MessageStatus", st), ("SmsStatus", st), ("To", "+" + BUDI), ("From", OFFICE)]
        if code:
            params.append(("ErrorCode", code))
        r = tw_post(d, params)
        assert (r.status, r.body) == (200, b""), r
    assert wait_status(database, ok, ("delivered",))[0] == "delivered"
    assert wait_status(database, bad, ("failed",))[3] == "30003"


def test_twilio_mms_media_is_fetched_with_basic_auth_from_api_base_only(tw):
    """NumMedia/MediaUrlN/MediaContentTypeN: each media is fetched with the
    account's Basic auth and stored with its SHA-256 and type; a redirect on
    api_base's host is followed; a media URL in the webhook on any other host
    is never requested (the credentials would go with it) and a media over
    media_max is not stored: both are recorded as failed, the message stays."""
    d, api, database = tw
    base = "http://127.0.0.1:%d" % api.server_address[1]
    media = [(base + TW_MEDIA + "ME1", "image/jpeg"), (base + TW_MEDIA + "to-ME2", "application/pdf"),
             (api.away + TW_MEDIA + "ME1", "image/jpeg"), (api.away + "/cdn/ME1", "image/jpeg"),
             (base + TW_MEDIA + "big", "image/png")]
    params = [(k, v) for k, v in tw_inbound(sid="MM" + "b" * 32, body="Foto papan nama") if k != "NumMedia"]
    params.append(("NumMedia", str(len(media))))
    for i, (url, ctype) in enumerate(media):
        params += [("MediaUrl%d" % i, url), ("MediaContentType%d" % i, ctype)]
    r = tw_post(d, params)
    assert r.status == 200, r
    (mid, ctype, body) = database.one("select id, content_type, body from linbat.message where direction = 'in'")
    assert (ctype, body) == ("image", "Foto papan nama")
    assert linbat.wait_for(lambda: database.one(
        "select count(*) from linbat.attachment where message_id = %s and status <> 'pending'", (mid,))[0] == 5,
        30, interval=0.1), database.q("select provider_media_id, status, error from linbat.attachment")
    rows = {url: [bytes(v) if isinstance(v, memoryview) else v for v in rest] for url, *rest in database.q(
        "select provider_media_id, status, mime_type, size, sha256, data, error from linbat.attachment "
        "where message_id = %s", (mid,))}
    for url, data, mime in ((media[0][0], TW_PHOTO, "image/jpeg"), (media[1][0], TW_PDF, "application/pdf")):
        assert rows[url][:5] == ["stored", mime, len(data), hashlib.sha256(data).hexdigest(), data], url
    for i in (2, 3):
        status, error = rows[media[i][0]][0], rows[media[i][0]][5]
        assert status == "failed" and "not on api_base's host" in error, (i, status, error)
    assert rows[media[4][0]][0] == "failed" and "media_max" in rows[media[4][0]][5], rows[media[4][0]]
    assert api.other.gets == [], "a host other than api_base's was asked for media"
    basic = "Basic " + base64.b64encode(("%s:%s" % (TW_SID, TW_TOKEN)).encode()).decode()
    assert sorted(p for p, _ in api.gets) == sorted(TW_MEDIA + n for n in ("ME1", "to-ME2", "ME2", "big"))
    assert {a for _, a in api.gets} == {basic}
    with open(d.log_path, errors="replace") as f:
        assert TW_TOKEN not in f.read()


def test_twilio_mms_media_redirect_to_cdn_is_followed_without_credentials(tw):
    """Twilio answers a media URL with a redirect to its CDN on another host:
    up to 3 redirects are followed to another origin of api_base's scheme,
    without the account's credentials, and the bytes are stored with their
    SHA-256 and type. A redirect to another scheme (file:, ftp:, https: when
    api_base is http:) or one redirect too many is refused and recorded as
    failed; the message stays."""
    d, api, database = tw
    base = "http://127.0.0.1:%d" % api.server_address[1]
    media = [(base + TW_MEDIA + "away-ME1", "image/jpeg"), (base + TW_MEDIA + "away-to-ME2", ""),
             (base + TW_MEDIA + "scheme-file", "image/jpeg"), (base + TW_MEDIA + "scheme-ftp", "image/jpeg"),
             (base + TW_MEDIA + "scheme-https", "image/jpeg"), (base + TW_MEDIA + "away-loop", "image/jpeg")]
    params = [(k, v) for k, v in tw_inbound(sid="MM" + "b" * 32, body="Foto dari CDN") if k != "NumMedia"]
    params.append(("NumMedia", str(len(media))))
    for i, (url, ctype) in enumerate(media):
        params += [("MediaUrl%d" % i, url)] + ([("MediaContentType%d" % i, ctype)] if ctype else [])
    r = tw_post(d, params)
    assert r.status == 200, r
    (mid, body) = database.one("select id, body from linbat.message where direction = 'in'")
    assert body == "Foto dari CDN"
    assert linbat.wait_for(lambda: database.one(
        "select count(*) from linbat.attachment where message_id = %s and status <> 'pending'", (mid,))[0] == 6,
        30, interval=0.1), database.q("select provider_media_id, status, error from linbat.attachment")
    rows = {url: [bytes(v) if isinstance(v, memoryview) else v for v in rest] for url, *rest in database.q(
        "select provider_media_id, status, mime_type, size, sha256, data, error from linbat.attachment "
        "where message_id = %s", (mid,))}
    for url, data, mime in ((media[0][0], TW_PHOTO, "image/jpeg"), (media[1][0], TW_PDF, "application/pdf")):
        assert rows[url][:5] == ["stored", mime, len(data), hashlib.sha256(data).hexdigest(), data], (url, rows[url])
    for i in (2, 3, 4):
        status, error = rows[media[i][0]][0], rows[media[i][0]][5]
        assert status == "failed" and "scheme" in error, (i, status, error)
    status, error = rows[media[5][0]][0], rows[media[5][0]][5]
    assert status == "failed" and "more than 3" in error, (status, error)
    # The CDN saw the followed redirects only, and never the account's credentials.
    assert sorted(p for p, _ in api.other.gets) == sorted(["/cdn/ME1", "/cdn/to-ME2", "/cdn/ME2"] + ["/cdn/loop"] * 3)
    assert [a for _, a in api.other.gets if a is not None] == [], "credentials went to the CDN"
    basic = "Basic " + base64.b64encode(("%s:%s" % (TW_SID, TW_TOKEN)).encode()).decode()
    assert {a for _, a in api.gets} == {basic}
    with open(d.log_path, errors="replace") as f:
        assert TW_TOKEN not in f.read()


def test_fakesmsc_reader_joins_parts_and_decodes_ucs2():
    """The reader every Kannel check relies on, on lines fakesmsc printed: a
    concatenated pair is one message, UCS-2 is decoded, a lone part is not a message."""
    lines = [
        "2026-11-28 16:12:06 [1] [0] DEBUG: Got message 1: <1234 +6281234567890 ucs-2 "
        "%00T%00e%00r%00i%00m%00a%00+%00k%00a%00s%00i%00h%00+%D8%3D%DEO>\n",
        "2026-11-28 16:12:16 [1] [0] DEBUG: Got message 2: <1234 +6281234567890 udh %05%00%03%04%02%01 "
        "data Yth.+Bapak%2FIbu%2C+batas+LKPM+%26+>\n",
        "2026-11-28 16:12:16 [1] [0] DEBUG: Got message 3: <1234 +6281234567890 udh %05%00%03%04%02%02 "
        "data laporan%3A+15+Oktober.>\n",
        "2026-11-28 16:12:17 [1] [0] DEBUG: Got message 4: <1234 +6281234567890 udh %05%00%03%05%02%01 "
        "data separuh>\n",
        "2026-11-28 16:12:18 [1] [0] DEBUG: Got message 5: <1234 +6281234567890 text Halo [ok] & 100%>\n",
    ]
    assert kn.join_parts(lines) == [
        {"from": "1234", "to": "+6281234567890", "text": "Terima kasih \U0001F64F", "parts": 1},
        {"from": "1234", "to": "+6281234567890", "text": "Yth. Bapak/Ibu, batas LKPM & laporan: 15 Oktober.",
         "parts": 2},
        {"from": "1234", "to": "+6281234567890", "text": "Halo [ok] & 100%", "parts": 1},
    ]
