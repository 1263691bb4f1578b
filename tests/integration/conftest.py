"""Fixtures for linbat's integration tests.

One private PostgreSQL cluster for the session (tests stop and start their
own when they need to break the database), a fresh database per test, and
linbatd processes that are stopped and whose logs are checked for ERROR
lines at teardown. Allow expected ERROR lines with
@pytest.mark.log_allow(r"regex", ...) or Linbatd(allow=[...]).
"""

import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import linbat  # noqa: E402


def interrupt(signum, frame):
    """Turn SIGTERM into KeyboardInterrupt, so fixtures still stop their
    daemons and clusters when make or with-pg stops the run."""
    raise KeyboardInterrupt("signal %d" % signum)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "log_allow(*regexes): ERROR lines in linbatd's log that this test expects")
    signal.signal(signal.SIGTERM, interrupt)


@pytest.fixture(scope="session")
def pg():
    """The session's PostgreSQL cluster (a linbat.Postgres)."""
    with linbat.Postgres() as cluster:
        yield cluster


@pytest.fixture
def private_pg():
    """A cluster of this test's own, for tests that stop or break it."""
    with linbat.Postgres() as cluster:
        yield cluster


@pytest.fixture
def db(pg):
    """The DSN of a fresh, empty database in the session's cluster."""
    return pg.dsn(pg.create_database())


@pytest.fixture
def start_linbatd(request, tmp_path, db):
    """A function that starts a linbatd and returns its linbat.Linbatd.

    Arguments: dsn (default: this test's fresh database), extra config
    sections {section: {key: value}}, allow (regexes of ERROR lines it may
    log), args (default ("--migrate",)), name. Every daemon started is
    stopped at teardown (SIGTERM, exit 0 within 5 s) and its log checked.
    """
    daemons = []

    def start(dsn=None, extra=None, allow=(), args=("--migrate",), name=None):
        d = linbat.Linbatd(dsn or db, str(tmp_path), extra=extra, allow=allow, args=args,
                           name=name or "linbatd-%d" % (len(daemons) + 1))
        daemons.append(d)
        return d.start()

    yield start
    failures = []
    for d in daemons:
        try:
            d.close(linbat.marker_allow(request.node))
        except AssertionError as e:
            failures.append(str(e))
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


@pytest.fixture
def linbatd(start_linbatd):
    """A linbatd with the default config on this test's fresh database."""
    return start_linbatd()
