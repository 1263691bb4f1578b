"""Operations: what an admin sees of linbatd the way they run any Debian
service.

Covered: /metrics in the Prometheus text format (read with Debian's
python3-prometheus-client parser and a strict line check of our own),
counters and histograms that move when messages flow through wa-emu and the
test channel, the outbox and queue gauges, the optional bearer token; the
systemd notify protocol (READY, WATCHDOG, RELOADING, STOPPING) on a fake
NOTIFY_SOCKET; SIGHUP reloads log_level and refuses a change that needs a
restart, keeping the old configuration; log_format = json; secrets never in
the log; linbatctl migrate --dry-run; refusing a database newer than the
program; make install DESTDIR=... putting each file where Debian expects it.
"""

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import psycopg2
import pytest
from prometheus_client.parser import text_string_to_metric_families

import linbat

sys.path.insert(0, os.path.join(linbat.TOP_SRCDIR, "tests", "emulators"))
import wa_webhook as wh  # noqa: E402

TOKEN = "EAAops-access-token-5d1c9e"
SECRET = "ops-app-secret-7b42a0"
VERIFY = "ops-verify-token-e83f"
METRICS_TOKEN = "ops-metrics-token-19ac4d"
DB_PASSWORD = "ops-db-password-2f6b"
NEW_PASSWORD = "ops-db-password-next-8e01"
PNID = wh.PHONE_NUMBER_ID
DISPATCH = {"batch": "50", "in_flight": "50", "backoff_base": "100ms", "max_attempts": "3",
            "lease": "5s"}

# One sample line of the text format: name, optional {labels}, a value.
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:%s)(?:,%s)*\})? '
                         r'(-?[0-9.]+(?:e[+-]?[0-9]+)?|\+Inf|-Inf|NaN)$' % (LABEL, LABEL))
META_LINE = re.compile(r'^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$')
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
FAMILIES = (
    "linbat_build_info", "linbat_webhook_signature_failures_total",
    "linbat_webhook_duration_seconds", "linbat_send_duration_seconds",
    "linbat_db_pool_size", "linbat_db_pool_in_use", "linbat_db_errors_total",
    "linbat_dispatch_sent_total", "linbat_messages", "linbat_outbox_depth",
    "linbat_outbox_oldest_due_seconds", "linbat_operators", "linbat_conversations_waiting",
    "linbat_metrics_database_ok")

SEED_SQL = """
with inv as (
    insert into linbat.investor (display_name)
    select 'Investor ops ' || g from generate_series(1, %(n)s) g returning id
), ident as (
    insert into linbat.identity (investor_id, kind, address, last_inbound_at)
    select id, 'sms', '+62813' || lpad(id::text, 8, '0'), now() from inv returning id, investor_id
), conv as (
    insert into linbat.conversation (investor_id) select id from inv returning id, investor_id
)
insert into linbat.message (conversation_id, direction, identity_id, channel_instance, body,
    status, next_attempt_at)
select conv.id, 'out', ident.id, %(instance)s, 'Pengingat LKPM', 'queued', now()
from conv join ident on ident.investor_id = conv.investor_id
returning id
"""


# The text format ---------------------------------------------------------------

def strict_check(text):
    """Fail unless every line is a HELP, TYPE or sample line, each family's
    TYPE comes once and before its samples, and the text ends in a newline."""
    assert text.endswith("\n"), "the exposition does not end with a newline"
    typed = {}
    for n, line in enumerate(text.split("\n")[:-1], 1):
        m = META_LINE.match(line)
        if m:
            if m.group(1) == "TYPE":
                assert m.group(3) in TYPES, "line %d: unknown type: %r" % (n, line)
                assert m.group(2) not in typed, "line %d: second TYPE of %s" % (n, m.group(2))
                typed[m.group(2)] = m.group(3)
            continue
        m = SAMPLE_LINE.match(line)
        assert m, "line %d is not in the text format: %r" % (n, line)
        name = m.group(1)
        base = re.sub(r"_(bucket|sum|count)$", "", name) if name not in typed else name
        assert base in typed, "line %d: a sample of %s before its TYPE" % (n, name)
    return typed


