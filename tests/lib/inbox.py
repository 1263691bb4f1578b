"""Helpers for the tests of the inbox API: operators made with linbatctl,
bearer tokens, cookie sessions that log in through /api/v1/login, inbound
messages stored as an adapter would, and a small Server-Sent Events reader.

Run with /usr/bin/python3 (psycopg2 from Debian)."""

import json
import select
import socket
import time

import psycopg2

import linbat

PASSWORD = "rahasia-sekali"


def sql(dsn, query, params=None):
    """Run one statement in its own transaction; return its rows (or [])."""
    with psycopg2.connect(dsn) as c, c.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall() if cur.description else []


def add_operator(dsn, email, role="operator", capacity=5, online=False, password=PASSWORD):
    """Add an operator with linbatctl and return its id."""
    r = linbat.run([linbat.LINBATCTL, "-d", dsn, "operator", "add", "--email", email, "--name",
                    "Petugas " + email.split("@")[0], "--role", role, "--capacity", str(capacity)],
                   input=password + "\n")
    assert r.returncode == 0, r.stderr
    oid = sql(dsn, "select id from linbat.operator where email = lower(%s)", (email,))[0][0]
    if online:
        sql(dsn, "select linbat.set_presence(%s, 'online')", (oid,))
    return oid


def token(dsn, email):
    """Create a bearer token for an operator with linbatctl and return it."""
    r = linbat.run([linbat.LINBATCTL, "-d", dsn, "token", "create", "--email", email])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def bearer(tok):
    return {"Authorization": "Bearer " + tok, "Content-Type": "application/json"}


def ingest(dsn, address, provider_id, body="Halo", instance="t1", kind="sms"):
    """Store one inbound message as an adapter would; return the conversation id."""
    return sql(dsn, "select conversation_id from linbat.ingest_inbound(%s, %s, %s, %s, %s, 'text', "
               "'{}', now(), null)", (instance, kind, address, provider_id, body))[0][0]


def call(daemon, method, path, body=None, headers=None, timeout=10):
    """Send one API request; body may be a dict (sent as JSON)."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    return daemon.request(method, path, body, dict(headers or {}), timeout=timeout)


class Session:
    """A browser's session: the cookie and CSRF token from /api/v1/login."""

    def __init__(self, daemon, email, password=PASSWORD):
        self.daemon = daemon
        self.login = call(daemon, "POST", "/api/v1/login", {"email": email, "password": password},
                          {"Content-Type": "application/json"})
        assert self.login.status == 200, self.login
        self.set_cookie = self.login.headers["set-cookie"]
        self.cookie = self.set_cookie.split(";")[0]
        self.csrf = self.login.json()["csrf_token"]

    def headers(self, csrf=True):
        h = {"Cookie": self.cookie, "Content-Type": "application/json"}
        if csrf:
            h["X-CSRF-Token"] = self.csrf
        return h

    def request(self, method, path, body=None, csrf=True):
        return call(self.daemon, method, path, body, self.headers(csrf))


class Events:
    """An open GET /api/v1/events stream on a plain socket (http.client's
    buffering hides data from select), its chunked body decoded here."""

    def __init__(self, daemon, headers):
        self.sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
        lines = ["GET /api/v1/events HTTP/1.1", "Host: 127.0.0.1:%d" % daemon.port]
        lines += ["%s: %s" % kv for kv in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.raw = b""
        while b"\r\n\r\n" not in self.raw:
            data = self.sock.recv(65536)
            if not data:
                break
            self.raw += data
        head, _, self.raw = self.raw.partition(b"\r\n\r\n")
        self.status = int(head.split()[1])
        self.headers = head.decode(errors="replace").lower()
        self.body = b""
        self.events = []
        self._decode()

    def _decode(self):
        """Move whole chunks from raw to body, and whole frames from body to events."""
        while b"\r\n" in self.raw:
            size_line, _, rest = self.raw.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if len(rest) < size + 2:
                break
            self.body += rest[:size]
            self.raw = rest[size + 2:]
        while b"\n\n" in self.body:
            frame, self.body = self.body.split(b"\n\n", 1)
            ev = {"event": "message", "data": None}
            for line in frame.decode().split("\n"):
                if line.startswith("event: "):
                    ev["event"] = line[7:]
                elif line.startswith("data: "):
                    ev["data"] = json.loads(line[6:])
            if ev["data"] is not None:
                self.events.append(ev)

    def _pump(self, timeout):
        """Read what arrives within timeout seconds."""
        if not select.select([self.sock], [], [], max(timeout, 0))[0]:
            return
        try:
            data = self.sock.recv(65536)
        except OSError:
            return
        self.raw += data
        self._decode()

    def wait(self, predicate, timeout=10):
        """Wait until an event satisfies predicate(event); return it or None."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events:
                if predicate(ev):
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._pump(min(left, 0.2))

    def drain(self, seconds):
        """Read for seconds and return every event seen so far."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._pump(deadline - time.monotonic())
        return self.events

    def close(self):
        self.sock.close()
