"""Acceptance tests of the foundation: config checking, migrations, /healthz
that follows the database, clean shutdown, body cap, JSON errors, --version.
"""

import os
import re
import signal
import subprocess
import time

import psycopg2
import pytest

import linbat

SAMPLE_CONF = os.path.join(linbat.TOP_SRCDIR, "etc", "linbat.conf.sample")


def conf_for(tmp_path, dsn, extra=None, name="linbat.conf"):
    """Write a config for dsn (port unused) and return its path."""
    return linbat.write_config(str(tmp_path / name),
                               linbat.linbat_config(dsn, linbat.free_port(), extra))


def migrations_rows(dsn):
    """Return every row of linbat.schema_migrations, in version order."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("select * from linbat.schema_migrations order by 1")
            return cur.fetchall()
    finally:
        conn.close()


def test_sample_config_is_valid():
    r = linbat.run([linbat.LINBATD, "-t", "-c", SAMPLE_CONF], cwd=linbat.TOP_SRCDIR)
    assert r.returncode == 0, "linbatd -t rejects etc/linbat.conf.sample:\n" + r.stderr


@pytest.mark.parametrize("section", ["daemon", "database"])
def test_unknown_key_is_refused_with_its_name_and_line(tmp_path, db, section):
    path = conf_for(tmp_path, db)
    with open(path) as f:
        lines = f.read().split("\n")
    at = lines.index("[%s]" % section) + 1
    lines.insert(at, "colour_of_the_sky = blue")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    r = linbat.run([linbat.LINBATD, "-t", "-c", path])
    assert r.returncode != 0, "linbatd -t accepted an unknown key"
    assert "colour_of_the_sky" in r.stderr, "the error does not name the key:\n" + r.stderr
    assert re.search(r"\b%d\b" % (at + 1), r.stderr), (
        "the error does not give line %d:\n%s" % (at + 1, r.stderr))


def test_second_migrate_applies_nothing(tmp_path, db):
    conf = conf_for(tmp_path, db)
    first = linbat.linbatctl("-c", conf, "migrate")
    assert first.returncode == 0, first.stdout + first.stderr
    applied = migrations_rows(db)
    assert applied, "linbatctl migrate recorded no migration in linbat.schema_migrations"
    second = linbat.linbatctl("-c", conf, "migrate")
    assert second.returncode == 0, second.stdout + second.stderr
    again = migrations_rows(db)
    assert again == applied, (
        "the second linbatctl migrate applied something: schema_migrations went from\n"
        "%r\nto\n%r" % (applied, again))


def test_edited_migration_is_refused_by_name(tmp_path, db):
    mig = tmp_path / "migrations"
    mig.mkdir()
    names = linbat.copy_migrations(str(mig))
    assert names, "migrations/ holds no .sql file"
    conf = conf_for(tmp_path, db, {"daemon": {"migrations_dir": str(mig)}})
    r = linbat.linbatctl("-c", conf, "migrate")
    assert r.returncode == 0, r.stdout + r.stderr

    with open(mig / names[0], "a") as f:
        f.write("\n-- edited after it was applied\n")
    r = linbat.linbatctl("-c", conf, "migrate")
    assert r.returncode != 0, "linbatctl migrate accepted an edited migration"
    assert names[0] in r.stdout + r.stderr, (
        "linbatctl does not name %s:\n%s" % (names[0], r.stdout + r.stderr))

    d = subprocess.Popen([linbat.LINBATD, "--migrate", "-c", conf],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = d.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        d.kill()
        d.communicate()
        pytest.fail("linbatd --migrate kept running with an edited migration")
    assert d.returncode != 0, "linbatd --migrate accepted an edited migration"
    assert names[0] in out + err, "linbatd does not name %s:\n%s" % (names[0], out + err)


def test_healthz_answers_json(linbatd):
    r = linbatd.get("/healthz")
    assert r.status == 200, r
    assert isinstance(r.json(), dict)


def test_healthz_follows_the_database(private_pg, start_linbatd):
    d = start_linbatd(dsn=private_pg.dsn(private_pg.create_database()))
    pid = d.pid

    private_pg.stop()
    stopped = time.monotonic()
    assert linbat.wait_for(lambda: d.healthz() == 503, 2), "/healthz still says %s %.1f s after PostgreSQL stopped" % (
        d.healthz(), time.monotonic() - stopped)

    private_pg.start()
    started = time.monotonic()
    assert linbat.wait_for(lambda: d.healthz() == 200, 2), "/healthz still says %s %.1f s after PostgreSQL came back" % (
        d.healthz(), time.monotonic() - started)
    assert d.alive() and d.pid == pid, "linbatd did not survive the database restart"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_stops_cleanly(linbatd, sig):
    linbatd.stop(sig, timeout=5)
    assert linbatd.returncode == 0


def test_body_over_the_default_cap_is_413(linbatd):
    status = linbat.post_large("127.0.0.1", linbatd.port, "/api/v1/ping", 1024 * 1024 + 1)
    assert status == 413


def test_max_body_sets_the_cap(start_linbatd):
    d = start_linbatd(extra={"daemon": {"max_body": "1K"}})
    assert linbat.post_large("127.0.0.1", d.port, "/api/v1/ping", 1025) == 413
    assert linbat.post_large("127.0.0.1", d.port, "/api/v1/ping", 1000) != 413


def test_unknown_path_is_404_with_a_json_error(linbatd):
    r = linbatd.get("/no/such/path")
    assert r.status == 404, r
    body = r.json()
    err = body.get("error")
    assert isinstance(err, dict), body
    assert isinstance(err.get("code"), str) and err["code"], body
    assert isinstance(err.get("message"), str) and err["message"], body


def test_version_names_the_libraries():
    r = linbat.run([linbat.LINBATD, "--version"])
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    for lib in ("libevent", "libpq", "libcurl", "jansson", "openssl", "libsodium"):
        assert re.search(r"(?im)^.*\b%s\b\D{0,20}\d+\.\d+" % lib, out), (
            "--version does not give the version of %s:\n%s" % (lib, out))
