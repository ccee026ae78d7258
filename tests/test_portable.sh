#!/bin/sh
# test_portable.sh — the default build (MARCH=-march=x86-64-v3) must run on any x86-64 CPU with
# AVX2: no AVX-512 instruction (zmm registers, k mask registers, EVEX-only xmm16-31/ymm16-31)
# outside the runtime-dispatched clones FN.arch_x86_64_v4 (CM_HOT, src/kernels/vecmath.h), in the
# objects of the library and the CLI. Also checks the dispatch is really there (the clones exist,
# use zmm, and an ifunc resolver selects them), so removing it cannot pass silently.
# Run by `make test` (tests/run_tests.sh) with BUILD, MARCH, OPT and CC from the Makefile.
set -u
BUILD=${BUILD:-build}
MARCH=${MARCH:--march=x86-64-v3}
pass=0; fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "  FAIL $*"; }
summary() { echo "test_portable: $pass passed, $fail failed, $1 skipped"; [ "$fail" -eq 0 ]; exit $?; }

CC=${CC:-cc}
case "$($CC -dumpmachine 2>/dev/null)" in
    x86_64-*) ;;
    *) echo "  SKIPPED test_portable: not an x86-64 build"; summary 1 ;;
esac
# MARCH as the Makefile used it: skip when it lets the compiler use AVX-512 everywhere (NATIVE=1 on an
# AVX-512 machine, -march=x86-64-v4, ...)
if $CC $MARCH -dM -E - < /dev/null 2>/dev/null | grep -q '__AVX512F__'; then
    echo "  SKIPPED test_portable: this build targets '$MARCH' (AVX-512 enabled), not the portable default"; summary 1
fi
if ! command -v objdump >/dev/null 2>&1; then echo "  SKIPPED test_portable: no objdump"; summary 1; fi
objs=$(ls "$BUILD"/src/*/*.o 2>/dev/null)
[ -n "$objs" ] || { bad "no objects under $BUILD/src (build first)"; summary 0; }

# every instruction line that uses AVX-512 state, as "object function: instruction"
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
for o in $objs; do
    objdump -d --no-show-raw-insn "$o" | awk -v obj="$o" '
        /^[0-9a-f]+ <.*>:$/ { fn = $2; gsub(/[<>:]/, "", fn); next }
        /%zmm|%k[0-7]|\{%k|%[xy]mm(1[6-9]|2[0-9]|3[01])\b|\{1to[0-9]+\}/ { print obj " " fn ": " $0 }'
done > "$tmp"
n_all=$(wc -l < "$tmp")
outside=$(grep -v -E '^[^ ]+ [^ ]*\.arch_x86_64_v4: ' "$tmp")
if [ -n "$outside" ]; then
    bad "AVX-512 instructions outside the dispatched clones:"
    printf '%s\n' "$outside" | awk '{print "    " $0}' | head -20
else ok; fi

# the dispatch exists: each CM_HOT kernel has an ifunc and an AVX-512 clone, which uses zmm when
# the build vectorises (OPT -O2/-O3; `make asan` builds with -O1)
case " ${OPT:--O3} " in *" -O2 "*|*" -O3 "*|*" -Ofast "*) want_zmm=1 ;; *) want_zmm=0 ;; esac
for f in kernels/activation.o:cm_gelu_forward kernels/activation.o:cm_quickgelu_backward kernels/softmax.o:cm_softmax_row \
         kernels/layernorm.o:cm_layernorm_forward kernels/attention.o:att_softmax_backward; do
    o="$BUILD/src/${f%%:*}"; fn=${f#*:}
    if ! nm "$o" | grep -q -E " t $fn\.arch_x86_64_v4\$"; then
        bad "$fn in $o has no AVX-512 clone $fn.arch_x86_64_v4 (runtime dispatch missing)"
    elif [ "$want_zmm" = 1 ] && ! grep -q -E "^$o $fn(\._omp_fn\.[0-9]+)?\.arch_x86_64_v4: .*%zmm" "$tmp"; then
        bad "$fn in $o: its AVX-512 clone uses no zmm register"
    elif ! nm "$o" | grep -q -E " i $fn\$"; then
        bad "$fn in $o is not an ifunc (no runtime selection)"
    else ok; fi
done
# the linked outputs too (statically linked startup code included): build/clipmod, libclipmod.so
for bin in "$BUILD/clipmod" "$BUILD/libclipmod.so"; do
    [ -e "$bin" ] || { bad "$bin missing (build first)"; continue; }
    n=$(objdump -d --no-show-raw-insn "$bin" | awk '
        /^[0-9a-f]+ <.*>:$/ { fn = $2; next }
        /%zmm|%k[0-7]|\{%k|%[xy]mm(1[6-9]|2[0-9]|3[01])\b|\{1to[0-9]+\}/ && fn !~ /\.arch_x86_64_v4/ { n++; if (n <= 5) print "    " fn ": " $0 > "/dev/stderr" }
        END { print n + 0 }')
    if [ "$n" -eq 0 ]; then ok; else bad "$bin: $n AVX-512 instruction lines outside the clones"; fi
done
[ "$fail" -eq 0 ] && echo "test_portable: $(echo "$objs" | wc -w) objects, $n_all AVX-512 instruction lines, all inside .arch_x86_64_v4 clones"
summary 0