def parse(text):
    """{(sample name, frozenset of label items): value} of an exposition,
    read by the reference parser after the strict check."""
    strict_check(text)
    samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, "sample %s%s twice" % (s.name, s.labels)
            samples[key] = s.value
    return samples


def test_the_parsers_refuse_what_is_not_the_text_format():
    good = "# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"1\"} 3\n"
    assert parse(good)[("x_total", frozenset({("a", "1")}))] == 3
    for bad in (good + "x_total{a=1} 3\n",                  # unquoted label value
                good + "x_total 3 4 5\n",                   # junk after the value
                good.rstrip("\n"),                          # no final newline
                "y 1\n" + good,                             # sample before its TYPE
                good + "# TYPE x_total gauge\n"):           # a second TYPE
        with pytest.raises((AssertionError, ValueError)):
            parse(bad)


def value(samples, name, **labels):
    """The value of one sample, or None if the scrape does not have it."""
    return samples.get((name, frozenset(labels.items())))


class Scraper:
    """GET /metrics of one daemon, parsed."""

    def __init__(self, daemon, token=None):
        self.d = daemon
        self.headers = {"Authorization": "Bearer " + token} if token else {}

    def raw(self):
        return self.d.request("GET", "/metrics", headers=self.headers)

    def once(self):
        r = self.raw()
        assert r.status == 200, r
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers
        return parse(r.body.decode("utf-8"))

    def __call__(self, need_db=True):
        """One scrape; with need_db, the first that has the database's figures
        (on a loaded machine the query may miss the scrape's deadline)."""
        if not need_db:
            return self.once()
        got = linbat.wait_for(lambda: (lambda s: s if value(s, "linbat_metrics_database_ok") == 1
                                       else None)(self.once()), 20, interval=0.2)
        assert got, "no scrape had the database figures within 20 s"
        return got

    def wait(self, pred, timeout=30, what="a condition on /metrics"):
        """Scrape until pred(samples) is true; return the samples."""
        last = {}

        def once():
            last["s"] = self()
            return pred(last["s"])
        assert linbat.wait_for(once, timeout, interval=0.2), "%s never held; last scrape:\n%s" % (
            what, "\n".join("%s%s %s" % (k[0], dict(k[1]), v) for k, v in sorted(
                last.get("s", {}).items(), key=lambda kv: kv[0][0]) if k[0].startswith("linbat_")))
        return last["s"]


# Emulator and daemons -----------------------------------------------------------

class WaEmu:
    """A wa-emu process on a free loopback port."""

    def __init__(self, workdir):
        binary = os.path.join(linbat.TOP_BUILDDIR, "tests", "emulators", "wa-emu")
        assert os.access(binary, os.X_OK), "wa-emu is not built at %s" % binary
        self.errlog = open(os.path.join(workdir, "wa-emu.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--token", TOKEN, "--phone-number-id", PNID,
             "--record", os.path.join(workdir, "wa-emu.jsonl"), "--status-delay-ms", "-1"],
            stdout=subprocess.PIPE, stderr=self.errlog, text=True)
        line = self.proc.stdout.readline()
        m = re.fullmatch(r"listening (\d+)\n", line)
        assert m, "wa-emu did not start: %r" % line
        self.url = "http://127.0.0.1:%s" % m.group(1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=5)
        self.proc.stdout.close()
        self.errlog.close()


@pytest.fixture
def emu(tmp_path):
    e = WaEmu(str(tmp_path))
    yield e
    e.stop()


def wa_section(emu_url):
    return {"type": "whatsapp", "phone_number_id": PNID, "access_token": TOKEN,
            "app_secret": SECRET, "verify_token": VERIFY, "api_base": emu_url + "/v21.0",
            "template_name": "lkpm_balasan", "template_language": "id"}


def test_section(tmp_path, **keys):
    return dict({"type": "test", "record": str(tmp_path / "t1.jsonl")}, **keys)


test_section.__test__ = False


