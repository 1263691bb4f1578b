"""Helpers of the fault suite (tests/faults/): the table of results every
fault adds a row to, the check that turns a row into a verdict, and a load
driver that posts signed WhatsApp webhooks the way Meta does (retrying any
webhook not answered 200) and remembers which ones were answered 200.

Loads scale with $LINBAT_FAULTS_SCALE (default 1; 0.2 runs a fifth of every
load, for a quick look on a loaded machine).
"""

import collections
import http.client
import json
import os
import queue
import random
import threading
import time

import linbat

SCALE = float(os.environ.get("LINBAT_FAULTS_SCALE", "1") or "1")

# Rows of the table, in the order the faults ran; printed at the end of the
# session by tests/faults/conftest.py and written to the results directory.
ROWS = []
COLUMNS = ("fault", "load", "accepted", "stored", "lost", "duplicated", "bound", "note")


def scaled(n, least=1):
    """n scaled by LINBAT_FAULTS_SCALE, at least least."""
    return max(least, int(round(n * SCALE)))


def rng():
    """A random generator seeded from $LINBAT_FAULTS_SEED, or from the clock
    (the seed is printed, so a failing run can be repeated)."""
    seed = int(os.environ.get("LINBAT_FAULTS_SEED") or time.time_ns() % 1000000)
    print("random seed: LINBAT_FAULTS_SEED=%d" % seed)
    return random.Random(seed)


def tally(accepted, stored):
    """(lost, duplicated) from the ids accepted (an iterable of ids) and the
    ids stored (an iterable with one entry per copy stored or delivered):
    lost = accepted but never stored, duplicated = copies beyond the first."""
    counts = collections.Counter(stored)
    lost = len(set(accepted) - set(counts))
    duplicated = sum(c - 1 for c in counts.values())
    return lost, duplicated


def report(fault, load, accepted, stored, bound=0, note=""):
    """Add a row for one fault and check it: nothing accepted may be lost,
    nothing stored that was never accepted, and duplicates stay within bound.
    accepted is the ids accepted, stored the ids stored (one per copy).
    Returns (lost, duplicated); raises AssertionError on a bad row (the row
    is in the table either way)."""
    accepted = list(accepted)
    stored = list(stored)
    lost, dup = tally(accepted, stored)
    stray = set(stored) - set(accepted)
    row = {"fault": fault, "load": load, "accepted": len(set(accepted)),
           "stored": len(set(stored) & set(accepted)), "lost": lost, "duplicated": dup,
           "bound": bound, "note": note}
    ROWS.append(row)
    print(format_row(row))
    assert lost == 0, "%s: %d accepted but never stored, e.g. %s" % (
        fault, lost, sorted(set(accepted) - set(stored))[:5])
    assert not stray, "%s: %d stored but never accepted, e.g. %s" % (fault, len(stray), sorted(stray)[:5])
    assert dup <= bound, "%s: %d duplicates, more than the bound %d" % (fault, dup, bound)
    return lost, dup


def format_row(row):
    return "%-34s %-22s %9s %9s %5s %10s %6s  %s" % tuple(str(row[c]) for c in COLUMNS)


def table():
    """The table as text."""
    head = "%-34s %-22s %9s %9s %5s %10s %6s  %s" % COLUMNS
    return "\n".join([head, "-" * len(head)] + [format_row(r) for r in ROWS])


class Webhooks:
    """Signed webhooks of one text message each (its own wamid), from
    `senders` numbers, posted over `conns` keep-alive connections to
    url_of() (called again after every connection error, so a daemon may
    move). A webhook not answered 200 (a 503, a refused or reset connection)
    is posted again later, as Meta retries; answers other than 200 and 503
    are kept in `unexpected`.

    answered: {wamid: True} for every webhook answered 200, filled the
    moment the 200 arrives; statuses: Counter of HTTP statuses; errors:
    Counter of connection error class names.
    """

    def __init__(self, url_of, app_secret, n, conns=4, senders=200, prefix="6281300", retry_delay=0.05):
        import wa_webhook as wh
        self.url_of = url_of
        self.conns = conns
        self.retry_delay = retry_delay
        self.todo = queue.Queue()
        self.wamids = []
        for k in range(n):
            frm = "%s%06d" % (prefix, k % senders)
            msg = wh.text(frm, "Pesan uji gangguan %d" % k)
            body = wh.encode(wh.webhook(wh.value(messages=[msg], names={frm: "Investor %d" % (k % senders)})))
            self.wamids.append(msg["id"])
            self.todo.put((msg["id"], body, wh.sign(body, app_secret)))
        self.lock = threading.Lock()
        self.answered = {}
        self.statuses = collections.Counter()
        self.errors = collections.Counter()
        self.unexpected = []
        self.stop_flag = threading.Event()
        self.threads = []

    def start(self):
        for _ in range(self.conns):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def _connect(self):
        url = self.url_of()
        host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        path = "/" + url.split("//", 1)[1].split("/", 1)[1]
        return http.client.HTTPConnection(host, int(port), timeout=10), path

    def _run(self):
        conn, path = None, None
        while not self.stop_flag.is_set():
            try:
                item = self.todo.get(timeout=0.1)
            except queue.Empty:
                if self.done():
                    return
                continue
            wamid, body, sig = item
            try:
                if conn is None:
                    conn, path = self._connect()
                conn.request("POST", path, body=body, headers={
                    "Content-Type": "application/json", "User-Agent": "facebookexternalua",
                    "X-Hub-Signature-256": sig})
                r = conn.getresponse()
                r.read()
                status = r.status
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                status = None
                with self.lock:
                    self.errors[type(e).__name__] += 1
                if conn is not None:
                    conn.close()
                conn = None
            with self.lock:
                if status is not None:
                    self.statuses[status] += 1
                if status == 200:
                    self.answered[wamid] = True
                elif status not in (None, 503):
                    self.unexpected.append((wamid, status))
            if status != 200:
                self.todo.put(item)
                time.sleep(self.retry_delay)
        if conn is not None:
            conn.close()

    def count(self):
        with self.lock:
            return len(self.answered)

    def snapshot(self):
        """The wamids answered 200 so far."""
        with self.lock:
            return set(self.answered)

    def done(self):
        return self.count() == len(self.wamids)

    def wait(self, timeout):
        """Wait until every webhook was answered 200; True if so."""
        ok = linbat.wait_for(self.done, timeout, interval=0.1)
        self.stop()
        return ok

    def wait_count(self, n, timeout):
        return linbat.wait_for(lambda: self.count() >= n, timeout, interval=0.02)

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(15)

    def summary(self):
        with self.lock:
            return "statuses %s, connection errors %s" % (
                json.dumps(dict(sorted(self.statuses.items()))), json.dumps(dict(self.errors)))


def stored_wamids(conn, instance="wa1"):
    """The provider ids of the inbound messages stored on instance (one per row)."""
    with conn.cursor() as cur:
        cur.execute("select provider_id from linbat.message where direction = 'in' and channel_instance = %s",
                    (instance,))
        return [r[0] for r in cur.fetchall()]
