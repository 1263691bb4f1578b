"""scripts/demo, the README's first command, in this built tree: it starts
PostgreSQL, wa-emu, Kannel, aiosmtpd and Dovecot, loads the demo data and
runs linbatd; its investors write in on all three channels and stay one
investor each; SIGTERM stops everything it started."""

import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import psycopg2
import pytest

import linbat

DEMO = os.path.join(linbat.TOP_SRCDIR, "scripts", "demo")


def processes_under(path):
    """PIDs whose command line mentions path (the demo's folder)."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if path.encode() in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


@pytest.fixture
def demo():
    if linbat.TOP_BUILDDIR != linbat.TOP_SRCDIR:
        pytest.skip("scripts/demo runs the binaries of the source tree; this build is elsewhere")
    # Under /tmp and open to all: as root, PostgreSQL runs as postgres.
    run = tempfile.mkdtemp(prefix="linbat-demo-")
    os.chmod(run, 0o755)
    port = linbat.free_port()
    out = open(os.path.join(run, "demo.out"), "w")
    p = subprocess.Popen([DEMO], cwd=linbat.TOP_SRCDIR, stdout=out, stderr=subprocess.STDOUT,
                         env=dict(os.environ, LINBAT_DEMO_RUN=run, LINBAT_DEMO_PORT=str(port), LINBAT_DEMO_BUILT="1"),
                         start_new_session=True)
    out.close()
    try:
        yield p, run, port
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        for pid in processes_under(run):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(run, ignore_errors=True)


def listening(peers):
    """(host, port) of Kannel's sendsms, aiosmtpd and Dovecot, from peers.env."""
    urls = [peers["SENDSMS_URL"], peers["IMAP_URL"]]
    return [("127.0.0.1", int(u.split("//")[1].split("/")[0].split(":")[1])) for u in urls] + \
        [("127.0.0.1", int(peers["SMTP_PORT"]))]


def output(run):
    with open(os.path.join(run, "demo.out"), errors="replace") as f:
        return f.read()


def test_demo_runs_all_channels_and_stops_everything(demo):
    p, run, port = demo
    assert linbat.wait_for(lambda: "Demo traffic:" in output(run) or p.poll() is not None, 120), output(run)[-3000:]
    assert p.poll() is None, output(run)[-3000:]
    with open(os.path.join(run, "pg", "port")) as f:
        dsn = "host=127.0.0.1 port=%s dbname=linbat user=postgres" % f.read().strip()

    def by_channel():
        with psycopg2.connect(dsn) as c, c.cursor() as cur:
            cur.execute("select i.nib, array_agg(distinct id.kind order by id.kind), count(distinct m.conversation_id) "
                        "from linbat.message m join linbat.identity id on id.id = m.identity_id "
                        "join linbat.investor i on i.id = id.investor_id where m.direction = 'in' group by 1")
            rows = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
        c.close()
        return rows
    want = {"8120001234567": (["email", "whatsapp"], 1), "9120007654321": (["sms", "whatsapp"], 1),
            "1234500000001": (["whatsapp"], 1)}
    assert linbat.wait_for(lambda: by_channel() == want, 30), by_channel()
    with psycopg2.connect(dsn) as c, c.cursor() as cur:
        cur.execute("select status from linbat.campaign where name = 'Pengingat LKPM'")
        assert cur.fetchall() == [("active",)]
        cur.execute("select count(*) from linbat.message where direction = 'out' and author_operator is not null")
        assert cur.fetchone()[0] == 1
    c.close()
    assert linbat.http("GET", "http://127.0.0.1:%d/healthz" % port).status == 200
    with open(os.path.join(run, "peers.env")) as f:
        peers = dict(shlex.split(line)[0].split("=", 1) for line in f if "=" in line)
    for addr in listening(peers):
        socket.create_connection(addr, timeout=5).close()

    # SIGTERM to the script alone (Ctrl-C would reach every process of the
    # group, the peers' own included): the script must stop what it started.
    p.send_signal(signal.SIGTERM)
    p.wait(60)
    assert p.returncode == 0, output(run)[-3000:]
    text = output(run)
    for what in ("stopping linbatd", "stopping Kannel, aiosmtpd and Dovecot", "stopping the WhatsApp emulator",
                 "stopping PostgreSQL"):
        assert what in text, text[-3000:]
    deadline = time.monotonic() + 10
    while processes_under(run) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_under(run) == []
    # Dovecot keeps its folder elsewhere: nothing may listen on the peers' ports.
    for addr in listening(peers):
        with pytest.raises(OSError):
            socket.create_connection(addr, timeout=1).close()