def seed(dsn, instance, n):
    """Queue n outbound messages on instance; return their ids."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(SEED_SQL, {"n": n, "instance": instance})
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def sql(dsn, statement, params=None):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def text_hook():
    frm = "6281234500001"
    msg = wh.text(frm, "Selamat siang, saya mau tanya LKPM.")
    return wh.webhook(wh.value(messages=[msg], names={frm: "Sari"}))


# /metrics -------------------------------------------------------------------------

def test_metrics_parse_and_move_when_messages_flow(start_linbatd, emu, tmp_path, db):
    d = start_linbatd(extra={"dispatch": DISPATCH, "channel wa1": wa_section(emu.url),
                             "channel t1": test_section(tmp_path)})
    scrape = Scraper(d)
    typed = strict_check(scrape.raw().body.decode())
    missing = [f for f in FAMILIES if f not in typed]
    assert not missing, "families missing from /metrics: %s" % missing
    s0 = scrape()
    assert value(s0, "linbat_metrics_database_ok") == 1
    assert value(s0, "linbat_db_pool_size") == 4
    assert value(s0, "linbat_operators", presence="online") == 0
    assert value(s0, "linbat_messages", direction="in", instance="wa1", status="received") is None

    # A signed inbound message: stored, timed, and (nobody on duty) queued with an
    # acknowledgement that leaves through wa-emu.
    status, _ = wh.post(d.url + "/webhooks/wa1", text_hook(), SECRET)
    assert status == 200
    s1 = scrape.wait(lambda s: value(s, "linbat_messages", direction="out", instance="wa1",
                                     status="sent") == 1, what="the acknowledgement sent")
    assert value(s1, "linbat_messages", direction="in", instance="wa1", status="received") == 1
    assert value(s1, "linbat_conversations_waiting") == 1
    assert value(s1, "linbat_webhook_duration_seconds_count", code="2xx") == 1
    assert value(s1, "linbat_webhook_duration_seconds_bucket", code="2xx", le="+Inf") == 1
    assert value(s1, "linbat_send_duration_seconds_count", instance="wa1") == 1
    assert value(s1, "linbat_dispatch_sent_total") == 1

    # A forged signature is refused and counted for its instance.
    status, _ = wh.post(d.url + "/webhooks/wa1", text_hook(), "not-the-secret")
    assert status == 401
    s2 = scrape()
    assert value(s2, "linbat_webhook_signature_failures_total", instance="wa1") == 1
    assert value(s2, "linbat_webhook_duration_seconds_count", code="4xx") == 1
    assert value(s2, "linbat_messages", direction="in", instance="wa1", status="received") == 1

    # Five reminders through the test channel; an operator comes on duty.
    seed(db, "t1", 5)
    sql(db, "insert into linbat.operator (name, email, presence) values ('Ayu', 'ayu@bkpm.test', 'online')")
    s3 = scrape.wait(lambda s: value(s, "linbat_messages", direction="out", instance="t1",
                                     status="sent") == 5, what="five sends on t1")
    assert value(s3, "linbat_send_duration_seconds_count", instance="t1") == 5
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in s3.items()
                     if k[0] == "linbat_send_duration_seconds_bucket" and ("instance", "t1") in k[1])
    assert buckets[-1] == (math.inf, 5) and all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:]))
    assert value(s3, "linbat_dispatch_sent_total") == 6
    assert value(s3, "linbat_operators", presence="online") == 1
    assert value(s3, "linbat_outbox_depth") == 0
    assert value(s3, "linbat_db_queries_total") > value(s0, "linbat_db_queries_total")


def test_outbox_depth_and_oldest_due_age(start_linbatd, tmp_path, db):
    # One send in flight at a time, and it takes an hour: the rest stay queued and due.
    d = start_linbatd(extra={"dispatch": dict(DISPATCH, in_flight="1"),
                             "daemon": {"shutdown_timeout": "200ms"},
                             "channel t1": test_section(tmp_path, delay="1h")})
    scrape = Scraper(d)
    seed(db, "t1", 3)
    s = scrape.wait(lambda s: value(s, "linbat_outbox_oldest_due_seconds") >= 1.0,
                    what="a queued message due for a second")
    assert value(s, "linbat_outbox_depth") == 3
    assert value(s, "linbat_messages", direction="out", instance="t1", status="queued") == 2
    assert value(s, "linbat_messages", direction="out", instance="t1", status="sending") == 1
    assert value(s, "linbat_dispatch_inflight") == 1


def test_metrics_token_is_required_when_set(start_linbatd):
    d = start_linbatd(extra={"daemon": {"metrics_token": METRICS_TOKEN}})
    for headers in ({}, {"Authorization": "Bearer wrong-token"},
                    {"Authorization": "Bearer " + METRICS_TOKEN[:-1]},
                    {"Authorization": METRICS_TOKEN}):
        r = d.request("GET", "/metrics", headers=headers)
        assert r.status == 401, (headers, r)
        assert r.headers.get("www-authenticate", "").startswith("Bearer"), r.headers
        assert b"linbat_" not in r.body
    assert value(Scraper(d, METRICS_TOKEN)(), "linbat_metrics_database_ok") == 1


def test_metrics_answer_without_the_database(private_pg, start_linbatd):
    d = start_linbatd(dsn=private_pg.dsn(private_pg.create_database()))
    private_pg.stop()
    s = Scraper(d)(need_db=False)
    assert value(s, "linbat_metrics_database_ok") == 0
    assert value(s, "linbat_messages") is None and value(s, "linbat_db_pool_size") == 4
    private_pg.start()


# systemd notify, reload -----------------------------------------------------------

class NotifySocket:
    """A fake systemd: an AF_UNIX datagram socket that collects what linbatd says."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="lbn", dir="/tmp")  # sun_path is short
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.got = []

    def drain(self):
        while True:
            try:
                self.got.append(self.sock.recv(4096).decode())
            except socket.timeout:
                return self.got

    def wait(self, state, after=0, timeout=20):
        """Wait for a datagram holding the line state, at index >= after; return its index."""
        def seen():
            self.drain()
            for i in range(after, len(self.got)):
                if state in self.got[i].split("\n"):
                    return i + 1
            return None
        i = linbat.wait_for(seen, timeout)
        assert i, "no %s after %d; got %r" % (state, after, self.got)
        return i - 1

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify(monkeypatch):
    n = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", n.path)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    yield n
    n.close()


