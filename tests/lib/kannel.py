"""A real Kannel 1.4 for tests: bearerbox, smsbox and the fake SMSC client
fakesmsc, from a generated config on free 127.0.0.1 ports, stopped by PID.

Kannel's fake SMSC accepts one fakesmsc client at a time, and fakesmsc only
sends the messages given on its command line. So one fakesmsc runs at any
moment and prints every message the gateway delivers; inject() restarts it
with the message to send as its argument (-m 1), and the new one goes on
printing. MT messages that arrive while no client is connected wait in
bearerbox's queue. Everything fakesmsc printed, across restarts, is read by
received(), which also joins concatenated parts and decodes UCS-2.

Debian's binaries: /usr/sbin/bearerbox, /usr/sbin/smsbox (package kannel),
/usr/lib/kannel/test/fakesmsc (package kannel-extras).
"""

import os
import re
import signal
import subprocess
import urllib.parse

import linbat

BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"

# "Got message 3: <from to type rest>" as fakesmsc prints it.
GOT = re.compile(r"Got message \d+: <(\S+) (\S+) (\S+) (.*)>$")

CONFIG = """\
group = core
admin-port = {admin_port}
admin-password = {admin_password}
admin-interface = 127.0.0.1
admin-allow-ip = 127.0.0.1
smsbox-port = {smsbox_port}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = "{dir}/bearerbox.log"
log-level = 1
access-log = "{dir}/access.log"
dlr-storage = internal
{store}
group = smsc
smsc = fake
smsc-id = fake1
port = {fake_port}
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox_port}
sendsms-port = {sendsms_port}
sendsms-interface = 127.0.0.1
log-file = "{dir}/smsbox.log"
log-level = 1

group = sendsms-user
username = {username}
password = {password}
concatenation = true
max-messages = 10

group = sms-service
keyword = default
catch-all = true
{url_key} = "{service_url}"
max-messages = 0
omit-empty = true
"""


def available():
    """Whether Kannel and its fake SMSC are installed."""
    return all(os.access(p, os.X_OK) for p in (BEARERBOX, SMSBOX, FAKESMSC))


def decode(kind, rest):
    """(udh bytes or None, text) of one message fakesmsc printed."""
    if kind == "text":
        return None, rest
    if kind == "ucs-2":
        return None, urllib.parse.unquote_to_bytes(rest.replace("+", "%20")).decode("utf-16-be")
    if kind == "udh":
        udh, _, data = rest.partition(" data ")
        return urllib.parse.unquote_to_bytes(udh), urllib.parse.unquote_plus(data)
    raise ValueError("unknown fakesmsc message type %r" % kind)


def concat_key(udh):
    """(reference, total, sequence) of a concatenation UDH (IE 0x00), else None."""
    if udh is None or len(udh) < 6 or udh[1] != 0x00:
        return None
    return udh[3], udh[4], udh[5]


def join_parts(lines):
    """Messages from fakesmsc's 'Got message' lines, concatenated parts joined,
    as dicts {from, to, text, parts}."""
    out, pending = [], {}
    for line in lines:
        m = GOT.search(line.rstrip("\n"))
        if not m:
            continue
        sender, receiver, kind, rest = m.groups()
        udh, text = decode(kind, rest)
        key = concat_key(udh)
        if key is None:
            out.append({"from": sender, "to": receiver, "text": text, "parts": 1})
            continue
        ref, total, seq = key
        parts = pending.setdefault((sender, receiver, ref), {})
        parts[seq] = text
        if len(parts) == total:
            del pending[(sender, receiver, ref)]
            out.append({"from": sender, "to": receiver, "parts": total,
                        "text": "".join(parts[i] for i in sorted(parts))})
    return out


