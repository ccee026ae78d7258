#!/bin/sh
# Long fuzzing campaign (docs/fuzzing.md): each target in turn, niced, until it has run RUNS
# executions or used `seconds` of CPU time (user + system, measured from /proc: on a shared
# machine a niced fuzzer gets a fraction of a core, so wall time overstates the work), whichever
# comes first, from its committed corpus; stops a target at its first crash. WALL_LIMIT (default
# 4 x seconds) bounds the wall time too. Logs, new inputs and crash files: build-fuzz/campaign/.
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
    nice -n 19 build-fuzz/fuzz_$n -runs=$RUNS -max_total_time=${WALL_LIMIT:-$((secs * 4))} -timeout=30 \
        -close_fd_mask=3 -print_final_stats=1 -artifact_prefix=$OUT/artifacts-$n/ $OUT/$n tests/fuzz/corpus/$n \
        > $OUT/$n.log 2>&1 &
    pid=$!
    tck=$(getconf CLK_TCK)
    cpu=0
    # CPU-time watchdog: SIGINT makes libFuzzer print its final stats and exit
    while kill -0 $pid 2>/dev/null; do
        t=$(awk '{print $14 + $15}' /proc/$pid/stat 2>/dev/null) && [ -n "$t" ] && cpu=$((t / tck))
        if [ "$cpu" -ge "$secs" ]; then kill -INT $pid 2>/dev/null; fi
        sleep 5
    done
    wait $pid
    rc=$?
    end=$(date +%s)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' $OUT/$n.log | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' $OUT/$n.log | tail -1)
    cov=$(grep -E '^#[0-9]+' $OUT/$n.log | tail -1 | sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+)\/([^ ]+).*/cov \1 ft \2 corpus \3 files \/ \4/')
    crashes=$(ls $OUT/artifacts-$n 2>/dev/null | wc -l)
    line="$n: rc $rc, ${execs:-?} execs in $((end - start)) s wall, ${cpu} s CPU (${rate:-?}/s), $cov, crash/timeout files: $crashes"
    echo "$line" | tee -a $OUT/summary.txt
done