def log_lines(d, start=0):
    with open(d.log_path, errors="replace") as f:
        return f.readlines()[start:]


def debug_lines(lines):
    return [ln for ln in lines if re.match(r"^\S+ DEBUG ", ln)]


def rewrite_config(d, **daemon_and_database):
    """Write d's config again with keys changed ({"daemon": {...}, ...})."""
    for section, keys in daemon_and_database.items():
        d.config[section].update(keys)
    linbat.write_config(d.conf_path, d.config)


@pytest.mark.log_allow(r"ERROR linbatd: Reload refused")
def test_notify_socket_ready_watchdog_reload_and_stopping(start_linbatd, notify, tmp_path, db):
    d = start_linbatd(extra={"dispatch": DISPATCH, "channel t1": test_section(tmp_path)})
    ready = notify.wait("READY=1")
    notify.wait("WATCHDOG=1", after=ready)

    # At info, a send writes no DEBUG line.
    seed(db, "t1", 1)
    assert linbat.wait_for(lambda: sql(db, "select count(*) from linbat.message where status = 'sent'")[0][0]
                           == 1, 10)
    assert not debug_lines(log_lines(d))
    mark = len(log_lines(d))

    # SIGHUP with log_level = debug: RELOADING, then READY, and the next send is at DEBUG.
    rewrite_config(d, daemon={"log_level": "debug"})
    seen = len(notify.drain())
    d.proc.send_signal(signal.SIGHUP)
    reloading = notify.wait("RELOADING=1", after=seen)
    notify.wait("READY=1", after=reloading + 1)
    seed(db, "t1", 1)
    assert linbat.wait_for(lambda: debug_lines(log_lines(d, mark)), 20), log_lines(d, mark)
    assert any("Configuration reloaded." in ln for ln in log_lines(d, mark))

    # A change that needs a restart (pool_size) is refused with an ERROR line, and
    # nothing of that file applies: log_level stays debug although it says warn.
    mark = len(log_lines(d))
    rewrite_config(d, daemon={"log_level": "warn"}, database={"pool_size": "5"})
    seen = len(notify.drain())
    d.proc.send_signal(signal.SIGHUP)
    reloading = notify.wait("RELOADING=1", after=seen)
    notify.wait("READY=1", after=reloading + 1)
    refused = [ln for ln in log_lines(d, mark) if "ERROR linbatd: Reload refused" in ln]
    assert refused and "pool_size" in refused[0], log_lines(d, mark)
    seed(db, "t1", 1)
    assert linbat.wait_for(lambda: debug_lines(log_lines(d, mark)), 20), log_lines(d, mark)
    assert d.healthz() == 200

    seen = len(notify.drain())
    d.stop()
    notify.wait("STOPPING=1", after=seen, timeout=2)


