#!/bin/sh
# Installs clipmod's build and test dependencies from Debian's packages (idempotent; run as root).
# chromium: only the tests use it (headless, to check that `clipmod report`'s HTML renders).
set -eu
PKGS="build-essential pkg-config libopenblas-openmp-dev libdnnl-dev libjpeg62-turbo-dev libpng-dev \
libwebp-dev libzip-dev zlib1g-dev libarchive-dev libcjson-dev libutf8proc-dev libcurl4-openssl-dev \
libssl-dev python3 python3-numpy chromium openmpi-bin libopenmpi-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
fi
echo "clipmod dependencies installed"
