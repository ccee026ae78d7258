#!/bin/sh
# bench-native.sh — the portable default build against a NATIVE=1 (-march=native) build, in one run:
# builds bench_dispatch into build/ (default flags) and build-native/ (NATIVE=1), then runs the two
# binaries alternately ROUNDS times (interleaved, so both see the same machine load) and prints,
# per kernel, the best process CPU time of each (single thread by default: CPU time is what the
# code costs, and it is far steadier than wall time when other processes share the cores) and
# default/native (1.00 = as fast; > 1 = default slower), plus the geometric mean; then the same
# ratio from wall times, for reference. `make bench` ends with it; `make bench-native` runs it alone.
# Env: ROUNDS (default 3), CLIPMOD_THREADS (default 1: codegen, not scaling, and steadier on a shared machine), BENCH_QUICK=1 (one rep per kernel, 1 round).
set -eu
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
ROUNDS=${ROUNDS:-3}
case "${BENCH_QUICK:-0}" in 0|"") ;; *) ROUNDS=1 ;; esac
env -u MAKEFLAGS -u MFLAGS $MAKE -s build/bench/bench_dispatch >/dev/null
env -u MAKEFLAGS -u MFLAGS $MAKE -s NATIVE=1 BUILD=build-native build-native/bench/bench_dispatch >/dev/null
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} CLIPMOD_THREADS=${CLIPMOD_THREADS:-1}
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
i=0
while [ "$i" -lt "$ROUNDS" ]; do
    nice -n 19 build/bench/bench_dispatch | sed -n 's/^kernel /default /p' >> "$tmp"
    nice -n 19 build-native/bench/bench_dispatch | sed -n 's/^kernel /native /p' >> "$tmp"
    i=$((i + 1))
done
echo "default (-march=x86-64-v3 + AVX-512 clones) vs NATIVE=1 (-march=native), $ROUNDS interleaved rounds, best of each,"
echo "OMP_WAIT_POLICY=$OMP_WAIT_POLICY, CLIPMOD_THREADS=$CLIPMOD_THREADS, CPU: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)"
for col in 3 4; do
    [ "$col" = 3 ] && what="process CPU time" || what="wall time (noisier on a shared machine)"
    echo "$what:"
    awk -v col="$col" '
    { k = $2; t = $col + 0; if (!(k in best_d)) { order[++n] = k; best_d[k] = 1e30; best_n[k] = 1e30 }
      if ($1 == "default" && t < best_d[k]) best_d[k] = t
      if ($1 == "native"  && t < best_n[k]) best_n[k] = t }
    END { printf "  %-22s %12s %12s %9s\n", "kernel", "default ms", "native ms", "def/nat"
          s = 0
          for (i = 1; i <= n; i++) { k = order[i]; r = best_d[k] / best_n[k]; s += log(r)
              printf "  %-22s %12.3f %12.3f %9.3f\n", k, best_d[k] * 1e3, best_n[k] * 1e3, r }
          printf "  %-22s %12s %12s %9.3f   (geometric mean; target <= 1.05)\n", "all", "", "", exp(s / n) }' "$tmp"
done
