"""Tests of wa-emu, the WhatsApp Cloud API emulator, and of wa_webhook.py.

Run with Debian's interpreter (pytest comes from apt):
    top_builddir=BUILD /usr/bin/python3 -m pytest tests/emulators/test_wa_emu.py
The binary is $WA_EMU, else $top_builddir/tests/emulators/wa-emu, else
./tests/emulators/wa-emu; $WA_EMU_ARGS adds options to every emulator started
(e.g. "--threads 2" runs the whole suite threaded). Each emulator runs on a
free loopback port; a small threaded HTTP server plays linbatd to receive the
webhooks it posts.
"""

import hashlib
import http.client
import http.server
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wa_webhook  # noqa: E402

TOKEN = "EAAtest-token"
SECRET = "app-secret-for-tests"
PNID = "106540352242922"
WA = "6281234567890"


def emu_binary():
    """The wa-emu binary under test."""
    if os.environ.get("WA_EMU"):
        return os.environ["WA_EMU"]
    top = os.environ.get("top_builddir", ".")
    return os.path.join(top, "tests", "emulators", "wa-emu")


class Receiver:
    """A loopback HTTP server that plays linbatd and keeps what it gets."""

    def __init__(self):
        self.got = queue.Queue()
        self.answer = 200
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                outer.got.put((self.path, dict(self.headers), body))
                reply = b'{"ok":true}'
                self.send_response(outer.answer)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/webhooks/wa1" % self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def drain(self):
        """Forget everything received so far."""
        while not self.got.empty():
            self.got.get_nowait()

    def take(self, n, timeout=5.0, match=None):
        """The next n posts (path, headers, body) for which match is true."""
        out, deadline = [], time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            assert left > 0, "got %d of %d webhooks" % (len(out), n)
            try:
                item = self.got.get(timeout=left)
            except queue.Empty:
                continue
            if match is None or match(item):
                out.append(item)
        return out

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Emu:
    """A running wa-emu process and a small client for it."""

    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="wa-emu-test.")
        self.record = os.path.join(self.dir, "record.jsonl")
        port_file = os.path.join(self.dir, "port")
        binary = emu_binary()
        if not os.access(binary, os.X_OK):
            pytest.fail("wa-emu binary not found at %s (build it, or set "
                        "top_builddir or WA_EMU)" % binary)
        self.log = os.path.join(self.dir, "stderr.log")
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                [binary, "--listen", "127.0.0.1:0", "--token", TOKEN,
                 "--record", self.record, "--port-file", port_file] +
                list(extra) + os.environ.get("WA_EMU_ARGS", "").split(),
                stdout=subprocess.PIPE, stderr=err, text=True)
        line = self.proc.stdout.readline()
        m = re.fullmatch(r"listening (\d+)\n", line)
        assert m, "unexpected first line %r; stderr: %s" % (line, self.stderr())
        self.port = int(m.group(1))
        with open(port_file) as f:
            assert int(f.read()) == self.port

    def call(self, method, path, body=None, token=TOKEN, headers=None):
        """One request; returns (status, headers, parsed JSON or bytes)."""
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            data = resp.read()
            rh = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        if rh.get("content-type", "").startswith("application/json"):
            data = json.loads(data)
        return resp.status, rh, data

    def send(self, msg, version="v21.0", pnid=PNID, token=TOKEN):
        """POST /{version}/{pnid}/messages."""
        return self.call("POST", "/%s/%s/messages" % (version, pnid), msg,
                         token=token)

    def control(self, method, what, body=None):
        """A control API call under /_emu/ (no token)."""
        status, _, data = self.call(method, "/_emu/" + what, body, token=None)
        return status, data

    def records(self):
        with open(self.record) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stop(self):
        """SIGTERM; the emulator must exit 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        self.proc.stdout.close()
        assert rc == 0, "wa-emu exited %d; stderr: %s" % (rc, self.stderr())
        return rc

    def stderr(self):
        with open(self.log) as f:
            return f.read()


def text_msg(to=WA, body="Halo, batas LKPM triwulan III tanggal 10.", **extra):
    msg = {"messaging_product": "whatsapp", "recipient_type": "individual",
           "to": to, "type": "text", "text": {"body": body}}
    msg.update(extra)
    return msg


def template_msg(to=WA, name="lkpm_reminder", code="id", **extra):
    msg = {"messaging_product": "whatsapp", "to": to, "type": "template",
           "template": {"name": name, "language": {"code": code},
                        "components": [{"type": "body", "parameters": [
                            {"type": "text", "text": "PT Maju"}]}]}}
    msg.update(extra)
    return msg


def check_error_shape(body, code):
    """Meta's Graph API error: {"error": {message, type, code, ..., fbtrace_id}}."""
    assert set(body) == {"error"}
    err = body["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert err["type"] == "OAuthException"
    assert err["code"] == code
    assert re.fullmatch(r"[A-Za-z0-9_-]{10,}", err["fbtrace_id"])
    assert set(err) <= {"message", "type", "code", "error_data",
                        "error_subcode", "fbtrace_id"}
    if "error_data" in err:
        assert err["error_data"]["messaging_product"] == "whatsapp"
        assert isinstance(err["error_data"]["details"], str)


def check_success_shape(body, to):
    """Meta's send success: messaging_product, contacts[input,wa_id], messages[id]."""
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": to,
                                 "wa_id": re.sub(r"\D", "", to)}]
    assert len(body["messages"]) == 1
    assert re.fullmatch(r"wamid\.[A-Za-z0-9+/=]{16,}", body["messages"][0]["id"])


