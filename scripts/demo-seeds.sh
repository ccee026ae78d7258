#!/bin/sh
# demo-seeds.sh [CLIPMOD] [SEEDS] — the demo's quality check (docs/demo.md, issue 8 item 5):
# `clipmod demo --seed N` with its default recipe for each seed (default 0 1 2 3), one at a time,
# niced; prints one line per seed with the held-out top-1 / top-2 and the training seconds.
# The bar: top-1 >= 0.99 on every seed. Each run takes ~90 s on an idle 2-core machine.
set -u
B=${1:-build/clipmod}
SEEDS=${2:-0 1 2 3}
status=0
for s in $SEEDS; do
    line=$(nice -n 19 "$B" demo --seed "$s" 2>/dev/null | tail -n 1)
    t1=$(echo "$line" | sed -n 's/.*"top1":\([0-9.e-]*\).*/\1/p')
    t2=$(echo "$line" | sed -n 's/.*"top2":\([0-9.e-]*\).*/\1/p')
    ts=$(echo "$line" | sed -n 's/.*"train_seconds":\([0-9.]*\).*/\1/p')
    echo "seed $s: top1 ${t1:-?} top2 ${t2:-?} train_seconds ${ts:-?}"
    awk "BEGIN { exit !(\"${t1:-0}\" + 0 >= 0.99) }" || status=1
done
exit $status