class Kannel:
    """bearerbox + smsbox + one fakesmsc in workdir, on free ports.

    The ports are chosen at construction, so a linbatd can be configured
    with sendsms_url before start(service_url) writes Kannel's config.
    Usable as a context manager; stop() ends every process it started.
    """

    def __init__(self, workdir, username="linbat", password="rahasia-kannel", store=False):
        self.dir = os.path.join(workdir, "kannel")
        os.makedirs(self.dir, exist_ok=True)
        self.username, self.password = username, password
        self.ports = {k: linbat.free_port() for k in ("admin_port", "smsbox_port", "fake_port", "sendsms_port")}
        self.conf = os.path.join(self.dir, "kannel.conf")
        self.sendsms_url = "http://127.0.0.1:%d/cgi-bin/sendsms" % self.ports["sendsms_port"]
        self.fake_log = os.path.join(self.dir, "fakesmsc.out")
        self.procs = {}
        self.injected = 0
        # With store, bearerbox keeps the messages it holds in a store file,
        # so a restart does not drop them.
        self.store = ('store-type = file\nstore-location = "%s/kannel.store"\n' % self.dir) if store else ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _spawn(self, name, args):
        log = open(os.path.join(self.dir, name + ".out"), "ab")
        try:
            self.procs[name] = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                                cwd=self.dir)
        finally:
            log.close()

    def _wait_port(self, port, what, timeout=15):
        def up():
            import socket
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return True
            except OSError:
                return False
        if not linbat.wait_for(up, timeout, interval=0.05):
            raise AssertionError("%s did not listen on %d within %g s:\n%s" % (what, port, timeout, self.tail()))

    def start(self, service_url, post=False):
        """Write the config with service_url as the sms-service get-url (post-url
        if post), start bearerbox, smsbox and a listening fakesmsc; return self
        once all three are up."""
        with open(self.conf, "w") as f:
            f.write(CONFIG.format(dir=self.dir, admin_password="admin-" + self.password,
                                  username=self.username, password=self.password,
                                  url_key="post-url" if post else "get-url",
                                  service_url=service_url, store=self.store, **self.ports))
        self._spawn("bearerbox", [BEARERBOX, self.conf])
        self._wait_port(self.ports["smsbox_port"], "bearerbox")
        self._spawn("smsbox", [SMSBOX, self.conf])
        self._wait_port(self.ports["sendsms_port"], "smsbox")
        self._fakesmsc()
        return self

    def _fakesmsc(self, message=None):
        """Start a fakesmsc that sends message (if any) and then prints what it receives.
        It waits until bearerbox has seen the client connect."""
        # Line-buffered: a fakesmsc stopped by SIGTERM (a restart) must not
        # take the last messages it printed with it.
        args = ["stdbuf", "-oL", FAKESMSC, "-H", "127.0.0.1", "-r", str(self.ports["fake_port"]), "-i", "0.01"]
        args += ["-m", "1", message] if message else ["-m", "0", "0 0 text unused"]
        before = self._connects()
        log = open(self.fake_log, "ab")
        try:
            self.procs["fakesmsc"] = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                                      cwd=self.dir)
        finally:
            log.close()
        if not linbat.wait_for(lambda: self._connects() > before, 15):
            raise AssertionError("fakesmsc did not connect to bearerbox:\n%s" % self.tail())

    def _connects(self):
        """How many times a fakesmsc client connected, from bearerbox's log."""
        try:
            with open(os.path.join(self.dir, "bearerbox.log"), errors="replace") as f:
                return f.read().count("Fakesmsc client connected")
        except FileNotFoundError:
            return 0

    def _end(self, name, timeout=10):
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def inject(self, sender, receiver, text):
        """Send one MO SMS from sender to receiver through the fake SMSC.
        fakesmsc is restarted with the message; it goes on printing MT messages."""
        self._end("fakesmsc")
        self.injected += 1
        self._fakesmsc("%s %s text %s" % (sender, receiver, text))

    def lines(self):
        try:
            with open(self.fake_log, errors="replace") as f:
                return f.readlines()
        except FileNotFoundError:
            return []

    def received(self):
        """Every MT message the fake SMSC delivered so far (parts joined)."""
        return join_parts(self.lines())

    def rejected(self):
        """The texts of the MT messages bearerbox itself refused (its access
        log's "REJECTED Send SMS" lines): it answers such a one with a DLR of
        type 16, NACK/REJECTED."""
        texts = []
        try:
            with open(os.path.join(self.dir, "access.log"), errors="replace") as f:
                for ln in f:
                    m = re.search(r" REJECTED Send SMS .*?\[msg:(\d+):", ln)
                    if m:
                        texts.append(ln[m.end():m.end() + int(m.group(1))])
        except FileNotFoundError:
            pass
        return texts

    def count_parts(self):
        """How many 'Got message' lines fakesmsc printed (cheap; for benchmarks)."""
        try:
            with open(self.fake_log, "rb") as f:
                return f.read().count(b"Got message")
        except FileNotFoundError:
            return 0

    def tail(self, n=15):
        out = []
        for name in ("bearerbox.log", "smsbox.log", "fakesmsc.out"):
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    out.append("== %s\n%s" % (name, "".join(f.readlines()[-n:])))
        return "\n".join(out)

    def stop(self):
        """Stop fakesmsc, smsbox and bearerbox, in that order."""
        for name in ("fakesmsc", "smsbox", "bearerbox"):
            self._end(name)


def wait_received(kannel, predicate, timeout=20):
    """Wait until some message kannel's fakesmsc received satisfies predicate; return it."""
    def find():
        return next((m for m in kannel.received() if predicate(m)), None)
    return linbat.wait_for(find, timeout, interval=0.1)

