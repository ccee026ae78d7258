#!/bin/sh
# test_dist_cli.sh — `mpirun -np 2 build/clipmod train` on loopback (docs/distributed.md):
#   - a 2-rank run trains, validates on both ranks' shares (the counts are summed: n = every
#     validation sample once), rank 0 alone writes the run folder and prints the summary line;
#     the progress line carries Comm (t) and steps.jsonl comm_time / comm_bytes;
#   - a rank killed with SIGKILL mid-run ends the whole job with a non-zero status within 30 s;
#   - SIGTERM to mpirun: every rank stops at the same step boundary and rank 0 saves step_N;
#   - resume under MPI: a 2-rank run stopped mid-epoch (a signal on rank 1 only, agreed at the next
#     step) and resumed from a checkpoint that only rank 0 can open (a relative path, rank 1 in
#     another folder: rank 0 reads it and broadcasts it) ends bit-identical (tensor bytes of the
#     final checkpoint, optimizer moments included) to the uninterrupted 2-rank run; a resume with
#     another number of ranks warns and carries the optimizer steps on;
#   - ranks started with different configurations (--lr on rank 1) stop at start, status 1, the
#     message naming rank 1 and --lr; per-machine differences (--threads, the path of the same
#     --pretrained weights) are allowed; --horovod / --dist-url / --gather-with-grad give one line
#     each (from rank 0), never silence;
#   - `mpirun -np 2 clipmod eval` on the 50 labelled Fakeddit samples (16 shards, 6 classes, batch 3:
#     partial batches) prints one JSON line equal to the 1-process one in n, top1, top2, macro F1,
#     per class and confusion (exactly; clip_val_loss/val_loss are per-batch figures and batches
#     differ: not compared), and --scores-out writes the rows in the 1-process order (key, url,
#     label, pred exactly; probabilities within 1e-5: fp32 rounding of other batch compositions);
#   - validation inside train (--lr 0: the same weights) from 2 ranks == 1 rank, exactly as above.
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
SH=$(cd "$SH" && pwd); B=$(cd "$(dirname "$B")" && pwd)/clipmod   # absolute: the resume case runs ranks in other folders
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
# Comm (t) beside Data (t) / Batch (t), and per-step communication time and bytes in steps.jsonl
nb=$(sed -n 's/.*"comm_bytes":\([0-9]*\).*/\1/p' "$T/logs/r2/steps.jsonl" | sort -u)
if grep -q "Data (t): [0-9.]* Batch (t): [0-9.]* Comm (t): [0-9.]* ([0-9.]* MB)" "$T/logs/r2/out.log" && [ "$(grep -c '"comm_time":' "$T/logs/r2/steps.jsonl")" -eq 4 ] \
   && [ "$(echo "$nb" | wc -l)" -eq 1 ] && [ "${nb:-0}" -gt 0 ]; then ok "Comm (t) in the progress line; comm_time / comm_bytes ($nb per step) in steps.jsonl"
else bad "Comm (t): $(grep -m1 'Train Epoch' "$T/logs/r2/out.log"); bytes '$nb'"; fi

# 1b. resume under MPI (docs/distributed.md "Resume"): same flags as r2, rank 1 raises SIGINT after
#     step 3 (mid-epoch 1 of 2 steps per epoch); every rank stops before step 4, rank 0 saves step_3
data() { n=$(od -An -tu8 -N8 "$1" | tr -d ' '); tail -c +$((9 + n)) "$1"; }   # safetensors tensor bytes
$mp sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then export CLIPMOD_TEST_SIGNAL_AT_STEP=3; fi; exec "$@"' sh \
    $B train $common --epochs 2 --name part >"$T/outp" 2>"$T/errp"
