"""Fixtures of the browser tests: the integration suite's (a PostgreSQL
cluster per session, a fresh database per test, linbatd processes checked
at teardown), loaded from tests/integration/conftest.py under another module
name so that both directories can run in one pytest session."""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "emulators"))

_spec = importlib.util.spec_from_file_location(
    "linbat_integration_conftest", os.path.join(HERE, "..", "integration", "conftest.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)

pytest_configure = _base.pytest_configure
pg = _base.pg
db = _base.db
start_linbatd = _base.start_linbatd
