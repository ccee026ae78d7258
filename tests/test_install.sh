#!/bin/sh
# test_install.sh — the installed tree works on its own (issue 14, docs/install.md):
#   1. `make install` staged (DESTDIR + PREFIX=/opt/clipmod), then ONLY the installed prefix is copied
#      to another temporary folder (nothing of the source tree, $CLIPMOD_VOCAB unset, run from a
#      folder without ../shared or assets/);
#   2. <moved>/bin/clipmod --version and `tokenize "a photo of a cat"` (the shipped vocabulary found
#      relative to the executable), ids checked against ../shared/golden/tokenizer when present;
#   3. a C program built with `pkg-config --cflags --libs clipmod` (PKG_CONFIG_PATH = the moved
#      lib/pkgconfig; clipmod.pc is relocatable through ${pcfiledir}) runs against the moved
#      libclipmod.so (soname, exports = exactly the CLIPMOD_API functions) and tokenizes with the
#      vocabulary found beside the library; the same program links statically with --static;
#   4. the man page lists every option of every command's --help; `make uninstall` removes it all.
# Run by `make test` (tests/run_tests.sh) with BUILD and CC from the Makefile, from the repository root.
set -u
BUILD=${BUILD:-build}
CC=${CC:-cc}
pass=0; fail=0; skip=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "  FAIL $*"; }
finish() { echo "test_install: $pass passed, $fail failed, $skip skipped"; [ "$fail" -eq 0 ]; exit $?; }
check() { what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }

if [ -n "${CLIPMOD_SANITIZED:-}" ]; then
    echo "  SKIPPED test_install: sanitizer build (the installed objects would need the sanitizer runtime)"
    skip=1; finish
fi
for tool in pkg-config readelf nm; do
    command -v $tool >/dev/null 2>&1 || { echo "  SKIPPED test_install: no $tool"; skip=1; finish; }