@pytest.fixture(scope="module")
def emu():
    e = Emu("--status-delay-ms", "-1")
    yield e
    assert e.stop() == 0


@pytest.fixture(autouse=True)
def _reset(request):
    """Every test starts without faults and with zero counts."""
    for name in ("emu", "hook_emu"):
        if name in request.fixturenames:
            assert request.getfixturevalue(name).control(
                "POST", "reset")[0] == 200


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def hook_emu(receiver):
    e = Emu("--webhook", receiver.url, "--app-secret", SECRET,
            "--status-delay-ms", "20")
    yield e
    assert e.stop() == 0


def test_send_text_success_shape_and_record(emu):
    status, headers, body = emu.send(text_msg(to="+6281234567890",
                                              biz_opaque_callback_data="m:42"))
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    check_success_shape(body, "+6281234567890")
    assert set(body) == {"messaging_product", "contacts", "messages"}
    assert set(body["messages"][0]) == {"id"}
    wamid = body["messages"][0]["id"]
    deadline = time.monotonic() + 2
    while not emu.records() and time.monotonic() < deadline:
        time.sleep(0.02)
    rec = emu.records()
    assert len(rec) == 1
    assert rec[0]["wamid"] == wamid and rec[0]["to"] == "+6281234567890"
    assert rec[0]["type"] == "text" and rec[0]["auth"] == "ok"
    assert rec[0]["body"].startswith("Halo")
    assert rec[0]["biz_opaque_callback_data"] == "m:42"
    assert abs(rec[0]["received_at_ms"] / 1000 - time.time()) < 60


def test_send_template_success(emu):
    status, _, body = emu.send(template_msg())
    assert status == 200
    check_success_shape(body, WA)
    assert body["messages"][0]["message_status"] == "accepted"


def test_type_defaults_to_text(emu):
    msg = text_msg()
    del msg["type"]
    assert emu.send(msg)[0] == 200


def test_wamids_are_unique(emu):
    ids = {emu.send(text_msg())[2]["messages"][0]["id"] for _ in range(200)}
    assert len(ids) == 200


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_auth_failure_is_190(emu, token):
    headers = {} if token is None else {"Authorization": "Bearer " + token}
    status, rh, body = emu.call("POST", "/v21.0/%s/messages" % PNID,
                                json.dumps(text_msg()).encode(),
                                token=None, headers=headers)
    assert status == 401
    assert "www-authenticate" in rh
    check_error_shape(body, 190)
    assert "error_data" not in body["error"]


