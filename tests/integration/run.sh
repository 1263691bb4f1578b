#!/bin/sh
# Run linbat's pytest suites: the integration tests, and the fault tests when
# they exist. `make check` runs it; it can also be run by hand after a build:
#
#   tests/integration/run.sh [PYTEST ARGS...]
#
# Writes JUnit XML to $LINBAT_RESULTS_DIR/integration.xml (default
# $top_builddir/tests/results), which scripts/test counts. Fails when pytest
# fails or collects no test at all (pytest's exit status 5).
set -u

top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
results=${LINBAT_RESULTS_DIR:-$top_builddir/tests/results}
export top_srcdir top_builddir

mkdir -p "$results" || exit 1
rm -f "$results/integration.xml"
cd "$top_srcdir" || exit 1

if [ $# -eq 0 ]; then
	set -- tests/integration
	[ -d tests/faults ] && set -- "$@" tests/faults
fi

/usr/bin/python3 -m pytest -q -rfE -p no:cacheprovider \
	--junitxml="$results/integration.xml" "$@"
status=$?
# Any failure is 1: automake's harness reads 77 and 99 as skip and hard error.
case $status in
0) exit 0 ;;
5) echo "run.sh: pytest collected no tests in $*" >&2 ;;
esac
exit 1
