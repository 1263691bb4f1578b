"""Tests of the test harness itself: each check must be able to fail.

A log scan that never fires, a with-pg that leaks clusters or hides exit
statuses, or a counter that misreads a failure would make every other test
worthless without anyone noticing; these tests feed them known input.
"""

import os
import signal
import socket
import subprocess
import textwrap
import time

import psycopg2
import pytest

import linbat

WITH_PG = os.path.join(linbat.TOP_SRCDIR, "tests", "with-pg")
SCRIPTS_TEST = os.path.join(linbat.TOP_SRCDIR, "scripts", "test")
RUN_SH = os.path.join(linbat.TOP_SRCDIR, "tests", "integration", "run.sh")

LOG = textwrap.dedent("""\
    2026-11-28T23:04:05.123+08:00 INFO http: Listening. addr=127.0.0.1:8080
    2026-11-28T23:04:05.200+08:00 WARN db: Slow query. ms=900
    2026-11-28T23:04:05.300+08:00 INFO http: Request done. path=/x error=ERROR
    """)
ERROR = "2026-11-28T23:04:06.000+08:00 ERROR db: Connection lost. reason=EOF\n"


def write(path, text):
    path.write_text(text)
    return str(path)


def test_check_log_passes_clean_log(tmp_path):
    linbat.check_log(write(tmp_path / "d.log", LOG))


def test_check_log_fails_on_error_line(tmp_path):
    path = write(tmp_path / "d.log", LOG + ERROR)
    with pytest.raises(linbat.LogError, match="Connection lost"):
        linbat.check_log(path)


def test_check_log_allowlist_is_a_regex_that_must_match(tmp_path):
    path = write(tmp_path / "d.log", LOG + ERROR)
    linbat.check_log(path, allow=[r"db: Connection lost\. reason=\w+"])
    with pytest.raises(linbat.LogError):
        linbat.check_log(path, allow=[r"db: Query failed"])


@pytest.mark.parametrize("line", [
    "==4242==ERROR: AddressSanitizer: heap-use-after-free on address 0x6020",
    "src/http.c:42:7: runtime error: signed integer overflow",
    "[err] evhttp_bind_socket: Address already in use",
])
def test_check_log_fails_on_sanitizer_and_libevent_errors(tmp_path, line):
    with pytest.raises(linbat.LogError):
        linbat.check_log(write(tmp_path / "d.log", LOG + line + "\n"))


@pytest.mark.log_allow("first", "second")
def test_log_allow_marker_reaches_the_allowlist(request):
    assert linbat.marker_allow(request.node) == ["first", "second"]


def test_linbatd_close_checks_its_log(tmp_path):
    d = linbat.Linbatd("dbname=unused", str(tmp_path))
    write(tmp_path / "linbatd.log", LOG + ERROR)
    with pytest.raises(linbat.LogError):
        d.close()
    d.close(allow=["Connection lost"])


def fake_daemon(tmp_path, script):
    """A Linbatd whose process is a shell script, to test stop() without linbatd."""
    d = linbat.Linbatd("dbname=unused", str(tmp_path))
    d.proc = subprocess.Popen(["sh", "-c", script])
    return d


def test_stop_accepts_a_clean_exit(tmp_path):
    d = fake_daemon(tmp_path, 'trap "exit 0" TERM; sleep 5 & wait')
    time.sleep(0.2)
    d.stop()
    assert d.returncode == 0


def test_stop_fails_on_a_bad_exit_status(tmp_path):
    d = fake_daemon(tmp_path, 'trap "exit 4" TERM; sleep 5 & wait')
    time.sleep(0.2)
    with pytest.raises(AssertionError, match="status 4"):
        d.stop()


def test_stop_fails_when_the_daemon_hangs(tmp_path):
    d = fake_daemon(tmp_path, 'trap "" TERM; sleep 5 & wait')
    time.sleep(0.2)
    with pytest.raises(AssertionError, match="did not exit"):
        d.stop(timeout=0.5)
    assert not d.alive()


