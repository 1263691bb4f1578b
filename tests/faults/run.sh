#!/bin/sh
# Run the fault suite (tests/faults/test_*.py): linbatd killed under load,
# PostgreSQL restarted, provider faults, Dovecot and Kannel restarted. `make
# check` runs it under tests/with-pg; by hand, after a build:
#
#   tests/with-pg tests/faults/run.sh [PYTEST ARGS]
#
# LINBAT_FAULTS_SCALE scales every load (default 1), LINBAT_FAULTS_SEED fixes
# the random moments. Writes JUnit XML to $LINBAT_RESULTS_DIR/faults.xml
# (default $top_builddir/tests/results), which scripts/test counts, and the
# table of faults to faults-table.txt beside it. Fails when a test fails or
# none ran.
set -u

top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
results=${LINBAT_RESULTS_DIR:-$top_builddir/tests/results}
export top_srcdir top_builddir LINBAT_RESULTS_DIR="$results"

mkdir -p "$results" || exit 1
rm -f "$results/faults.xml" "$results/faults-table.txt"
cd "$top_srcdir" || exit 1
/usr/bin/python3 -m pytest -q -rfE -p no:cacheprovider --junitxml="$results/faults.xml" "$@" tests/faults
status=$?
[ -f "$results/faults-table.txt" ] && cat "$results/faults-table.txt"
[ $status -eq 0 ] && exit 0
[ $status -eq 5 ] && echo "run.sh: pytest collected no tests in tests/faults" >&2
exit 1