# Logs -------------------------------------------------------------------------------

def test_log_format_json_is_one_object_per_line(start_linbatd):
    d = start_linbatd(extra={"daemon": {"log_format": "json", "log_level": "debug"}})
    assert d.get("/nowhere").status == 404
    d.stop()
    lines = log_lines(d)
    assert len(lines) >= 3, lines
    for ln in lines:
        assert ln.endswith("\n")
        o = json.loads(ln)
        assert isinstance(o, dict) and {"ts", "level", "module", "msg"} <= set(o), ln
    assert any(o["msg"].startswith("Started.") for o in map(json.loads, lines))


def secrets_in(path, secrets):
    """The secrets that appear in a file, as grep -F would find them."""
    with open(path, errors="replace") as f:
        text = f.read()
    return [s for s in secrets if s in text]


@pytest.mark.log_allow(r"ERROR linbatd: Reload refused")
def test_secrets_never_appear_in_the_log(start_linbatd, emu, pg, db, tmp_path):
    dbname = db.rsplit("=", 1)[1]
    url = "postgresql://postgres:%s@127.0.0.1:%d/%s" % (DB_PASSWORD, pg.port, dbname)
    d = start_linbatd(dsn=url, extra={
        "daemon": {"log_level": "debug", "metrics_token": METRICS_TOKEN},
        "dispatch": DISPATCH, "channel wa1": wa_section(emu.url)})
    secrets = [DB_PASSWORD, TOKEN, SECRET, VERIFY, METRICS_TOKEN, NEW_PASSWORD]
    # The grep finds them where they are: in the config file (the last one once it is written).
    assert secrets_in(d.conf_path, secrets) == secrets[:-1]

    # Every path that handles one: webhooks signed right and wrong, the handshake
    # with the right and a wrong token, a send with the access token, scrapes with
    # the right and a wrong token, a reload and a refused reload.
    hook = d.url + "/webhooks/wa1"
    assert wh.post(hook, text_hook(), SECRET)[0] == 200
    assert wh.post(hook, text_hook(), "x" + SECRET)[0] == 401
    for tok in (VERIFY, VERIFY + "x"):
        d.get("/webhooks/wa1?hub.mode=subscribe&hub.verify_token=%s&hub.challenge=42" % tok)
    Scraper(d, METRICS_TOKEN)()
    d.request("GET", "/metrics", headers={"Authorization": "Bearer " + METRICS_TOKEN + "x"})
    assert linbat.wait_for(lambda: sql(db, "select count(*) from linbat.message where direction = 'out'"
                                       " and status = 'sent'")[0][0] == 1, 10)
    d.proc.send_signal(signal.SIGHUP)
    assert linbat.wait_for(lambda: any("Configuration reloaded" in ln for ln in log_lines(d)), 10)
    rewrite_config(d, database={"pool_size": "3"})
    d.proc.send_signal(signal.SIGHUP)
    assert linbat.wait_for(lambda: any("Reload refused" in ln for ln in log_lines(d)), 10)
    # A bad database URL with another password: refused, and its value not quoted.
    rewrite_config(d, database={"url": url.replace(DB_PASSWORD, NEW_PASSWORD).replace(
        ":%d/" % pg.port, ":notaport/")})
    d.proc.send_signal(signal.SIGHUP)
    assert linbat.wait_for(lambda: sum("Reload refused" in ln for ln in log_lines(d)) == 2, 10)
    d.stop()
    # linbatctl and linbatd -t with the same file.
    assert secrets_in(d.conf_path, secrets) == secrets[1:]  # the first was replaced
    out = linbat.linbatctl("-c", d.conf_path, "migrate", "--dry-run")
    with open(tmp_path / "ctl.out", "w") as f:
        f.write(out.stdout + out.stderr)
    leaked = secrets_in(d.log_path, secrets) + secrets_in(tmp_path / "ctl.out", secrets)
    assert not leaked, "secrets in the log: %s" % leaked
    with open(d.log_path) as f:
        text = f.read()
    # The paths did run: a refused signature and a send through wa-emu are in the log.
    assert "signature is missing or wrong" in text and "Message accepted." in text, text[-2000:]