def test_stop_fails_when_the_daemon_died_by_itself(tmp_path):
    d = fake_daemon(tmp_path, "exit 3")
    d.proc.wait()
    with pytest.raises(AssertionError, match="by itself with status 3"):
        d.close()


LEAKER = r"""
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void)
{
	char *p = malloc(64);
	sigset_t term;
	int sig;

	strcpy(p, "lost");
	p = NULL;
	/* blocked before "ready", so a SIGTERM sent at once waits for sigwait */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);
	puts("ready");
	fflush(stdout);
	sigwait(&term, &sig);
	return 0;
}
"""


def test_valgrind_failure_is_reported_with_its_log(tmp_path):
    """A daemon under valgrind that leaks definitely fails stop(), with the report."""
    src = tmp_path / "leaker.c"
    src.write_text(LEAKER)
    exe = str(tmp_path / "leaker")
    r = linbat.run(["cc", "-g", "-O0", "-o", exe, str(src)])
    assert r.returncode == 0, r.stderr
    d = linbat.Linbatd("dbname=unused", str(tmp_path), valgrind=True)
    d.starts = 1
    d.proc = subprocess.Popen(linbat.valgrind_args(d.valgrind_log % 1) + [exe], stdout=subprocess.PIPE, text=True)
    assert d.proc.stdout.readline() == "ready\n"
    with pytest.raises(AssertionError, match=r"(?s)valgrind found.*definitely lost: 64 bytes"):
        d.stop()
    assert d.returncode == linbat.VALGRIND_STATUS


def test_valgrind_runs_linbatd_clean(db, tmp_path):
    """linbatd under valgrind (as tests/valgrind-run runs every daemon): it
    starts, answers, and stops with no definite leak and no memory error."""
    d = linbat.Linbatd(db, str(tmp_path), valgrind=True,
                       extra={"channel t1": {"type": "test", "record": str(tmp_path / "t1.jsonl")}})
    try:
        d.start()
        assert d.get("/healthz").status == 200
    finally:
        d.close()
    with open(d.valgrind_log % 1) as f:
        report = f.read()
    assert "ERROR SUMMARY: 0 errors" in report, report


def test_linbat_config_merges_extra_sections():
    conf = linbat.linbat_config("dbname=x", 1234, {
        "daemon": {"max_body": 1024, "web_dir": None}, "whatsapp": {"token": "t"}})
    assert conf["daemon"]["listen"] == "127.0.0.1:1234"
    assert conf["daemon"]["max_body"] == "1024"
    assert "web_dir" not in conf["daemon"]
    assert conf["whatsapp"] == {"token": "t"}
    assert conf["database"]["url"] == "dbname=x"


def test_free_port_can_be_bound():
    port = linbat.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_postgres_stops_and_starts_on_the_same_port():
    with linbat.Postgres() as pg:
        name = pg.create_database()
        pg.query("create table t (x int)", dbname=name)
        pg.query("insert into t values (1)", dbname=name)
        port = pg.port
        pg.stop()
        assert not pg.running()
        with pytest.raises(psycopg2.OperationalError):
            pg.connect(name)
        pg.start()
        assert pg.port == port
        assert pg.query("select x from t", dbname=name) == [(1,)]
        where = pg.dir
    assert not os.path.exists(where)


def test_with_pg_exports_the_cluster_and_returns_the_status(tmp_path):
    script = ('echo "$LINBAT_TEST_PGDATA"; "$LINBAT_TEST_PGBIN/psql" -Atc "select 6 * 7"; '
              'echo "$LINBAT_TEST_DSN|$PGHOST|$PGUSER"; exit 7')
    r = linbat.run([WITH_PG, "sh", "-c", script])
    assert r.returncode == 7, r.stderr
    data, answer, env = r.stdout.split("\n")[:3]
    assert answer == "42"
    assert env.startswith("host=127.0.0.1 port=") and env.endswith("|127.0.0.1|postgres")
    assert not os.path.exists(data), "with-pg left its cluster behind"


