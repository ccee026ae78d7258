#!/bin/sh
# bench/compare.sh REV [ROUNDS] — speed of this tree against revision REV, in one run.
# Builds REV in a temporary git worktree (same compiler and flags), then runs bench_model of the
# old and the new build alternately ROUNDS times (default 3), so that load changes hit both, and
# prints per round and as medians: image encode, text encode (77-token captions) and LoRA train
# step rates, old vs new, with the new/old ratio. Both run with the same OMP_WAIT_POLICY (the
# bench's own default unless set). Example: bench/compare.sh 69ffb2e
set -eu
rev=${1:?usage: bench/compare.sh REV [ROUNDS]}
rounds=${2:-3}
cd "$(dirname "$0")/.."
root=$(pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/clipmod-compare.XXXXXX")
cleanup() { git -C "$root" worktree remove --force "$tmp/old" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM
git worktree add --detach -q "$tmp/old" "$rev"
echo "building $rev in $tmp/old ..."
make -s -C "$tmp/old" -j2 build/bench/bench_model >/dev/null
make -s -j2 build/bench/bench_model >/dev/null
old="$tmp/old/build/bench/bench_model"
new="$root/build/bench/bench_model"
# the figures of one bench_model run: image text lora
figures() {
    "$1" 2 2>/dev/null | awk '
        /^image encode/ { for (i = 1; i <= NF; i++) if ($i == "images/s") img = $(i-1) }
        /^text encode/ && /77-token captions;/ && txt == "" { for (i = 1; i <= NF; i++) if ($i == "texts/s") txt = $(i-1) }
        /^LoRA train step/ { for (i = 1; i <= NF; i++) if ($i == "samples/s") lora = $(i-1) }
        END { printf "%s %s %s\n", img, txt, lora }'
}
: > "$tmp/old.txt"; : > "$tmp/new.txt"
i=1
while [ "$i" -le "$rounds" ]; do
    o=$(figures "$old"); n=$(figures "$new")
    echo "$o" >> "$tmp/old.txt"; echo "$n" >> "$tmp/new.txt"
    echo "round $i: old (image text lora) $o | new $n"
    i=$((i + 1))
done
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
for k in 1 2 3; do
    name=$(echo "image-encode/s text-encode/s lora-step-samples/s" | cut -d' ' -f$k)
    mo=$(cut -d' ' -f$k "$tmp/old.txt" | median); mn=$(cut -d' ' -f$k "$tmp/new.txt" | median)
    awk -v n="$name" -v o="$mo" -v m="$mn" 'BEGIN { printf "%-22s old %8.2f  new %8.2f  new/old %.3f\n", n, o, m, (o > 0 ? m / o : 0) }'
done
