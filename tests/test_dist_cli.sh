#!/bin/sh
# test_dist_cli.sh — `mpirun -np 2 build/clipmod train` on loopback (docs/distributed.md):
#   - a 2-rank run trains, validates on both ranks' shares (the counts are summed: n = every
#     validation sample once), rank 0 alone writes the run folder and prints the summary line;
#   - a rank killed with SIGKILL mid-run ends the whole job with a non-zero status within 30 s;
#   - SIGTERM to mpirun: every rank stops at the same step boundary and rank 0 saves step_N.
# Needs ../shared (COCO images for the shards, the tiny model) and mpirun; says SKIPPED without
# them (under CI a missing one is a failure). Skipped under the sanitizer build (Open MPI's leaks).
set -u
BUILD=${BUILD:-build}
B=$BUILD/clipmod
SH=${CLIPMOD_SHARED:-../shared}
pass=0; fail=0; skip=0
ok() { echo "  ok   $1"; pass=$((pass + 1)); }
bad() { echo "  FAIL $1"; fail=$((fail + 1)); }
summary() { echo "test_dist_cli: $pass passed, $fail failed, $skip skipped"; exit 0; }
if [ -n "${CLIPMOD_SANITIZED:-}" ]; then echo "  SKIPPED: mpirun under the sanitizer build"; skip=1; summary; fi
if ! command -v mpirun >/dev/null 2>&1 || [ ! -d "$SH/golden/tiny" ]; then
    if [ -n "${CI:-}" ] && [ "${CI:-}" != false ]; then bad "mpirun or $SH missing under CI"; summary; fi
    echo "  SKIPPED: mpirun or $SH/golden missing"; skip=1; summary
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1
T=$(mktemp -d "${TMPDIR:-/tmp}/cm_test_dist_cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
$B prepare coco --captions "$SH/data/coco/captions_val2017.json" --images "$SH/data/coco" --out "$T/sh" --shard-size 1 >/dev/null 2>&1
n_tar=$(ls "$T"/sh/class_0/*.tar 2>/dev/null | wc -l)
[ "$n_tar" -ge 10 ] || { bad "prepare made $n_tar shards (want 10)"; summary; }
common="--train-data $T/sh/class_0/{00000..00007}.tar --val-data $T/sh/class_0/{00008..00009}.tar \
 --model $SH/golden/tiny/config.json --pretrained $SH/golden/tiny/model.safetensors --vocab $SH/vocab --enable-lora \
 --batch-size 2 --workers 1 --train-num-samples 8 --warmup 1 --precision fp32 --lr 1e-3 --logs $T/logs"
mp="timeout 120 mpirun -np 2 --oversubscribe --bind-to none -x CLIPMOD_THREADS=1"

# 1. a run
$mp $B train $common --epochs 2 --name r2 >"$T/out" 2>"$T/err"
rc=$?
lines=$(grep -c '"epochs":2' "$T/out")
if [ $rc -eq 0 ] && [ "$lines" -eq 1 ] && [ -f "$T/logs/r2/checkpoints/epoch_2.safetensors" ] && grep -q '"n":2,' "$T/out" \
   && grep -q "data-parallel: 2 ranks" "$T/err"; then ok "2 ranks train; validation counts summed (n=2); one summary line"
else bad "2-rank run: rc $rc, $lines summary lines; $(tail -3 "$T/err")"; fi

# 2. SIGKILL of one rank: the job ends, non-zero, in under 30 s
$mp $B train $common --epochs 100000 --name kill >"$T/out2" 2>"$T/err2" &
mpid=$!
i=0
while [ $i -lt 60 ] && ! grep -q "Train Epoch" "$T/err2" 2>/dev/null; do sleep 0.5; i=$((i + 1)); done
victim=$(pgrep -f "^$B train .*--name kill" | tail -n 1)
t0=$(date +%s)
[ -n "$victim" ] && kill -9 "$victim"
wait $mpid
rc=$?
dt=$(( $(date +%s) - t0 ))
if [ -n "$victim" ] && [ $rc -ne 0 ] && [ $dt -lt 30 ]; then ok "a killed rank ends the job (status $rc after ${dt} s)"
else bad "killed rank: victim '$victim', status $rc after ${dt} s"; fi
pkill -9 -f "clipmod train .*--name kill" 2>/dev/null

# 3. SIGTERM to one rank (as Slurm's scancel / a node's shutdown delivers it; Open MPI's mpirun
#    itself kills the job on SIGTERM): every rank stops at the same step, rank 0 saves step_N
$mp $B train $common --epochs 100000 --name term >"$T/out3" 2>"$T/err3" &
mpid=$!
i=0
while [ $i -lt 60 ] && ! grep -q "Saved checkpoint" "$T/err3" 2>/dev/null; do sleep 0.5; i=$((i + 1)); done
victim=$(pgrep -f "^$B train .*--name term" | tail -n 1)
[ -n "$victim" ] && kill -TERM "$victim"
wait $mpid
rc=$?
saved=$(sed -n 's/.*interrupted by SIGTERM after step [0-9]*; saved \(.*\)$/\1/p' "$T/err3" | head -n 1)
if [ -n "$saved" ] && [ -f "$saved" ]; then
    ok "SIGTERM to one rank: agreed stop, rank 0 saved $(basename "$saved") (status $rc)"
else bad "SIGTERM: status $rc; $(grep -i 'stop\|interrupt' "$T/err3" | tail -3)"; fi
pkill -9 -f "clipmod train .*--name term" 2>/dev/null
summary
