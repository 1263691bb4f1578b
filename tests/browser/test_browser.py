"""Browser tests of the web inbox and the manager pages: Debian's Chromium
driven by playwright-core (tests/browser/node_modules, from package-lock.json)
against a real linbatd, PostgreSQL and wa-emu. Each test starts the stack,
seeds operators and investors, then runs one node scenario (tests/browser/
scenario-*.mjs) that drives the pages and saves a screenshot per step under
tests/browser/artifacts/. The scenario prints "ok - STEP" per step and exits
non-zero at the first failure."""

import json
import os
import re
import shutil
import signal
import subprocess

import psycopg2
import pytest

import linbat

HERE = os.path.dirname(os.path.abspath(__file__))
NODE = shutil.which("node")
CHROMIUM = os.environ.get("LINBAT_CHROMIUM", "/usr/bin/chromium")
TOKEN = "EAAweb-access-token"
SECRET = "web-app-secret-3f1a"
VERIFY = "web-verify-token"
PNID = "106540352242922"
PASSWORD = "rahasia-sekali"
XSS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    "\"><svg onload=alert(3)>",
    "javascript:alert(4)",
    "<iframe srcdoc=\"<script>parent.alert(5)</script>\"></iframe>",
]



def check_tools():
    """Fail (not skip: scripts/bootstrap installs them) when a tool is missing."""
    assert NODE is not None, "node is not installed (scripts/bootstrap installs it)"
    assert os.path.isdir(os.path.join(HERE, "node_modules", "playwright-core")), \
        "tests/browser/node_modules is missing: run scripts/bootstrap (npm ci in tests/browser)"
    assert os.access(CHROMIUM, os.X_OK), "%s is missing (scripts/bootstrap installs chromium)" % CHROMIUM


def sql(dsn, statement, params=None):
    with psycopg2.connect(dsn) as c, c.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else []


def add_operator(dsn, email, name, role="operator", capacity=5):
    r = linbat.run([linbat.LINBATCTL, "-d", dsn, "operator", "add", "--email", email, "--name", name,
                    "--role", role, "--capacity", str(capacity)], input=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr


class WaEmu:
    """wa-emu on a port chosen up front, posting signed webhooks to linbatd."""

    def __init__(self, workdir, port):
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        self.workdir = workdir
        self.proc = None

    def start(self, webhook):
        binary = os.path.join(linbat.TOP_BUILDDIR, "tests", "emulators", "wa-emu")
        self.log = open(os.path.join(self.workdir, "wa-emu.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:%d" % self.port, "--token", TOKEN, "--phone-number-id", PNID,
             "--webhook", webhook, "--app-secret", SECRET, "--status-delay-ms", "300"],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        assert re.fullmatch(r"listening \d+\n", line), "wa-emu did not start: %r" % line

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=5)
        if self.proc is not None:
            self.proc.stdout.close()
            self.log.close()


@pytest.fixture
def stack(start_linbatd, db, tmp_path):
    """linbatd with a WhatsApp instance on wa-emu, three operators and a few investors."""
    emu = WaEmu(str(tmp_path), linbat.free_port())
    wa = {"type": "whatsapp", "phone_number_id": PNID, "access_token": TOKEN, "app_secret": SECRET,
          "verify_token": VERIFY, "api_base": emu.url + "/v21.0", "template_name": "lkpm_balasan",
          "template_language": "id"}
    d = start_linbatd(extra={"channel wa1": wa, "scheduler": {"interval": "1s"}})
    emu.start(d.url + "/webhooks/wa1")
    add_operator(db, "ani@dpmptsp.example.go.id", "Ani", capacity=1)
    add_operator(db, "budi@dpmptsp.example.go.id", "Budi", capacity=3)
    add_operator(db, "mgr@dpmptsp.example.go.id", "Manajer", role="manager")
    csv = tmp_path / "investors.csv"
    csv.write_text("nib,company_name,scale,kbli,district,whatsapp\n"
                   "8100000000001,PT Sulawesi Maju,besar,47111,Kota Makassar,6281300000001\n"
                   "8100000000002,PT Dua Sejahtera,besar,10710,Kab. Gowa,6281300000002\n"
                   "8100000000003,%s,besar,47111,Kota Makassar,6281300000003\n" % XSS[0])
    r = linbat.linbatctl("-d", db, "investor", "import", str(csv))
    assert r.returncode == 0, r.stdout + r.stderr
    # today (WITA) is the deadline of the current quarter, so a campaign with offset 0 sends today
    sql(db, "insert into linbat.lkpm_deadline_override (period, deadline, source) "
        "select linbat.lkpm_current_period('besar', d), d, 'test' "
        "from (select (now() at time zone 'Asia/Makassar')::date as d) x")
    yield {"daemon": d, "emu": emu, "dsn": db}
    emu.stop()


def run_scenario(name, stack, **env):
    """Run tests/browser/scenario-NAME.mjs against the stack; fail with its output."""
    check_tools()
    artifacts = os.path.join(HERE, "artifacts", name)
    shutil.rmtree(artifacts, ignore_errors=True)
    os.makedirs(artifacts)
    e = dict(os.environ, BASE_URL=stack["daemon"].url, WA_EMU_URL=stack["emu"].url, ARTIFACTS=artifacts,
             CHROMIUM=CHROMIUM, PASSWORD=PASSWORD, XSS=json.dumps(XSS), **env)
    r = subprocess.run([NODE, os.path.join(HERE, "scenario-%s.mjs" % name)], env=e, capture_output=True,
                       text=True, timeout=240)
    out = r.stdout + r.stderr
    print(out)
    assert r.returncode == 0, "scenario %s failed:\n%s" % (name, out)
    return out


def test_operator_replies_live_and_second_operator_sees_the_queue(stack):
    out = run_scenario("inbox", stack)
    assert "ok - resolved" in out and "ok - queue moved" in out


def test_manager_creates_previews_activates_and_sees_the_sends(stack):
    out = run_scenario("campaign", stack)
    assert "ok - dashboard shows the sends" in out


def test_user_text_is_only_text(stack):
    # an email whose subject, sender name and body are payloads, as the email adapter stores it
    sql(stack["dsn"], "select linbat.channel_register('mail1', 'email')")
    for i, p in enumerate(XSS):
        sql(stack["dsn"], "select linbat.ingest_inbound('mail1', 'email', %s, %s, %s, 'text', %s, now(), %s)",
            ("xss%d@example.com" % i, "<xss-%d@example.com>" % i, p, json.dumps({"subject": p}), p))
    out = run_scenario("xss", stack)
    assert "ok - no script ran" in out
