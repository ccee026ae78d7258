#!/bin/sh
# bench/dist_overhead.sh [ROUNDS] [STEPS] — the cost of data parallelism on one machine: the same
# global batch trained by one process (all cores) and by `mpirun -np 2` (half the cores each),
# interleaved ROUNDS times (default 3) so that load changes hit both; STEPS optimizer steps per run
# (default 5; the first is a warm-up and not counted). ViT-B-32 LoRA + head, random weights
# (--seed), fp32, global batch 8 (1 x 8 against 2 x 4), COCO-derived shards, --dataset-resampled.
# Prints per round the median step time of each, the np=2 rank-0 Comm (t) (time inside MPI calls,
# which includes waiting for the slower rank) and bytes, and the overhead np2/np1 - 1. Runs niced.
# Needs ../shared (COCO images and captions, the vocab) and mpirun. docs/distributed.md has figures.
set -eu
rounds=${1:-3}
steps=${2:-5}
cd "$(dirname "$0")/.."
B=$(pwd)/build/clipmod
SH=$(cd "${CLIPMOD_SHARED:-../shared}" && pwd)
[ -x "$B" ] || { echo "build first (make)"; exit 2; }
command -v mpirun >/dev/null || { echo "mpirun missing (scripts/install-deps.sh)"; exit 2; }
T=$(mktemp -d "${TMPDIR:-/tmp}/clipmod-distbench.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1
"$B" prepare coco --captions "$SH/data/coco/captions_val2017.json" --images "$SH/data/coco" --out "$T/sh" --shard-size 1 >/dev/null 2>&1
cores=$(nproc)
half=$((cores / 2 > 0 ? cores / 2 : 1))
GB=8
common="--train-data $T/sh/class_0/{00000..00009}.tar --dataset-resampled --model ViT-B-32 --vocab $SH/vocab --enable-lora \
 --workers 1 --train-num-samples $((GB * steps)) --warmup 1 --precision fp32 --lr 1e-4 --epochs 1 --log-every-n-steps 1000 --logs $T/logs"
# median of a steps.jsonl field over steps 2..N
med() { sed -n "s/.*\"$2\":\\([0-9.e+-]*\\).*/\\1/p" "$1" | tail -n +2 | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo "machine: $cores cores ($(uptime | sed 's/.*load average: /load /')); ViT-B-32 LoRA fp32, global batch $GB, $steps steps/run"
printf "%-6s %12s %12s %14s %12s %10s\n" round "np1 step s" "np2 step s" "np2 comm s" "comm MB" overhead
i=1
while [ $i -le "$rounds" ]; do
    nice -n 19 "$B" train $common --batch-size $GB --threads "$cores" --name np1_$i >/dev/null 2>"$T/e1_$i" || { tail -3 "$T/e1_$i"; exit 1; }
    nice -n 19 mpirun -np 2 --oversubscribe --bind-to none -x CLIPMOD_THREADS=$half "$B" train $common --batch-size $((GB / 2)) \
        --name np2_$i >/dev/null 2>"$T/e2_$i" || { tail -3 "$T/e2_$i"; exit 1; }
    a=$(med "$T/logs/np1_$i/steps.jsonl" batch_time); b=$(med "$T/logs/np2_$i/steps.jsonl" batch_time)
    c=$(med "$T/logs/np2_$i/steps.jsonl" comm_time); m=$(med "$T/logs/np2_$i/steps.jsonl" comm_bytes)
    awk -v r=$i -v a="$a" -v b="$b" -v c="$c" -v m="$m" 'BEGIN { printf "%-6s %12.3f %12.3f %14.3f %12.2f %9.1f%%\n", r, a, b, c, m / 1e6, 100 * (b / a - 1) }' |
        tee -a "$T/rounds"
    i=$((i + 1))
done
# over the rounds: the median of the per-round overheads (each round's two runs saw similar load)
sort -k6 -g "$T/rounds" | awk '{ o[NR] = $6 + 0; c[NR] = $4 } END { printf "median overhead np2/np1 - 1 over %d rounds: %.1f%%\n", NR, (NR % 2) ? o[(NR + 1) / 2] : (o[NR / 2] + o[NR / 2 + 1]) / 2 }'
echo "load after: $(uptime | sed 's/.*load average: //')"