# Upgrades -----------------------------------------------------------------------------

def conf_for(tmp_path, dsn):
    return linbat.write_config(str(tmp_path / "ops.conf"),
                               linbat.linbat_config(dsn, linbat.free_port()))


def applied(dsn):
    return sql(dsn, "select version from linbat.schema_migrations order by 1"
               if sql(dsn, "select to_regclass('linbat.schema_migrations')")[0][0] else "select 1 where false")


def test_migrate_dry_run_lists_and_applies_nothing(tmp_path, db):
    conf = conf_for(tmp_path, db)
    names = sorted(n for n in os.listdir(os.path.join(linbat.TOP_SRCDIR, "migrations"))
                   if n.endswith(".sql"))
    r = linbat.linbatctl("-c", conf, "migrate", "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    listed = re.findall(r"^would apply (\S+)$", r.stdout, re.M)
    assert listed == [n[:-4] for n in names] or listed == names, r.stdout
    assert applied(db) == [], "--dry-run applied %s" % applied(db)
    assert sql(db, "select to_regclass('linbat.message')")[0][0] is None

    r = linbat.linbatctl("-c", conf, "migrate")
    assert r.returncode == 0 and len(applied(db)) == len(names), r.stdout + r.stderr
    r = linbat.linbatctl("-c", conf, "migrate", "--dry-run")
    assert r.returncode == 0 and "would apply" not in r.stdout, r.stdout


@pytest.mark.parametrize("args", [[], ["--migrate"]])
def test_refuses_a_database_newer_than_itself(tmp_path, db, args):
    conf = conf_for(tmp_path, db)
    assert linbat.linbatctl("-c", conf, "migrate").returncode == 0
    sql(db, "insert into linbat.schema_migrations (version, name, checksum) "
            "values ('9999', '9999_from_the_future', 'f00d')")
    r = linbat.run([linbat.LINBATD] + args + ["-c", conf], timeout=20)
    assert r.returncode != 0, "linbatd started on a newer database:\n" + r.stderr
    assert "9999" in r.stderr and "newer than this linbat" in r.stderr, r.stderr
    r = linbat.linbatctl("-c", conf, "migrate")
    assert r.returncode != 0 and "newer" in r.stdout + r.stderr, r.stdout + r.stderr


# make install ---------------------------------------------------------------------------

def test_make_install_puts_each_piece_where_debian_expects(tmp_path):
    dest = tmp_path / "root"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = linbat.run(["make", "-s", "-C", linbat.TOP_BUILDDIR, "install", "DESTDIR=%s" % dest,
                    "prefix=/usr", "sysconfdir=/etc"], timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    want = ["usr/sbin/linbatd", "usr/bin/linbatctl", "etc/linbat.conf.sample",
            "usr/share/man/man8/linbatd.8", "usr/share/man/man1/linbatctl.1",
            "usr/share/man/man5/linbat.conf.5"]
    src = linbat.TOP_SRCDIR
    # Every migration: an upgrade with one missing would stop at it.
    want += ["usr/share/linbat/migrations/" + n for n in os.listdir(os.path.join(src, "migrations"))
             if n.endswith(".sql")]
    missing = [p for p in want if not (dest / p).is_file()]
    assert not missing, "not installed: %s" % missing
    for p in ("usr/sbin/linbatd", "usr/bin/linbatctl"):
        assert os.access(dest / p, os.X_OK), p
    assert len([p for p in want if "/migrations/" in p]) >= 5
    # web/ (the inbox and the manager pages), file for file.
    assert files_under(os.path.join(src, "web")) == files_under(dest / "usr/share/linbat/web")


def files_under(top):
    """The files below top, as relative paths; empty if top does not exist."""
    return sorted(os.path.relpath(os.path.join(root, f), top)
                  for root, _, files in os.walk(top) for f in files)
