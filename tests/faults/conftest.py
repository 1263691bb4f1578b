"""Fixtures of the fault suite: those of tests/integration/conftest.py (a
session cluster, a fresh database per test, linbatd processes whose logs
are checked), and the table of faults, printed at the end of the session
and written to $LINBAT_RESULTS_DIR/faults-table.txt."""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
for d in ("lib", "integration", "emulators"):
    p = os.path.join(TESTS, d)
    if p not in sys.path:
        sys.path.insert(0, p)

import faults  # noqa: E402
import linbat  # noqa: E402

_spec = importlib.util.spec_from_file_location("linbat_integration_conftest",
                                               os.path.join(TESTS, "integration", "conftest.py"))
_integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_integration)

pytest_configure = _integration.pytest_configure
pg = _integration.pg
private_pg = _integration.private_pg
db = _integration.db
start_linbatd = _integration.start_linbatd


def pytest_terminal_summary(terminalreporter):
    if not faults.ROWS:
        return
    text = faults.table()
    terminalreporter.write_sep("=", "faults (scale %g)" % faults.SCALE)
    terminalreporter.write_line(text)
    results = os.environ.get("LINBAT_RESULTS_DIR") or os.path.join(linbat.TOP_BUILDDIR, "tests", "results")
    try:
        os.makedirs(results, exist_ok=True)
        with open(os.path.join(results, "faults-table.txt"), "w") as f:
            f.write(text + "\n")
    except OSError:
        pass