rc=$?
mkdir -p "$T/rank0" "$T/elsewhere"
if [ $rc -eq 130 ] && [ -f "$T/logs/part/checkpoints/step_3.safetensors" ]; then
    cp "$T/logs/part/checkpoints/step_3.safetensors" "$T/rank0/ck.safetensors"
    # rank 1 runs in a folder without ck.safetensors: it must not open it
    $mp sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 0 ]; then cd "$0/rank0"; else cd "$0/elsewhere"; fi; exec "$@"' "$T" \
        $B train $common --epochs 2 --name part --resume ck.safetensors >"$T/outr" 2>"$T/errr"
    rc=$?
    a=$(data "$T/logs/r2/checkpoints/epoch_2.safetensors" | cksum); b=$(data "$T/logs/part/checkpoints/epoch_2.safetensors" 2>/dev/null | cksum)
    if [ $rc -eq 0 ] && [ "$a" = "$b" ] && grep -q "1 of 2 steps done" "$T/errr"; then
        ok "2 ranks stopped after step 3, resumed from a checkpoint only rank 0 can read: bit-identical to the uninterrupted run"
    else bad "MPI resume: status $rc, tensors $a vs $b; $(tail -3 "$T/errr")"; fi
    # another number of ranks: one process, the same global batch, warned; the steps carry on
    CLIPMOD_THREADS=1 $B train $(echo "$common" | sed 's/--batch-size 2/--batch-size 4/') --epochs 2 --name np1 \
        --resume "$T/rank0/ck.safetensors" >"$T/out1" 2>"$T/err1"
    rc=$?
    hd=$(head -c 65536 "$T/logs/np1/checkpoints/epoch_2.safetensors" 2>/dev/null | tr -d '\\')
    if [ $rc -eq 0 ] && grep -q "trained by 2 ranks, this run has 1" "$T/err1" && echo "$hd" | grep -q '"step":"4"' \
       && echo "$hd" | grep -q '"world_size":"1"' && echo "$hd" | grep -q 'lora_A.weight":4,'; then
        ok "a 2-rank checkpoint resumed by 1 process: warned, optimizer steps carry on (4)"
    else bad "resume with another N: status $rc; $(grep -i warn "$T/err1" | tail -2)"; fi
else bad "stop at step 3 under MPI: status $rc; $(tail -3 "$T/errp")"; fi

# 1c. a configuration that differs between ranks is refused at start, naming the rank and the flag
cm=$(echo "$common" | sed 's/--lr 1e-3//')
$mp sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then lr=2e-3; else lr=1e-3; fi; exec "$@" --lr $lr' sh \
    $B train $cm --epochs 1 --name mism --horovod --dist-url tcp://10.0.0.1:23456 --gather-with-grad >"$T/outm" 2>"$T/errm"
rc=$?
if [ $rc -eq 1 ] && grep -q "rank 1 of 2 was started with another configuration than rank 0: --lr differs" "$T/errm" && [ ! -d "$T/logs/mism" ]; then
    ok "--lr differing on rank 1: refused at start (status 1) naming rank 1 and --lr"
else bad "config mismatch: status $rc; $(grep clipmod "$T/errm" | tail -2)"; fi
# OpenCLIP's distributed flags: one line each for the job (rank 0), never silent
if [ "$(grep -c -- '--horovod has no effect here: clipmod is data-parallel over MPI' "$T/errm")" -eq 1 ] \
   && [ "$(grep -c -- '--dist-url has no effect here' "$T/errm")" -eq 1 ] \
   && [ "$(grep -c -- '--gather-with-grad: clipmod computes the exact global-batch gradient' "$T/errm")" -eq 1 ]; then
    ok "--horovod / --dist-url / --gather-with-grad under mpirun: one line each"
else bad "distributed flags' lines: $(grep -c 'no effect here' "$T/errm") no-effect lines; $(grep -- '--gather-with-grad' "$T/errm")"; fi
cp "$SH/golden/tiny/model.safetensors" "$T/base_copy.safetensors"
$mp sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then exec "$@" --threads 2 --pretrained "$0"; fi; exec "$@"' "$T/base_copy.safetensors" \
    $B train $common --epochs 1 --name samejob >"$T/outs" 2>"$T/errs"
rc=$?
if [ $rc -eq 0 ] && grep -q "world_size: 2" "$T/logs/samejob/params.txt"; then ok "per-machine differences (--threads, path of the same weights) accepted; params.txt says world_size 2"
else bad "per-machine differences: status $rc; $(grep clipmod "$T/errs" | tail -2)"; fi