def test_with_pg_removes_the_cluster_when_killed():
    p = subprocess.Popen([WITH_PG, "sh", "-c", 'echo "$LINBAT_TEST_PGDATA"; exec sleep 60'],
                         stdout=subprocess.PIPE, text=True)
    data = p.stdout.readline().strip()
    assert os.path.isdir(data)
    p.send_signal(signal.SIGTERM)
    assert p.wait(15) != 0
    assert not os.path.exists(data), "with-pg left its cluster behind after SIGTERM"


def scripts_test(*command, cwd=None):
    """Run a command in bash after sourcing scripts/test (which then only
    defines its functions); return its output."""
    r = linbat.run(["bash", "-c", 'src=$1; shift; . "$src" && eval "$@"', "harness",
                    SCRIPTS_TEST] + list(command), cwd=cwd)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_scripts_test_counts_cmocka(tmp_path):
    log = write(tmp_path / "test-util.log", textwrap.dedent("""\
        [==========] tests: Running 3 test(s).
        [  PASSED  ] 2 test(s).
        [  FAILED  ] 1 test(s), listed below:
        [  FAILED  ] test_conf_unknown_key
        [==========] more: Running 4 test(s).
        [  PASSED  ] 4 test(s).
        """))
    assert scripts_test("count_cmocka", log) == "6 1"


def test_scripts_test_counts_pg_prove(tmp_path):
    log = write(tmp_path / "run.log", textwrap.dedent("""\
        tests/sql/t/ingest.sql .. ok
        tests/sql/t/router.sql .. Failed 2/9 subtests

        Test Summary Report
        -------------------
        tests/sql/t/router.sql (Wstat: 0 Tests: 9 Failed: 2)
          Failed tests:  3, 5
        Files=2, Tests=21,  1 wallclock secs ( 0.02 usr +  0.00 sys =  0.02 CPU)
        Result: FAIL
        """))
    assert scripts_test("count_pg_prove", log) == "19 2"


def test_scripts_test_counts_junit(tmp_path):
    xml = write(tmp_path / "integration.xml",
                '<testsuites><testsuite name="pytest" errors="1" failures="2" skipped="1" '
                'tests="10"/></testsuites>')
    assert scripts_test("count_junit", xml) == "6 3"


def test_scripts_test_counts_a_failed_suite_without_counts_as_one_failure(tmp_path):
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    write(tmp_path / "tests" / "unit" / "test-x.log", "Segmentation fault\n")
    write(tmp_path / "tests" / "unit" / "test-x.trs", ":global-test-result: FAIL\n")
    assert scripts_test('RESULTS=none; count_suite tests/unit/test-x.log; '
                        'echo "$total_passed $total_failed"', cwd=str(tmp_path)) == "0 1"


def test_scripts_test_prefers_the_count_file(tmp_path):
    (tmp_path / "tests" / "sql").mkdir(parents=True)
    (tmp_path / "results").mkdir()
    write(tmp_path / "results" / "sql.count", "12 0\n")
    write(tmp_path / "tests" / "sql" / "run.log", "Files=1, Tests=3, 0 wallclock secs\n")
    write(tmp_path / "tests" / "sql" / "run.trs", ":global-test-result: PASS\n")
    assert scripts_test('RESULTS=results; count_suite tests/sql/run.log; '
                        'echo "$total_passed $total_failed"', cwd=str(tmp_path)) == "12 0"


def test_run_sh_fails_when_pytest_collects_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    env = dict(os.environ, LINBAT_RESULTS_DIR=str(tmp_path / "results"))
    r = linbat.run([RUN_SH, str(tmp_path / "empty")], env=env, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "collected no tests" in r.stderr
