"""linbatctl lkpm deadline: the next LKPM period and deadline of a scale on a
date, asked of the calendar in the database, on both sides of the change of
rule on 2025-10-02 and of the year end, and the errors a user can make.
"""

import os

import pytest

import linbat

MIGRATIONS = os.path.join(linbat.TOP_SRCDIR, "migrations")

# (scale, date, what linbatctl prints)
CASES = [
    # kecil: semesters
    ("kecil", "2025-07-05", "2025-S1 2025-07-10"),
    ("kecil", "2025-07-10", "2025-S1 2025-07-10"),
    ("kecil", "2025-07-11", "2025-S2 2026-01-15"),
    ("kecil", "2025-12-31", "2025-S2 2026-01-15"),
    ("kecil", "2026-01-15", "2025-S2 2026-01-15"),
    ("kecil", "2026-01-16", "2026-S1 2026-07-15"),
    # menengah: quarters; Q3 2025 is due under the rule in force on 1 October
    ("menengah", "2025-07-11", "2025-Q3 2025-10-10"),
    ("menengah", "2025-10-01", "2025-Q3 2025-10-10"),
    ("menengah", "2025-10-02", "2025-Q3 2025-10-10"),
    ("menengah", "2025-10-10", "2025-Q3 2025-10-10"),
    ("menengah", "2025-10-11", "2025-Q4 2026-01-15"),
    # besar: quarters, across the year end
    ("besar", "2025-04-11", "2025-Q2 2025-07-10"),
    ("besar", "2025-10-11", "2025-Q4 2026-01-15"),
    ("besar", "2025-12-31", "2025-Q4 2026-01-15"),
    ("besar", "2026-01-05", "2025-Q4 2026-01-15"),
    ("besar", "2026-01-16", "2026-Q1 2026-04-15"),
    ("besar", "2026-04-15", "2026-Q1 2026-04-15"),
    # mikro files no LKPM
    ("mikro", "2025-07-05", "none"),
    ("mikro", "2026-01-05", "none"),
]

# (arguments after "lkpm", exit status, what stderr says)
ERRORS = [
    (["deadline", "--scale", "raksasa", "--date", "2026-01-05"], 2, 'unknown scale "raksasa"'),
    (["deadline", "--scale", "Besar", "--date", "2026-01-05"], 2, 'unknown scale "Besar"'),
    (["deadline", "--scale", "besar", "--date", "2026-02-30"], 2, 'invalid date "2026-02-30"'),
    (["deadline", "--scale", "besar", "--date", "2025-02-29"], 2, 'invalid date "2025-02-29"'),
    (["deadline", "--scale", "besar", "--date", "2026-1-5"], 2, 'invalid date "2026-1-5"'),
    (["deadline", "--scale", "besar", "--date", "05-01-2026"], 2, 'invalid date "05-01-2026"'),
    (["deadline", "--scale", "besar", "--date", "2026-01-05x"], 2, 'invalid date "2026-01-05x"'),
    (["deadline", "--scale", "besar", "--date", "today"], 2, 'invalid date "today"'),
    (["deadline", "--scale", "besar"], 2, "usage: linbatctl lkpm deadline"),
    (["deadline", "--date", "2026-01-05"], 2, "usage: linbatctl lkpm deadline"),
    (["deadline", "--scale", "besar", "--date", "2026-01-05", "extra"], 2, "usage: linbatctl lkpm deadline"),
    (["deadline", "--period", "2026-Q1"], 2, "usage: linbatctl lkpm deadline"),
    ([], 2, "usage: linbatctl lkpm deadline"),
    (["calendar"], 2, "usage: linbatctl lkpm deadline"),
    # before the calendar's first rule: the database says so
    (["deadline", "--scale", "besar", "--date", "2020-02-01"], 1, "no LKPM rule is in force on 2020-04-01"),
]


@pytest.fixture(scope="module")
def dsn(pg):
    """One migrated database for the module: the commands only read it."""
    dsn = pg.dsn(pg.create_database())
    r = linbat.linbatctl("-d", dsn, "-m", MIGRATIONS, "migrate")
    assert r.returncode == 0, r.stderr
    assert "0005_lkpm.sql" in r.stdout
    return dsn


@pytest.mark.parametrize("scale,date,expected", CASES)
def test_deadline(dsn, scale, date, expected):
    r = linbat.linbatctl("-d", dsn, "lkpm", "deadline", "--scale", scale, "--date", date)
    assert (r.returncode, r.stdout, r.stderr) == (0, expected + "\n", "")


@pytest.mark.parametrize("args,status,message", ERRORS)
def test_deadline_errors(dsn, args, status, message):
    r = linbat.linbatctl("-d", dsn, "lkpm", *args)
    assert r.returncode == status
    assert r.stdout == ""
    assert message in r.stderr


def test_override_wins(pg, dsn):
    """A date OSS announced replaces the rule's, and the command sees it at once."""
    dbname = dsn.rsplit("dbname=", 1)[1]
    pg.query("insert into linbat.lkpm_deadline_override (period, deadline, source) "
             "values ('2025-Q3', '2025-10-15', 'test')", dbname=dbname)
    try:
        r = linbat.linbatctl("-d", dsn, "lkpm", "deadline", "--scale", "besar", "--date", "2025-10-11")
        assert (r.returncode, r.stdout) == (0, "2025-Q3 2025-10-15\n"), r.stderr
    finally:
        pg.query("delete from linbat.lkpm_deadline_override where period = '2025-Q3'", dbname=dbname)


def test_listed_in_help():
    r = linbat.linbatctl("-h")
    assert r.returncode == 0
    assert "lkpm deadline --scale S --date D" in r.stdout


def test_needs_the_database(tmp_path):
    """Without a reachable database the command fails (1), it does not guess."""
    with linbat.refused_port() as port:
        dsn = "host=127.0.0.1 port=%d user=postgres dbname=none connect_timeout=2" % port
        r = linbat.linbatctl("-d", dsn, "lkpm", "deadline", "--scale", "besar", "--date", "2026-01-05")
    assert r.returncode == 1
    assert "cannot connect to PostgreSQL" in r.stderr