# 1d. eval and validation split across 2 ranks: the counts of one process (Fakeddit: several classes)
FK=$SH/data/fakeddit
if [ -f "$FK/multimodal_train.tsv" ]; then
    $B prepare fakeddit --tsv "$FK/multimodal_train.tsv" --images "$FK/images" --out "$T/fk" --shard-size 4 --quiet >/dev/null 2>&1
    V="$T/fk/class_0/{00000..00006}.tar::$T/fk/class_1/00000.tar::$T/fk/class_2/00000.tar::$T/fk/class_3/00000.tar"
    V="$V::$T/fk/class_4/{00000..00001}.tar::$T/fk/class_5/{00000..00003}.tar"
    nolossf() { tail -n 1 "$1" | sed 's/.*"n":/"n":/; s/"clip_val_loss":[^,]*,"val_loss":[^,]*,//'; }
    E="$B eval --model $T/logs/r2/checkpoints/epoch_2.safetensors --val-data $V --batch-size 3 --json --progress-seconds 0"
    CLIPMOD_THREADS=1 $E --scores-out "$T/s1.jsonl" >"$T/j1" 2>"$T/je1"; rc1=$?
    $mp $E --scores-out "$T/s2.jsonl" >"$T/j2" 2>"$T/je2"; rc2=$?
    same_rows=$( [ "$(sed 's/"probs".*//' "$T/s1.jsonl")" = "$(sed 's/"probs".*//' "$T/s2.jsonl")" ] && echo 1)
    worst=$(paste -d'|' "$T/s1.jsonl" "$T/s2.jsonl" | sed 's/[^|]*"probs":\[\([^]]*\)\][^|]*/\1/g' | tr '|' ' ' | tr ',' ' ' |
            awk '{ h = NF / 2; for (i = 1; i <= h; i++) { d = $i - $(i + h); if (d < 0) d = -d; if (d > w) w = d } } END { printf "%g", w + 0 }')
    if [ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && [ "$(wc -l <"$T/j2")" -eq 1 ] && grep -q '"n":50,' "$T/j1" && [ "$(nolossf "$T/j1")" = "$(nolossf "$T/j2")" ] \
       && [ "$same_rows" = 1 ] && [ "$(wc -l <"$T/s2.jsonl")" -eq 50 ] && awk "BEGIN { exit !($worst <= 1e-5) }"; then
        ok "mpirun -np 2 eval == 1 process (n 50, top1/top2, per class, confusion exactly; 50 scores in the same order, probs within $worst)"
    else bad "2-rank eval: status $rc1/$rc2, rows same '$same_rows', probs diff $worst; $(diff "$T/j1" "$T/j2" | head -c 600)"; fi
    # an empty share is not an error (one shard, two ranks): the job's total counts
    $mp $B eval --model $T/logs/r2/checkpoints/epoch_2.safetensors --val-data "$T/fk/class_1/00000.tar" --json --progress-seconds 0 >"$T/j3" 2>"$T/je3"
    rc=$?
    if [ $rc -eq 0 ] && grep -q '"n":2,' "$T/j3"; then ok "eval of 1 shard on 2 ranks: rank 1's empty share is no error (n 2)"
    else bad "eval, empty share: status $rc; $(grep clipmod "$T/je3" | tail -2)"; fi
    # a rank whose data run out mid-epoch (its machine's shards hold fewer samples) ends the job
    # with its message instead of leaving rank 0 in the next step's all-gather
    $B prepare fakeddit --tsv "$FK/multimodal_train.tsv" --images "$FK/images" --out "$T/fk1" --shard-size 1 --quiet >/dev/null 2>&1
    mkdir -p "$T/d0" "$T/d1"; ln -s "$T/fk" "$T/d0/sh"; ln -s "$T/fk1" "$T/d1/sh"
    cr=$(echo "$common" | sed 's/--train-data [^ ]*//; s/--val-data [^ ]*//; s/--train-num-samples 8//; s/--logs [^ ]*//')
    $mp sh -c 'cd "$0/d$OMPI_COMM_WORLD_RANK" && exec "$@"' "$T" $B train --train-data 'sh/class_0/{00000..00003}.tar' $cr \
        --train-num-samples 16 --logs none --epochs 1 >"$T/outd" 2>"$T/errd"
    rc=$?
    if [ $rc -eq 1 ] && grep -q "rank 1 of 2: train: --train-data: epoch 0: this rank.s share of the data ran out after [0-9]* of 4 batches" "$T/errd"; then
        ok "rank 1's data run out mid-epoch: the job ends (status 1) with rank 1's message"
    else bad "uneven data: status $rc; $(grep clipmod "$T/errd" | tail -2)"; fi
    tv="--val-data $V --lr 0 --logs none --epochs 1"
    cv=$(echo "$common" | sed 's/--val-data [^ ]*//; s/--lr 1e-3//; s/--logs [^ ]*//; s/--batch-size 2//')
    $mp $B train $cv $tv --batch-size 2 >"$T/v2" 2>"$T/ve2"; rc2=$?
    CLIPMOD_THREADS=1 $B train $cv $tv --batch-size 4 >"$T/v1" 2>"$T/ve1"; rc1=$?
    if [ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && grep -q '"n":50,' "$T/v1" && [ "$(nolossf "$T/v1")" = "$(nolossf "$T/v2")" ]; then
        ok "validation inside train: 2 ranks == 1 process on the same shards (n 50, exactly)"
    else bad "validation 2 ranks vs 1: status $rc1/$rc2; $(grep clipmod "$T/ve2" | tail -2); $(diff "$T/v1" "$T/v2" | head -c 600)"; fi
else echo "  SKIPPED eval split: $FK missing"; skip=$((skip + 1)); fi

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
if [ -n "$victim" ] && [ $rc -ne 0 ] && [ $dt -lt 30 ] && grep -q "process rank [01] .* exited on signal 9" "$T/err2"; then
    ok "a killed rank ends the job (status $rc after ${dt} s; mpirun: $(grep -o 'process rank [01] .* exited on signal 9' "$T/err2"))"
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
