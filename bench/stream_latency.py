#!/usr/bin/env python3
"""Streaming latency of `clipmod predict --jsonl -` (issue 11 item 2): write one line, wait for
its answer, repeat; prints the time to the first answer (includes model load) and the median /
max per-line latency after that. Usage (from the repository root):
  python3 bench/stream_latency.py MODEL [IMAGE] [N] [--vocab V]
Run niced on a shared machine; the figures then mean little beyond "answered before the next
line" (the property the test checks)."""
import json, os, select, statistics, subprocess, sys, time

args = [a for a in sys.argv[1:] if not a.startswith("--vocab")]
vocab = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--vocab=")), None)
model = args[0]
image = args[1] if len(args) > 1 else "../shared/data/coco/000000039769.png"
n = int(args[2]) if len(args) > 2 else 20
cmd = [os.environ.get("CLIPMOD_BIN", "build/clipmod"), "predict", "--model", model, "--jsonl", "-"]
if vocab:
    cmd += ["--vocab", vocab]
p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
lat = []
for i in range(n):
    line = json.dumps({"image": image, "text": "a couple of cats %d" % i}) + "\n"
    t0 = time.monotonic()
    p.stdin.write(line.encode())
    buf = b""
    while not buf.endswith(b"\n"):
        r, _, _ = select.select([p.stdout], [], [], 120)
        if not r:
            sys.exit("no answer within 120 s")
        buf += os.read(p.stdout.fileno(), 65536)
    lat.append(time.monotonic() - t0)
p.stdin.close()
p.wait()
rest = lat[1:] or lat
print("first answer %.1f ms (model load included); then median %.1f ms, max %.1f ms over %d lines"
      % (lat[0] * 1e3, statistics.median(rest) * 1e3, max(rest) * 1e3, len(rest)))
