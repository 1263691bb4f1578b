"""Helpers for linbat's pytest suites: free ports, private PostgreSQL
clusters, and a running linbatd whose log is checked for errors.

Run with /usr/bin/python3 (Debian's pytest and psycopg2). The cluster
commands come from tests/lib/pg.sh, shared with tests/with-pg, so the initdb
and pg_ctl flags live in one place. HTTP uses urllib and plain sockets only.
"""

import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import psycopg2

TOP_SRCDIR = os.path.abspath(
    os.environ.get("top_srcdir")
    or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TOP_BUILDDIR = os.path.abspath(os.environ.get("top_builddir") or TOP_SRCDIR)
PG_SH = os.path.join(TOP_SRCDIR, "tests", "lib", "pg.sh")
LINBATD = os.path.join(TOP_BUILDDIR, "linbatd")
LINBATCTL = os.path.join(TOP_BUILDDIR, "linbatctl")

# LINBAT_VALGRIND=1 runs every Linbatd under valgrind's memcheck (see
# tests/valgrind-run): a definite leak or a memory error makes the daemon exit
# with VALGRIND_STATUS, which stop() reports with valgrind's own log. The
# daemon is then some ten times slower, so its start and stop get more time.
VALGRIND = os.environ.get("LINBAT_VALGRIND", "") not in ("", "0")
VALGRIND_STATUS = 97
VALGRIND_SLOWER = 12


def valgrind_args(log_path):
    """The valgrind command line that wraps linbatd, its report in log_path."""
    return ["valgrind", "--tool=memcheck", "--leak-check=full", "--show-leak-kinds=definite",
            "--errors-for-leak-kinds=definite", "--error-exitcode=%d" % VALGRIND_STATUS,
            "--num-callers=30", "--gen-suppressions=all",
            "--suppressions=" + os.path.join(TOP_SRCDIR, "tests", "valgrind.supp"),
            "--log-file=" + log_path]

# A log line at level ERROR ("2026-11-28T23:04:05.123+08:00 ERROR db: ..."),
# and what the sanitizers and libevent print when they find a fault.
ERROR_LINE = re.compile(
    r"^\S+ ERROR "
    r"|^==\d+==ERROR: "
    r"|runtime error: "
    r"|^\[err\] ")


class LogError(AssertionError):
    """A daemon's log holds lines at level ERROR that the test did not allow."""


def free_port():
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def refused_port():
    """A TCP port on 127.0.0.1 that refuses connections for the whole block:
    held bound but not listening, so that nothing else can take it (a port
    free_port returned may be taken meanwhile, even by the daemon under test
    listening on port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def run(args, timeout=30, **kw):
    """Run a command, capture its text output, never raise on its exit status."""
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


def error_lines(lines, allow=()):
    """Return the lines at level ERROR that no regex of allow matches."""
    allowed = [re.compile(a) for a in allow]
    return [ln.rstrip("\n") for ln in lines
            if ERROR_LINE.search(ln) and not any(a.search(ln) for a in allowed)]


def check_log(path, allow=()):
    """Raise LogError if the log file at path has an ERROR line not in allow."""
    with open(path, errors="replace") as f:
        bad = error_lines(f, allow)
    if bad:
        raise LogError("unexpected ERROR lines in %s:\n  %s" % (path, "\n  ".join(bad)))


def marker_allow(node):
    """Return the regexes of every @pytest.mark.log_allow(...) on a test item."""
    return [a for m in node.iter_markers("log_allow") for a in m.args]


def pg_sh(func, *args, timeout=60):
    """Call a function of tests/lib/pg.sh and return what it printed."""
    r = run(["sh", "-c", '. "$0" && "$@"', PG_SH, func] + [str(a) for a in args],
            timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("pg.sh %s %s failed:\n%s" % (func, " ".join(map(str, args)), r.stderr))
    return r.stdout.strip()


class Postgres:
    """A private PostgreSQL cluster in a temp dir on a free 127.0.0.1 port.

    start() makes it on first use and starts it again (same port, same data)
    after stop(); destroy() removes it. Usable as a context manager.
    """

    def __init__(self):
        self.dir = None
        self.port = None
        self._dbs = 0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.destroy()

    def start(self):
        """Create the cluster if needed and start it; return self."""
        if self.dir is None:
            self.dir = pg_sh("pg_mkdir")
            self.port = int(pg_sh("pg_setup", self.dir))
        elif not self.running():
            pg_sh("pg_start", self.dir, self.port)
        return self

    def stop(self):
        """Stop the server (fast shutdown: clients are disconnected)."""
        if self.dir is not None:
            pg_sh("pg_stop", self.dir)

    def restart(self):
        self.stop()
        return self.start()

    def running(self):
        return self.dir is not None and run(
            ["sh", "-c", '. "$0" && pg_running "$1"', PG_SH, self.dir]).returncode == 0

    def destroy(self):
        """Stop the server and remove its directory."""
        if self.dir is not None:
            pg_sh("pg_destroy", self.dir, timeout=180)
            self.dir = None

    @property
    def data_dir(self):
        return os.path.join(self.dir, "data")

    @property
    def log_path(self):
        return os.path.join(self.dir, "pg.log")

    def dsn(self, dbname="postgres"):
        return "host=127.0.0.1 port=%d user=postgres dbname=%s" % (self.port, dbname)

    def connect(self, dbname="postgres"):
        """Return a new autocommit psycopg2 connection to dbname."""
        conn = psycopg2.connect(self.dsn(dbname), connect_timeout=5)
        conn.autocommit = True
        return conn

    def query(self, sql, params=None, dbname="postgres"):
        """Run one statement and return its rows (empty list if it returns none)."""
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def create_database(self, name=None):
        """Create an empty database (named linbat_N unless given); return its name."""
        if name is None:
            self._dbs += 1
            name = "linbat_%d" % self._dbs
        self.query('create database "%s"' % name)
        return name


class Response:
    """An HTTP answer: status, headers (lower-case names) and body bytes."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:200])


def http(method, url, body=None, headers=None, timeout=5):
    """Send one request and return a Response, whatever its status."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, dict(e.headers), e.read())


def post_large(host, port, path, size, timeout=10):
    """POST size bytes and return the status code the server answers.

    Written over a plain socket because a server that rejects a body too
    large may answer and close before the client has sent it all; this
    stops sending as soon as an answer arrives or the peer closes.
    """
    chunk = b"x" * 65536
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(("POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/octet-stream\r\n"
                   "Content-Length: %d\r\nConnection: close\r\n\r\n" % (path, host, port, size))
                  .encode())
        sent = 0
        try:
            while sent < size and not select.select([s], [], [], 0)[0]:
                sent += s.send(chunk[:min(len(chunk), size - sent)])
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while b"\r\n" not in answer:
                data = s.recv(4096)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
    m = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    if not m:
        raise AssertionError("no HTTP status line in answer %r" % answer[:200])
    return int(m.group(1))


def wait_for(predicate, timeout, interval=0.05):
    """Poll predicate until it returns a true value or timeout seconds pass
    (VALGRIND_SLOWER times as long when every linbatd runs under valgrind);
    return that value, or the last false one."""
    deadline = time.monotonic() + timeout * (VALGRIND_SLOWER if VALGRIND else 1)
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def write_config(path, sections):
    """Write an INI file from {section: {key: value}} and return path."""
    with open(path, "w") as f:
        for name, keys in sections.items():
            f.write("[%s]\n" % name)
            for k, v in keys.items():
                f.write("%s = %s\n" % (k, v))
            f.write("\n")
    return path


def linbat_config(dsn, port, extra=None):
    """Return the config sections for a linbatd on 127.0.0.1:port using dsn.

    extra is {section: {key: value}}, merged over the defaults; a value of
    None removes that key.
    """
    sections = {
        "daemon": {
            "listen": "127.0.0.1:%d" % port,
            "public_url": "http://127.0.0.1:%d" % port,
            "migrations_dir": os.path.join(TOP_SRCDIR, "migrations"),
            "web_dir": os.path.join(TOP_SRCDIR, "web"),
        },
        "database": {"url": dsn, "pool_size": "4"},
    }
    for name, keys in (extra or {}).items():
        section = sections.setdefault(name, {})
        for k, v in keys.items():
            if v is None:
                section.pop(k, None)
            else:
                section[k] = str(v)
    return sections


def linbatctl(*args, timeout=60):
    """Run $top_builddir/linbatctl with args; return the CompletedProcess."""
    return run([LINBATCTL] + list(args), timeout=timeout)


class Linbatd:
    """One linbatd process under test.

    Writes workdir/NAME.conf, runs `linbatd --migrate -c conf` with stdout and
    stderr in workdir/NAME.log, and waits until /healthz answers 200. close()
    stops it (SIGTERM, exit 0 within 5 s) and fails if the log holds an ERROR
    line that no regex of allow matches. Under valgrind (valgrind=True, or
    LINBAT_VALGRIND=1 in the environment) its report is in
    workdir/NAME.valgrind.N.log for the Nth start.
    """

    def __init__(self, dsn, workdir, extra=None, allow=(), args=("--migrate",), name="linbatd",
                 valgrind=None):
        self.port = free_port()
        self.valgrind = VALGRIND if valgrind is None else valgrind
        self.slower = VALGRIND_SLOWER if self.valgrind else 1
        self.starts = 0
        self.url = "http://127.0.0.1:%d" % self.port
        self.allow = list(allow)
        self.args = list(args)
        self.conf_path = os.path.join(workdir, name + ".conf")
        self.log_path = os.path.join(workdir, name + ".log")
        self.valgrind_log = os.path.join(workdir, name + ".valgrind.%d.log")
        self.config = linbat_config(dsn, self.port, extra)
        self.proc = None
        self.returncode = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=10):
        """Start the daemon and wait until /healthz answers 200; return self."""
        write_config(self.conf_path, self.config)
        cmd = [LINBATD] + self.args + ["-c", self.conf_path]
        self.starts += 1
        if self.valgrind:
            cmd = valgrind_args(self.valgrind_log % self.starts) + cmd
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.returncode = None
        self.wait_healthy(timeout * self.slower)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def healthz(self, timeout=1):
        """Return the status of GET /healthz, or None if nothing answered."""
        try:
            return self.get("/healthz", timeout=timeout).status
        except OSError:
            return None

    def wait_healthy(self, timeout=10):
        """Wait until /healthz answers 200; fail with the log if it does not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                self.returncode = self.proc.returncode
                raise AssertionError("linbatd exited with status %s before /healthz answered 200:\n%s"
                                     % (self.returncode, self.log_tail()))
            if self.healthz() == 200:
                return
            time.sleep(0.05)
        raise AssertionError("linbatd: /healthz did not answer 200 within %g s:\n%s"
                             % (timeout, self.log_tail()))

    def request(self, method, path, body=None, headers=None, timeout=5):
        return http(method, self.url + path, body, headers, timeout)

    def get(self, path, timeout=5):
        return self.request("GET", path, timeout=timeout)

    def post(self, path, body, headers=None, timeout=5):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = dict(headers or {}, **{"Content-Type": "application/json"})
        return self.request("POST", path, body, headers, timeout)

    def stop(self, sig=signal.SIGTERM, timeout=5):
        """Send sig and assert that the daemon exits with status 0 within timeout s.

        Also fails if the daemon had already exited without being told to."""
        if self.proc is None or self.returncode is not None:
            return
        if self.proc.poll() is not None:
            self.returncode = self.proc.returncode
            raise AssertionError("linbatd exited by itself with status %d:\n%s"
                                 % (self.returncode, self.log_tail()))
        self.proc.send_signal(sig)
        timeout *= self.slower
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("linbatd did not exit within %g s of %s:\n%s"
                                 % (timeout, signal.Signals(sig).name, self.log_tail()))
        if self.valgrind and self.returncode == VALGRIND_STATUS:
            with open(self.valgrind_log % self.starts, errors="replace") as f:
                raise AssertionError("valgrind found errors or definite leaks in linbatd (%s):\n%s"
                                     % (self.valgrind_log % self.starts, f.read()))
        assert self.returncode == 0, "linbatd exited with status %d after %s:\n%s" % (
            self.returncode, signal.Signals(sig).name, self.log_tail())

    def kill(self):
        """Kill the daemon at once (SIGKILL) and reap it."""
        if self.alive():
            self.proc.kill()
            self.returncode = self.proc.wait()

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def check_log(self, allow=()):
        """Raise LogError on an ERROR line matched neither by self.allow nor allow."""
        if os.path.exists(self.log_path):
            check_log(self.log_path, self.allow + list(allow))

    def close(self, allow=()):
        """Stop the daemon if it runs, then check its log (see check_log)."""
        try:
            self.stop()
        finally:
            self.check_log(allow)


def copy_migrations(dest):
    """Copy the migrations/*.sql of the source tree into dest; return their names."""
    src = os.path.join(TOP_SRCDIR, "migrations")
    names = sorted(n for n in os.listdir(src) if n.endswith(".sql"))
    for n in names:
        shutil.copy(os.path.join(src, n), os.path.join(dest, n))
    return names
