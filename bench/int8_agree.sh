#!/bin/sh
# int8_agree.sh — int8 vs fp32 agreement on a TRAINED checkpoint: trains the demo model from
# scratch (`clipmod demo`, 25 epochs of 7000 synthetic samples, ~7 min on 1 core) unless the
# folder already holds it, then build/bench/bench_int8_agree over its held-out samples (default
# 4000): per-sample embedding cosine (bar >= 0.995) and head top-1 agreement (bar >= 99.5%).
# Usage: sh bench/int8_agree.sh [DIR (default /tmp/clipmod-int8-agree)] [val samples (default 4000)]
set -eu
dir=${1:-/tmp/clipmod-int8-agree}
nval=${2:-4000}
bin=${BUILD:-build}
ck="$dir/logs/demo/checkpoints/epoch_25.safetensors"
if [ ! -f "$ck" ]; then
    nice -n 19 "$bin/clipmod" demo --data-dir "$dir" --val-samples "$nval" >/dev/null
fi
nshards=$(ls "$dir"/val/*.tar | wc -l)
last=$(printf '%05d' $((nshards - 1)))
nice -n 19 "$bin/bench/bench_int8_agree" "$ck" "$dir/val/{00000..$last}.tar"
