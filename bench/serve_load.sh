#!/bin/sh
# serve_load.sh — load test of `clipmod serve` with wrk (loopback only, bounded time), ViT-B-32
# formula weights with a head, next to the offline batch throughput measured in the same run:
#   1. requests/s and p50/p99 latency at concurrency 1, 8, 32 (POST /v1/classify, one JPEG + caption)
#   2. offline pairs/s (bench_serve --offline: same decode + transform + tokenize + forward, batch 32)
#   3. soak: concurrency 8 with 10% malformed bodies; the server must stay up; RSS at start and end
# Usage: sh bench/serve_load.sh [SECONDS_PER_LEVEL (default 20)] [SOAK_SECONDS (default 40)]
# Env: CLIPMOD_SHARED (../shared: the vocabulary and the COCO image), MAX_BATCH (32), MAX_WAIT_MS (10),
#      OMP_WAIT_POLICY (passive unless set).
# Everything runs under nice -n 19; on a shared machine the figures are indicative only.
set -eu
DUR=${1:-20}
SOAK=${2:-40}
SHARED=${CLIPMOD_SHARED:-../shared}
IMAGE=$SHARED/data/coco/000000086220.jpg
VOCAB=$SHARED/vocab
MAX_BATCH=${MAX_BATCH:-32}
MAX_WAIT_MS=${MAX_WAIT_MS:-10}
# as bench_model: passive OpenMP waiting for both sides (spinning loses 30-40% on shared cores)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
command -v wrk >/dev/null || { echo "serve_load: wrk not installed (apt-get install wrk)"; exit 1; }
[ -r "$IMAGE" ] || { echo "serve_load: $IMAGE missing (set CLIPMOD_SHARED)"; exit 1; }
make -s -j2 build/clipmod build/bench/bench_serve >/dev/null
T=$(mktemp -d /tmp/cm_serve_load_XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT INT TERM
nice -n 19 build/bench/bench_serve --write "$T/vitb32.safetensors" >/dev/null
# request bodies: a good one and a Lua script mixing in 10% malformed ones
python3 - "$IMAGE" "$T" <<'PY'
import base64, json, sys
img, t = sys.argv[1], sys.argv[2]
b = base64.b64encode(open(img, 'rb').read()).decode()
good = json.dumps({"image": b, "text": "A car and a public transit vehicle on a road."})
open(t + '/good.json', 'w').write(good)
def lua(s): return '[==[' + s + ']==]'
open(t + '/post.lua', 'w').write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
    'local f = io.open("%s/good.json"); wrk.body = f:read("*a"); f:close()\n' % t)
bad = ['{"image": "not base64 @@@", "text": "x"}', '{"image": "aGVsbG8=", "text": "x"}', '{"text": "no image"}',
       '{"image": "' + b[:5000] + '", "text": "truncated jpeg"}', '[{"image": 1}]', '{broken json']
open(t + '/soak.lua', 'w').write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
    'local f = io.open("%s/good.json"); local good = f:read("*a"); f:close()\n'
    'local bad = {%s}\nlocal n = 0\n'
    'request = function()\n  n = n + 1\n  if n %% 10 == 0 then return wrk.format(nil, nil, nil, bad[(n / 10) %% #bad + 1]) end\n'
    '  return wrk.format(nil, nil, nil, good)\nend\n' % (t, ', '.join(lua(x) for x in bad)))
PY
nice -n 19 build/clipmod serve --model "$T/vitb32.safetensors" --vocab "$VOCAB" --port 0 --max-batch "$MAX_BATCH" \
    --max-wait-ms "$MAX_WAIT_MS" --max-queue 1024 --timeout-ms 120000 >"$T/serve.out" 2>"$T/serve.err" &
PID=$!
i=0
while ! grep -q "listening on" "$T/serve.out" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 600 ] && { echo "serve_load: server did not start"; cat "$T/serve.err"; exit 1; }
    kill -0 $PID 2>/dev/null || { echo "serve_load: server exited"; cat "$T/serve.err"; exit 1; }
    sleep 0.1
done
URL=$(grep -o 'http://[0-9.]*:[0-9]*/' "$T/serve.out")
echo "== $(head -1 "$T/serve.out")"
# wrk leaves requests in the queue when its time is up: wait for them before the next figure
wait_idle() {
    k=0
    while [ "$(curl -s "${URL}metrics" | awk '/^clipmod_requests_in_flight/ {print $2}')" != "0" ] && [ $k -lt 1200 ]; do
        k=$((k + 1)); sleep 0.5
    done
}
rss() { awk '/VmRSS/ {print $2 " kB"}' /proc/$PID/status; }
# warm-up (oneDNN/OpenBLAS first calls)
curl -s -o /dev/null -H 'Content-Type: application/json' --data-binary @"$T/good.json" "${URL}v1/classify"
echo "RSS after warm-up: $(rss)"
for c in 1 8 32; do
    th=$([ $c -ge 2 ] && echo 2 || echo 1)
    nice -n 19 wrk -t$th -c$c -d${DUR}s --timeout 120s --latency -s "$T/post.lua" "${URL}v1/classify" >"$T/wrk_$c.txt" 2>&1 || true
    rps=$(awk '/Requests\/sec/ {print $2}' "$T/wrk_$c.txt")
    p50=$(awk '/^ +50%/ {print $2}' "$T/wrk_$c.txt")
    p99=$(awk '/^ +99%/ {print $2}' "$T/wrk_$c.txt")
    n=$(awk '/requests in/ {print $1}' "$T/wrk_$c.txt")
    non2xx=$(awk '/Non-2xx/ {print $5}' "$T/wrk_$c.txt")
    # wrk counts only the answers inside its window, which under-counts when latency is a sizeable
    # part of it (c=32): also give Little's law, c / mean latency, the steady-state rate
    little=$(awk -v c=$c '/^ +Latency +[0-9]/ && !done {done=1; v=$2; u=v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
        s = (u=="us") ? v/1e6 : (u=="ms") ? v/1e3 : (u=="m") ? v*60 : v; if (s > 0) printf "%.2f", c/s}' "$T/wrk_$c.txt")
    echo "serve c=$c: $rps req/s (c/mean latency: ${little:-?}/s), p50 $p50, p99 $p99 ($n requests in ${DUR}s, non-2xx ${non2xx:-0})"
    wait_idle
done
nice -n 19 build/bench/bench_serve --offline "$IMAGE" "$VOCAB" "$MAX_BATCH" "$DUR"
echo "batch sizes: $(curl -s "${URL}metrics" | awk '/^clipmod_batch_size_(sum|count)/ {printf "%s=%s ", $1, $2}')"
echo "soak start RSS: $(rss)"
nice -n 19 wrk -t2 -c8 -d${SOAK}s --timeout 120s -s "$T/soak.lua" "${URL}v1/classify" >"$T/wrk_soak.txt" 2>&1 || true
wait_idle
echo "soak: $(awk '/requests in/ {print $1}' "$T/wrk_soak.txt") requests, non-2xx $(awk '/Non-2xx/ {print $5}' "$T/wrk_soak.txt")"
kill -0 $PID 2>/dev/null || { echo "serve_load: SERVER DIED during the soak"; cat "$T/serve.err"; exit 1; }
curl -sf "${URL}healthz" >/dev/null && echo "healthz after soak: ok"
echo "soak end RSS: $(rss)"
curl -s "${URL}metrics" | grep '^clipmod_http_requests_total'
kill -TERM $PID
wait $PID && echo "server exit status 0 after SIGTERM"
PID=
