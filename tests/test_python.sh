#!/bin/sh
# test_python.sh — runs python/tests/run.py (unittest over python/tests/test_*.py: the ctypes binding
# python/clipmod over $BUILD/libclipmod.so against the CLI and the goldens) with a Python 3 that has
# numpy (Debian's python3-numpy: /usr/bin/python3 first, then python3 on PATH). Skips when there is
# none (a failure under CI=true, where install-deps.sh has installed it), and under sanitizer builds
# (loading an ASan library into python needs the runtime preloaded). Run by `make test` from the
# repository root.
set -u
BUILD=${BUILD:-build}
if [ -n "${CLIPMOD_SANITIZED:-}" ]; then
    echo "  SKIPPED test_python: sanitizer build"; echo "test_python: 0 passed, 0 failed, 1 skipped"; exit 0
fi
py=""
for c in /usr/bin/python3 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c "import numpy" 2>/dev/null; then py=$c; break; fi
done
if [ -z "$py" ]; then
    if [ -n "${CI:-}" ] && [ "${CI}" != false ]; then
        echo "  FAIL test_python: no python3 with numpy under CI (scripts/install-deps.sh installs python3-numpy)"
        echo "test_python: 0 passed, 1 failed"; exit 1
    fi
    echo "  SKIPPED test_python: no python3 with numpy (apt-get install python3-numpy)"
    echo "test_python: 0 passed, 0 failed, 1 skipped"; exit 0
fi
CLIPMOD_LIB="$BUILD/libclipmod.so" PYTHONPATH="python${PYTHONPATH:+:$PYTHONPATH}" BUILD="$BUILD" \
    exec "$py" python/tests/run.py 2>&1
