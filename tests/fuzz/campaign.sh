#!/bin/sh
# Long fuzzing campaign (docs/fuzzing.md): each target in turn, niced, until it has run RUNS
# executions or SECONDS_EACH seconds, whichever comes first, from its committed corpus; stops a
# target at its first crash. Logs, new inputs and crash files: build-fuzz/campaign/.
#   sh tests/fuzz/campaign.sh [target:seconds ...]      (default: every target, 3600 s each)
# Run `make fuzz-build` first. Prints one line of figures per target (also in summary.txt).
set -u
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-10000000}
OUT=build-fuzz/campaign
mkdir -p $OUT
if [ $# -eq 0 ]; then
    set --
    for b in build-fuzz/fuzz_*; do [ -x "$b" ] && set -- "$@" "${b#build-fuzz/fuzz_}:3600"; done
fi
for spec in "$@"; do
    n=${spec%%:*}; secs=${spec#*:}
    mkdir -p $OUT/$n $OUT/artifacts-$n
    start=$(date +%s)
    nice -n 19 build-fuzz/fuzz_$n -runs=$RUNS -max_total_time=$secs -timeout=30 -close_fd_mask=3 \
        -print_final_stats=1 -artifact_prefix=$OUT/artifacts-$n/ $OUT/$n tests/fuzz/corpus/$n \
        > $OUT/$n.log 2>&1
    rc=$?
    end=$(date +%s)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' $OUT/$n.log | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' $OUT/$n.log | tail -1)
    cov=$(grep -E '^#[0-9]+' $OUT/$n.log | tail -1 | sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+)\/([^ ]+).*/cov \1 ft \2 corpus \3 files \/ \4/')
    crashes=$(ls $OUT/artifacts-$n 2>/dev/null | wc -l)
    line="$n: rc $rc, ${execs:-?} execs in $((end - start)) s (${rate:-?}/s), $cov, crash/timeout files: $crashes"
    echo "$line" | tee -a $OUT/summary.txt
done