done
repo=$(pwd)
tmp=$(mktemp -d /tmp/cm_install_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
unset CLIPMOD_VOCAB

# ---- 1. staged install, then only the prefix moves -------------------------------------------------
if ! env -u MAKEFLAGS -u MFLAGS ${MAKE:-make} -s BUILD="$BUILD" DESTDIR="$tmp/stage" PREFIX=/opt/clipmod install \
        > "$tmp/install.log" 2>&1; then
    bad "make install failed:"; sed 's/^/    /' "$tmp/install.log" | tail -20; finish
fi
ok
for f in bin/clipmod lib/libclipmod.a lib/libclipmod.so lib/pkgconfig/clipmod.pc include/clipmod.h \
         share/clipmod/bpe_simple_vocab_16e6.txt.gz share/clipmod/bpe_simple_vocab_16e6.LICENSE.md \
         share/man/man1/clipmod.1 lib/python3/dist-packages/clipmod/__init__.py; do
    [ -e "$tmp/stage/opt/clipmod/$f" ] || bad "not installed: $f"
done
mkdir -p "$tmp/elsewhere/deep" "$tmp/run"
cp -a "$tmp/stage/opt/clipmod" "$tmp/elsewhere/deep/cm"
P=$tmp/elsewhere/deep/cm
rm -rf "$tmp/stage"
cd "$tmp/run" || { bad "cd"; finish; }     # no ../shared, no assets/ from here

# ---- 2. the CLI ----------------------------------------------------------------------------------------
version=$(sed -n 's/^#define CLIPMOD_VERSION "\(.*\)".*/\1/p' "$repo/include/clipmod.h")
check "clipmod --version prints clipmod $version" [ "$("$P/bin/clipmod" --version)" = "clipmod $version" ]
out=$("$P/bin/clipmod" tokenize "a photo of a cat" 2>&1); rc=$?
want="[49406, 320, 1125, 539, 320, 2368, 49407$(i=7; while [ $i -lt 77 ]; do printf ', 0'; i=$((i + 1)); done)]"
check "moved clipmod tokenize: exit $rc, got: $out" [ "$rc" -eq 0 ] && [ "$out" = "$want" ]
golden="${CLIPMOD_SHARED:-$repo/../shared}/golden/tokenizer/cases.jsonl"
if [ -f "$golden" ]; then
    g=$(sed -n 's/^{"text": "a photo of a cat", "ids": \(\[[^]]*\]\).*/\1/p' "$golden")
    check "golden ids of 'a photo of a cat' ($g) equal the installed CLI's" [ -n "$g" ] && [ "$g" = "$out" ]
else
    echo "  (no $golden: ids checked against the built-in expectation only)"
fi

# ---- 3. a C program through pkg-config ------------------------------------------------------------
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
check "pkg-config --modversion clipmod = $version" [ "$(pkg-config --modversion clipmod)" = "$version" ]
cflags=$(pkg-config --cflags clipmod) && libs=$(pkg-config --libs clipmod)
case "$cflags $libs" in *"$P/"*) ok ;; *) bad "pkg-config flags do not point into the moved prefix: $cflags $libs" ;; esac
cat > prog.c <<'CEOF'
#include <clipmod.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    clipmod_tokenizer *tok = NULL;
    if (strcmp(clipmod_version(), CLIPMOD_VERSION)) { printf("version %s != %s\n", clipmod_version(), CLIPMOD_VERSION); return 1; }
    if (clipmod_tokenizer_load(NULL, &tok) != CLIPMOD_OK) { printf("load: %s\n", clipmod_last_error()); return 1; }
    int32_t ids[CLIPMOD_CONTEXT_LEN];
    if (clipmod_tokenize(tok, "a photo of a cat", 16, ids, CLIPMOD_CONTEXT_LEN) != CLIPMOD_OK) { printf("%s\n", clipmod_last_error()); return 1; }
    for (int i = 0; i < 8; i++) printf(i ? " %d" : "%d", (int)ids[i]);
    printf("\n");
    clipmod_tokenizer_free(tok);
    clipmod_image img;   /* a bad path: an error naming it, not a crash */
    if (clipmod_image_load("/nonexistent.jpg", &img) == CLIPMOD_OK || !strstr(clipmod_last_error(), "/nonexistent.jpg")) return 2;
    return 0;
}
CEOF
if $CC -std=c11 -Wall -Werror -o prog prog.c $cflags $libs 2> cc.log; then
    ok
    out=$(LD_LIBRARY_PATH="$P/lib" ./prog 2>&1); rc=$?
    check "C program against the moved libclipmod.so: exit $rc, got: $out" [ "$rc" -eq 0 ] && [ "$out" = "49406 320 1125 539 320 2368 49407 0" ]
    lib=$(LD_LIBRARY_PATH="$P/lib" ldd ./prog | sed -n 's/.*libclipmod[^ ]* => \([^ ]*\).*/\1/p')
    check "prog uses the moved library (ldd: $lib)" [ "$lib" = "$P/lib/libclipmod.so.${version%%.*}" ]
else
    bad "compiling with pkg-config flags failed:"; sed 's/^/    /' cc.log | head -10
fi
# libclipmod.a with the dependencies clipmod.pc declares (Requires.private modules + Libs.private),
# linked dynamically: a full `pkg-config --static` link also needs the static archives of libcurl's
# own dependencies, which Debian does not install with libcurl4-openssl-dev (docs/install.md)
privmods=$(pkg-config --print-requires-private clipmod | awk '{print $1}')
privlibs=$(sed -n 's/^Libs.private: //p' "$P/lib/pkgconfig/clipmod.pc")
slibs="-L$P/lib -l:libclipmod.a $(pkg-config --libs $privmods) $privlibs"
if [ -n "$privmods" ] && $CC -std=c11 -o prog_static prog.c $cflags $slibs 2> cc.log; then
    out=$(CLIPMOD_VOCAB="$P/share/clipmod" ./prog_static 2>&1); rc=$?   # no library folder to search from
    check "libclipmod.a + clipmod.pc's private deps: exit $rc, got: $out" [ "$rc" -eq 0 ] && [ "$out" = "49406 320 1125 539 320 2368 49407 0" ]