@pytest.mark.parametrize("msg,needle", [
    ({"to": WA, "type": "text", "text": {"body": "x"}}, "messaging_product"),
    (dict(text_msg(), messaging_product="sms"), "messaging_product"),
    ({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}},
     "parameter to"),
    (text_msg(to="not a number"), "phone number"),
    ({"messaging_product": "whatsapp", "to": WA, "type": "text"}, "text"),
    ({"messaging_product": "whatsapp", "to": WA, "type": "text", "text": {}},
     "text['body']"),
    (text_msg(body="x" * 4097), "4096"),
    ({"messaging_product": "whatsapp", "to": WA, "type": "template",
      "template": {"language": {"code": "id"}}}, "template['name']"),
    ({"messaging_product": "whatsapp", "to": WA, "type": "template",
      "template": {"name": "x"}}, "template['language']['code']"),
    ({"messaging_product": "whatsapp", "to": WA, "type": "fax", "fax": {}},
     "type"),
    (text_msg(biz_opaque_callback_data=7), "biz_opaque_callback_data"),
    ([1, 2], "JSON object"),
])
def test_validation_failure_is_100(emu, msg, needle):
    status, _, body = emu.send(msg)
    assert status == 400
    check_error_shape(body, 100)
    err = body["error"]
    assert needle in err["message"] + err.get("error_data", {}).get("details", "")


def test_malformed_json_is_100(emu):
    status, _, body = emu.call("POST", "/v21.0/%s/messages" % PNID,
                               b'{"messaging_product": "whats')
    assert status == 400
    check_error_shape(body, 100)


def test_unknown_path_is_graph_error(emu):
    status, _, body = emu.call("POST", "/v21.0/%s/nothing" % PNID, {})
    assert status == 400
    check_error_shape(body, 2500)


def test_fault_rate_and_kinds(emu):
    assert emu.control("POST", "faults", {"fail_rate": 0.3,
                                          "fail_kinds": ["5xx", "429"],
                                          "retry_after": 1})[0] == 200
    seen = {}
    n = 600
    for _ in range(n):
        status, rh, body = emu.send(text_msg())
        seen.setdefault(status, []).append((rh, body))
    failed = n - len(seen.get(200, []))
    assert 0.22 * n <= failed <= 0.38 * n, failed
    assert set(seen) <= {200, 500, 503, 429}
    assert {500, 503, 429} <= set(seen)
    for rh, body in seen[500]:
        check_error_shape(body, 1)
        assert body["error"]["message"] == "An unknown error occurred"
    for rh, body in seen[503]:
        check_error_shape(body, 2)
    for rh, body in seen[429]:
        check_error_shape(body, 130429)
        assert rh["retry-after"] == "1"
        assert body["error"]["error_data"]["details"]
    _, stats = emu.control("GET", "stats")
    assert stats["received"] == n and stats["failed"] == failed
    assert stats["accepted"] == n - failed
    assert stats["by_code"] == {str(c): len(seen[s]) for s, c in
                                ((500, 1), (503, 2), (429, 130429))}


def test_per_recipient_errors(emu):
    undeliverable, window, pair, token = ("6281100000001", "6281100000002",
                                          "6281100000003", "6281100000004")
    assert emu.control("POST", "faults", {"per_recipient": {
        undeliverable: 131026, window: 131047, pair: 131056,
        token: 190}})[0] == 200
    for msg in (text_msg(to=undeliverable), template_msg(to=undeliverable)):
        status, _, body = emu.send(msg)
        assert status == 400
        check_error_shape(body, 131026)
    status, _, body = emu.send(text_msg(to=window))
    assert status == 400
    check_error_shape(body, 131047)
    assert "24 hours" in body["error"]["error_data"]["details"]
    status, _, body = emu.send(template_msg(to=window))
    assert status == 200, "a template must pass a closed window"
    status, _, body = emu.send(text_msg(to=pair))
    assert status == 400
    check_error_shape(body, 131056)
    status, _, body = emu.send(text_msg(to=token))
    assert status == 401
    check_error_shape(body, 190)
    assert emu.send(text_msg(to="6281199999999"))[0] == 200
    _, stats = emu.control("GET", "stats")
    assert stats["by_code"] == {"131026": 2, "131047": 1, "131056": 1,
                                "190": 1}


