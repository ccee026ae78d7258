#!/bin/sh
# Runs the test suite once per OpenBLAS kernel family (OPENBLAS_CORETYPE is honoured at run time
# by Debian's dynamic-arch OpenBLAS), to show that no tolerance depends on one kernel's summation
# order. Not part of `make test` (it runs the suite three times). Usage: scripts/test-coretypes.sh
# [CORETYPE...]; default: Haswell SkylakeX Zen. Exits non-zero if any run fails.
set -u
cd "$(dirname "$0")/.."
make -s -j2 >/dev/null || exit 1
types=${*:-Haswell SkylakeX Zen}
rc=0
for t in $types; do
    out=$(OPENBLAS_CORETYPE=$t make -s test 2>&1)
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    echo "OPENBLAS_CORETYPE=$t: ${line:-no summary line}"
    printf '%s\n' "$out" | grep -E '^ *FAIL' | sed 's/^/    /'
    case "$line" in *" 0 failed"*) ;; *) rc=1 ;; esac
done
exit $rc
