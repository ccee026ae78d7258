#!/bin/sh
# Runs every test executable (or tests/test_*.sh shell test) given as arguments from the repository root, prints each one's
# output, and ends with the total line "N passed, N failed" (test cases, over all executables).
# An executable that crashes or exits non-zero without reporting counts as one failure.
set -u
passed=0; failed=0; skipped=0
for t in "$@"; do
    echo "== $t"
    case "$t" in
        *.sh) out=$(sh "$t" 2>&1); rc=$? ;;    # shell tests (tests/test_*.sh)
        *) out=$("$t" 2>&1); rc=$? ;;
    esac
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E '^[a-z_0-9]+: [0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -n "$line" ]; then
        p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
        f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
        s=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p')
        passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + ${s:-0}))
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); echo "  $t exited $rc"; fi
    else
        failed=$((failed + 1)); echo "  $t exited $rc without a summary line"
    fi
done
echo
if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"; else echo "$passed passed, $failed failed"; fi
[ "$failed" -eq 0 ]