def test_delay_uses_a_timer_not_sleep(emu):
    assert emu.control("POST", "faults", {"delay_ms": 300})[0] == 200
    t0 = time.monotonic()
    assert emu.send(text_msg())[0] == 200
    assert time.monotonic() - t0 >= 0.29
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        emu.send(text_msg())[0])) for _ in range(10)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 10
    # Ten delayed answers overlap: a blocking sleep would take 3 s.
    assert time.monotonic() - t0 < 1.5


def test_reset_and_timeout_faults(emu):
    """reset: the connection drops with no answer and nothing is accepted;
    timeout: the send is accepted and recorded, but answered only after
    hold_ms, so a client with a shorter timeout gives up on a send Meta took."""
    assert emu.control("POST", "faults", {"fail_rate": 1, "fail_kinds": ["reset"]})[0] == 200
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        emu.send(text_msg())
    assert emu.control("POST", "faults", {"fail_rate": 1, "fail_kinds": ["timeout"],
                                          "hold_ms": 400})[0] == 200
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=0.1)
    conn.request("POST", "/v21.0/%s/messages" % PNID, body=json.dumps(text_msg()).encode(),
                 headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
    with pytest.raises(TimeoutError):
        conn.getresponse()
    conn.close()
    t0 = time.monotonic()
    status, _, body = emu.send(text_msg())
    assert status == 200 and body["messages"][0]["id"].startswith("wamid.")
    assert time.monotonic() - t0 >= 0.39
    time.sleep(0.5)  # the first held answer goes to a closed connection
    _, stats = emu.control("GET", "stats")
    assert (stats["received"], stats["accepted"], stats["failed"]) == (3, 2, 1)
    assert (stats["resets"], stats["timeouts"], stats["by_code"]) == (1, 2, {})
    assert emu.control("GET", "faults")[1]["fail_kinds"] == ["timeout"]
    time.sleep(0.2)
    assert len(emu.records()) == 2


def test_faults_reject_unknown_keys_and_bad_values(emu):
    for bad in ({"fail_rat": 0.1}, {"fail_rate": 2}, {"fail_kinds": ["teapot"]},
                {"per_recipient": {"628": "x"}}, {"delay_ms": -1}, {"hold_ms": 600001}, [1]):
        status, body = emu.control("POST", "faults", bad)
        assert status == 400 and body["error"], bad
    _, faults = emu.control("GET", "faults")
    assert faults["fail_rate"] == 0 and faults["per_recipient"] == {}


def test_stats_and_reset(emu):
    emu.send(text_msg())
    emu.send(text_msg(), token="bad")
    emu.send({"messaging_product": "whatsapp"})
    _, stats = emu.control("GET", "stats")
    assert (stats["received"], stats["accepted"], stats["failed"]) == (3, 1, 2)
    assert stats["by_code"] == {"190": 1, "100": 1}
    time.sleep(0.25)
    assert len(emu.records()) == 1
    assert emu.control("POST", "faults", {"fail_rate": 1})[0] == 200
    assert emu.control("POST", "reset")[0] == 200
    _, stats = emu.control("GET", "stats")
    assert (stats["received"], stats["accepted"], stats["failed"]) == (0, 0, 0)
    assert stats["by_code"] == {}
    assert emu.records() == []
    assert emu.send(text_msg())[0] == 200, "reset must clear faults"


def test_media_two_step(emu):
    data = bytes(range(256)) * 40
    status, _, made = emu.call("POST", "/_emu/media", data, token=None,
                               headers={"Content-Type": "application/pdf"})
    assert status == 200
    mid = made["id"]
    assert mid.isdigit()
    status, _, meta = emu.call("GET", "/v21.0/" + mid)
    assert status == 200
    assert set(meta) == {"messaging_product", "url", "mime_type", "sha256",
                         "file_size", "id"}
    assert meta["messaging_product"] == "whatsapp" and meta["id"] == mid
    assert meta["mime_type"] == "application/pdf"
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()
    assert meta["file_size"] == len(data)
    url = urllib.parse.urlsplit(meta["url"])
    assert url.hostname == "127.0.0.1" and url.port == emu.port
    path = url.path + "?" + url.query
    status, rh, got = emu.call("GET", path)
    assert status == 200 and got == data
    assert rh["content-type"] == "application/pdf"
    assert emu.call("GET", path, token=None)[0] == 401
    assert emu.call("GET", "/v21.0/" + mid, token="bad")[0] == 401
    tampered = re.sub(r"sig=[0-9a-f]", "sig=x", path)
    assert emu.call("GET", tampered)[0] == 404
    status, _, body = emu.call("GET", "/v21.0/999999999999")
    assert status == 400
    check_error_shape(body, 100)


def test_status_webhooks_are_signed_and_shaped(hook_emu, receiver):
    receiver.drain()
    status, _, body = hook_emu.send(text_msg(biz_opaque_callback_data="r:7"))
    assert status == 200
    wamid = body["messages"][0]["id"]
    posts = receiver.take(3, match=lambda p: wamid.encode() in p[2])
    names = []
    for path, headers, raw in posts:
        assert path == "/webhooks/wa1"
        assert wa_webhook.verify(raw, SECRET, headers["X-Hub-Signature-256"])
        assert headers["Content-Type"] == "application/json"
        hook = json.loads(raw)
        assert hook["object"] == "whatsapp_business_account"
        assert len(hook["entry"]) == 1
        assert hook["entry"][0]["id"] == wa_webhook.WABA_ID
        change = hook["entry"][0]["changes"][0]
        assert change["field"] == "messages"
        value = change["value"]
        assert value["messaging_product"] == "whatsapp"
        assert value["metadata"]["phone_number_id"] == PNID
        (st,) = value["statuses"]
        assert st["id"] == wamid and st["recipient_id"] == WA
        assert st["timestamp"].isdigit()
        assert st["biz_opaque_callback_data"] == "r:7"
        names.append(st["status"])
        if st["status"] == "read":
            assert "pricing" not in st and "conversation" not in st
        else:
            assert st["pricing"]["pricing_model"] == "PMP"
            assert st["conversation"]["origin"]["type"] == "service"
        if st["status"] == "sent":
            assert st["conversation"]["expiration_timestamp"].isdigit()
    assert names == ["sent", "delivered", "read"]


def test_status_webhooks_v24_omit_conversation(hook_emu, receiver):
    receiver.drain()
    _, _, body = hook_emu.send(template_msg(), version="v24.0")
    wamid = body["messages"][0]["id"]
    path, headers, raw = receiver.take(
        1, match=lambda p: wamid.encode() in p[2])[0]
    st = json.loads(raw)["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert st["status"] == "sent" and "conversation" not in st
    assert st["pricing"] == {"billable": True, "pricing_model": "PMP",
                             "type": "regular", "category": "utility"}
    assert "biz_opaque_callback_data" not in st
    receiver.take(2, match=lambda p: wamid.encode() in p[2])


def test_inbound_is_posted_signed_and_answered(hook_emu, receiver):
    receiver.drain()
    status, ans = hook_emu.control("POST", "inbound", {
        "from": "6281298765432", "name": "Budi", "text": "Halo, saya mau lapor",
        "id": "wamid.inbound-1"})
    assert status == 200 and ans == {"id": "wamid.inbound-1",
                                     "webhook_status": 200}
    path, headers, raw = receiver.take(1, match=lambda p: b"inbound-1" in p[2])[0]
    assert wa_webhook.verify(raw, SECRET, headers["X-Hub-Signature-256"])
    value = json.loads(raw)["entry"][0]["changes"][0]["value"]
    assert value["contacts"] == [{"profile": {"name": "Budi"},
                                  "wa_id": "6281298765432"}]
    (msg,) = value["messages"]
    assert msg["from"] == "6281298765432" and msg["type"] == "text"
    assert msg["text"] == {"body": "Halo, saya mau lapor"}
    assert msg["timestamp"].isdigit() and msg["id"] == "wamid.inbound-1"
    receiver.answer = 403
    try:
        status, ans = hook_emu.control("POST", "inbound", {
            "from": "6281298765432", "text": "lagi"})
    finally:
        receiver.answer = 200
    assert status == 403 and ans["webhook_status"] == 403
    assert ans["id"].startswith("wamid.")


def test_inbound_media_message(hook_emu, receiver):
    receiver.drain()
    _, _, made = hook_emu.call("POST", "/_emu/media", b"%PDF-1.4 lkpm",
                               token=None,
                               headers={"Content-Type": "application/pdf"})
    status, ans = hook_emu.control("POST", "inbound", {
        "from": "6281298765432", "media_id": made["id"],
        "filename": "LKPM-Q3.pdf", "caption": "laporan"})
    assert status == 200
    raw = receiver.take(1, match=lambda p: made["id"].encode() in p[2])[0][2]
    msg = json.loads(raw)["entry"][0]["changes"][0]["value"]["messages"][0]
    assert msg["type"] == "document"
    assert msg["document"] == {"mime_type": "application/pdf",
                               "sha256": made["sha256"], "id": made["id"],
                               "caption": "laporan", "filename": "LKPM-Q3.pdf"}


def test_inbound_without_webhook_is_refused(emu):
    status, body = emu.control("POST", "inbound", {"from": WA, "text": "x"})
    assert status == 409 and "webhook" in body["error"]


def status_of(post):
    """The (wamid, status) of a status webhook post, else (None, None)."""
    value = json.loads(post[2])["entry"][0]["changes"][0]["value"]
    st = value.get("statuses", [{}])[0]
    return st.get("id"), st.get("status")


def test_threads_share_counts_record_and_webhooks(receiver):
    receiver.drain()
    e = Emu("--threads", "3", "--webhook", receiver.url, "--app-secret",
            SECRET, "--status-delay-ms", "0")
    try:
        assert e.control("POST", "faults", {"per_recipient": {
            "6281100000009": 131026}})[0] == 200
        ids, codes, lock = [], [], threading.Lock()

        def client(k):
            conn = http.client.HTTPConnection("127.0.0.1", e.port, timeout=10)
            for i in range(60):
                to = "6281100000009" if i % 10 == 0 else "62812%08d" % (k * 100 + i)
                conn.request("POST", "/v21.0/%s/messages" % PNID,
                             body=json.dumps(text_msg(to=to)),
                             headers={"Authorization": "Bearer " + TOKEN})
                resp = conn.getresponse()
                body = json.loads(resp.read())
                with lock:
                    codes.append(resp.status)
                    if resp.status == 200:
                        ids.append(body["messages"][0]["id"])
            conn.close()

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(codes) == 480 and codes.count(400) == 48
        assert len(set(ids)) == len(ids) == 432
        _, stats = e.control("GET", "stats")
        assert (stats["received"], stats["accepted"], stats["failed"]) == (
            480, 432, 48)
        assert stats["by_code"] == {"131026": 48}
        wanted, seen = set(ids), {}
        posts = receiver.take(3 * 432, timeout=30,
                              match=lambda p: status_of(p)[0] in wanted)
        for post in posts:
            assert wa_webhook.verify(post[2], SECRET,
                                     post[1]["X-Hub-Signature-256"])
            wamid, name = status_of(post)
            seen.setdefault(wamid, []).append(name)
        assert all(v == ["sent", "delivered", "read"] for v in seen.values())
    finally:
        e.stop()
    recorded = [r["wamid"] for r in e.records()]
    assert sorted(recorded) == sorted(ids)


def test_port_zero_sigterm_and_final_flush():
    e = Emu("--status-delay-ms", "-1")
    assert e.send(text_msg())[0] == 200
    assert e.stop() == 0
    assert len(e.records()) == 1, "the record is flushed at exit"


def test_refuses_non_loopback_listen():
    proc = subprocess.run([emu_binary(), "--listen", "0.0.0.0:0"],
                          capture_output=True, text=True, timeout=5)
    assert proc.returncode != 0 and "loopback" in proc.stderr


def test_wa_webhook_payloads_post_and_verify(receiver):
    receiver.drain()
    a, b = "6281200000001", "6281200000002"
    ours = wa_webhook.new_wamid(a)
    msgs = [
        wa_webhook.text(a, "Halo"),
        wa_webhook.image(a, "1001", caption="foto"),
        wa_webhook.document(a, "1002", filename="LKPM.pdf"),
        wa_webhook.audio(a, "1003"),
        wa_webhook.voice(a, "1004"),
        wa_webhook.video(a, "1005"),
        wa_webhook.sticker(a, "1006"),
        wa_webhook.location(a, -8.65, 115.21, name="Kantor", address="Denpasar"),
        wa_webhook.contacts(a, [wa_webhook.contact_card("Budi", "+6281", "6281")]),
        wa_webhook.reaction(a, ours, "\N{THUMBS UP SIGN}"),
        wa_webhook.button(b, "Sudah lapor", "SUDAH", ours),
        wa_webhook.button_reply(b, "sudah", "Sudah", ours),
        wa_webhook.list_reply(b, "kanal_wa", "WhatsApp", ours, "Pakai WA"),
        wa_webhook.unsupported(b),
        wa_webhook.unknown(b),
    ]
    statuses = [wa_webhook.status(ours, "delivered", a,
                                  pricing_=wa_webhook.pricing()),
                wa_webhook.failed(wa_webhook.new_wamid(b), b)]
    payload = wa_webhook.webhook(entries=[
        wa_webhook.entry(wa_webhook.value(messages=msgs[:8],
                                          names={a: "Ani"}),
                         wa_webhook.value(statuses=statuses)),
        wa_webhook.entry(wa_webhook.value(messages=msgs[8:],
                                          names={a: "Ani", b: "Budi"}))])
    status, _ = wa_webhook.post(receiver.url, payload, SECRET)
    assert status == 200
    path, headers, raw = receiver.take(1)[0]
    assert wa_webhook.verify(raw, SECRET, headers["X-Hub-Signature-256"])
    got = json.loads(raw)
    assert got == payload
    values = [c["value"] for e in got["entry"] for c in e["changes"]]
    sent = [m for v in values for m in v.get("messages", [])]
    assert [m["type"] for m in sent] == [
        "text", "image", "document", "audio", "audio", "video", "sticker",
        "location", "contacts", "reaction", "button", "interactive",
        "interactive", "unsupported", "unknown"]
    for m in sent:
        assert set(m) >= {"from", "id", "timestamp", "type"}
        if m["type"] not in ("unknown", "contacts"):
            assert m["type"] in m
    assert sent[4]["audio"]["voice"] is True
    assert sent[10]["context"] == {"from": wa_webhook.DISPLAY_PHONE_NUMBER,
                                   "id": ours}
    assert values[2]["contacts"] == [
        {"profile": {"name": "Ani"}, "wa_id": a},
        {"profile": {"name": "Budi"}, "wa_id": b}]
    (failed,) = [s for s in values[1]["statuses"] if s["status"] == "failed"]
    assert failed["errors"][0]["code"] == 131026
    assert set(failed["errors"][0]) == {"code", "title", "message",
                                        "error_data", "href"}


def test_checks_can_fail():
    """The checkers above must reject what is wrong, or they prove nothing."""
    body = wa_webhook.encode({"object": "whatsapp_business_account"})
    good = wa_webhook.sign(body, SECRET)
    assert wa_webhook.verify(body, SECRET, good)
    assert not wa_webhook.verify(body, "another-secret", good)
    assert not wa_webhook.verify(body + b" ", SECRET, good)
    assert not wa_webhook.verify(body, SECRET, None)
    with pytest.raises(AssertionError):
        check_error_shape({"error": {"message": "x", "type": "OAuthException",
                                     "code": 100, "fbtrace_id": "AbCdEfGhIjK"}},
                          131047)
    with pytest.raises(AssertionError):
        check_error_shape({"messages": [{"id": "wamid.x"}]}, 100)
    with pytest.raises(AssertionError):
        check_success_shape({"messaging_product": "whatsapp",
                             "contacts": [{"input": WA, "wa_id": WA}],
                             "messages": [{"id": "not-a-wamid"}]}, WA)


def test_bad_signature_is_rejected_by_a_checking_receiver(receiver):
    """A signature made with the wrong secret does not verify."""
    receiver.drain()
    payload = wa_webhook.webhook(wa_webhook.value(
        messages=[wa_webhook.text(WA, "x")]))
    wa_webhook.post(receiver.url, payload, "wrong-secret")
    _, headers, raw = receiver.take(1)[0]
    assert not wa_webhook.verify(raw, SECRET, headers["X-Hub-Signature-256"])
    wa_webhook.post(receiver.url, payload, SECRET, signature="")
    _, headers, raw = receiver.take(1)[0]
    assert "X-Hub-Signature-256" not in headers