else
    bad "linking libclipmod.a with clipmod.pc's private dependencies ($privmods / $privlibs) failed:"; sed 's/^/    /' cc.log | head -10
fi

# the shared library: soname, the versioned file, and exactly the CLIPMOD_API functions exported
soname=$(readelf -d "$P/lib/libclipmod.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
check "soname libclipmod.so.${version%%.*} (got $soname)" [ "$soname" = "libclipmod.so.${version%%.*}" ]
check "lib/libclipmod.so.$version is the file" [ -f "$P/lib/libclipmod.so.$version" ] && [ ! -L "$P/lib/libclipmod.so.$version" ]
nm -D --defined-only "$P/lib/libclipmod.so" | awk '{print $NF}' | sort > exported
sed -n 's/^CLIPMOD_API [^(]*[ *]\(clipmod_[a-z0-9_]*\)(.*/\1/p' "$P/include/clipmod.h" | sort > declared
if cmp -s exported declared && [ -s declared ]; then ok
else bad "exports differ from the CLIPMOD_API functions of clipmod.h (< exported, > declared):"; diff exported declared | head -10; fi

# the Python binding from the moved prefix (libclipmod.so.MAJOR and the vocabulary found from it)
py=""
for c in /usr/bin/python3 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c "import numpy" 2>/dev/null; then py=$c; break; fi
done
if [ -n "$py" ]; then
    out=$(env -u CLIPMOD_LIB PYTHONPATH="$P/lib/python3/dist-packages" "$py" -c \
          "import clipmod; print(clipmod.version(), *clipmod.tokenize('a photo of a cat')[0, :8])" 2>&1); rc=$?
    check "installed Python binding: exit $rc, got: $out" [ "$rc" -eq 0 ] && [ "$out" = "$version 49406 320 1125 539 320 2368 49407 0" ]
    lp=$(cd / && env -u CLIPMOD_LIB PYTHONPATH="$P/lib/python3/dist-packages" "$py" -c "import clipmod; print(clipmod.library_path())" 2>&1)
    check "installed Python binding loads the prefix's library, not $lp" [ "$lp" = "$P/lib/libclipmod.so.${version%%.*}" ]
else
    echo "  (no python3 with numpy: installed binding not checked)"; skip=$((skip + 1))
fi

# ---- 4. man page and uninstall --------------------------------------------------------------------
man=$P/share/man/man1/clipmod.1
missing=""
for cmd in $("$P/bin/clipmod" --help | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p'); do
    grep -q "^\.SS \"clipmod $cmd\"" "$man" || missing="$missing $cmd"
    for opt in $("$P/bin/clipmod" "$cmd" --help | sed -n 's/^  \(--[a-z0-9-]*\).*/\1/p'); do
        grep -q -- "$(printf '%s' "$opt" | sed 's/-/\\\\-/g')" "$man" || missing="$missing $cmd:$opt"
    done
done
check "man page covers every command and option (missing:$missing)" [ -z "$missing" ]
if command -v man >/dev/null 2>&1; then
    check "man -l renders the page" sh -c "MANWIDTH=80 man -l '$man' 2>&1 | grep -q 'clipmod tokenize'"
fi
cd "$repo" || { bad "cd"; finish; }
mkdir -p "$tmp/stage2"
if env -u MAKEFLAGS -u MFLAGS ${MAKE:-make} -s BUILD="$BUILD" DESTDIR="$tmp/stage2" PREFIX=/usr install > "$tmp/install.log" 2>&1 &&
   env -u MAKEFLAGS -u MFLAGS ${MAKE:-make} -s BUILD="$BUILD" DESTDIR="$tmp/stage2" PREFIX=/usr uninstall >> "$tmp/install.log" 2>&1; then
    left=$(find "$tmp/stage2" -type f -o -type l)
    check "make uninstall leaves no file (left: $left)" [ -z "$left" ]
else
    bad "make install/uninstall into $tmp/stage2 failed:"; tail -10 "$tmp/install.log"
fi
finish
