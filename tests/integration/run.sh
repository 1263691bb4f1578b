#!/bin/sh
# Run linbat's pytest suites: every directory tests/*/ that holds test_*.py
# (integration, emulators, ...; not faults, which tests/faults/run.sh runs).
# `make check` runs it; it can also be
# run by hand after a build:
#
#   tests/integration/run.sh [PYTEST ARGS] [PATHS]   (no PATHS: all those dirs)
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

# Without a path among the arguments, run every suite.
has_path=no
for a in "$@"; do
	[ -e "$a" ] && has_path=yes
done
if [ $has_path = no ]; then
	for t in tests/*/test_*.py; do
		[ -f "$t" ] || continue
		d=${t%/*}
		# The fault suite is a test of its own (tests/faults/run.sh).
		[ "$d" = tests/faults ] && continue
		case " $* " in *" $d "*) ;; *) set -- "$@" "$d" ;; esac
	done
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
