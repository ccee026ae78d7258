"""The Python binding (python/clipmod) against the C library and the goldens; run by tests/test_python.sh.
Prints one line per failed check and ends with "test_python: N passed, N failed, N skipped"."""
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np

import clipmod

passed = failed = skipped = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("  FAIL " + what)


def raises(fn, exc, needle, what):
    try:
        fn()
    except exc as e:
        check(needle in str(e), "%s: message %r lacks %r" % (what, str(e), needle))
        return
    except Exception as e:  # noqa: BLE001 - any other type is the failure being reported
        check(False, "%s: raised %s(%s), not %s" % (what, type(e).__name__, e, exc.__name__))
        return
    check(False, what + ": no exception")


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        dt = {"F32": np.float32, "I64": np.int64, "I32": np.int32}[v["dtype"]]
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype=dt).reshape(v["shape"])
    return out


def write_png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


repo = os.getcwd()
build = os.environ.get("BUILD", "build")
shared = os.environ.get("CLIPMOD_SHARED", os.path.join(repo, "..", "shared"))
have_shared = os.path.isdir(os.path.join(shared, "golden"))

# ---- version and tokenizer ---------------------------------------------------------------------
header = open(os.path.join(repo, "include", "clipmod.h")).read()
want_version = header.split('#define CLIPMOD_VERSION "')[1].split('"')[0]
check(clipmod.version() == want_version, "version %s != %s" % (clipmod.version(), want_version))
os.environ.pop("CLIPMOD_VOCAB", None)
ids = clipmod.tokenize(["a photo of a cat", "a dog"])
check(ids.dtype == np.int32 and ids.shape == (2, 77), "tokenize shape/dtype %s %s" % (ids.dtype, ids.shape))
check(ids[0, :8].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407, 0] and not ids[0, 8:].any(),
      "tokenize ids %s" % ids[0, :8].tolist())
check(clipmod.tokenize("a dog")[0].tolist() == ids[1].tolist(), "a str and a list give the same ids")
check(clipmod.tokenize("a photo of a cat", context_length=4)[0].tolist() == [49406, 320, 1125, 49407],
      "context_length 4 cuts with EOT last")
raises(lambda: clipmod.Tokenizer("/nonexistent/vocab.gz"), clipmod.ClipmodError, "/nonexistent/vocab.gz",
       "bad vocabulary path")
if have_shared:
    cases = [json.loads(l) for l in open(os.path.join(shared, "golden", "tokenizer", "cases.jsonl"), encoding="utf-8")]
    got = clipmod.tokenize([c["text"] for c in cases])
    same = sum(got[i].tolist() == c["ids"] for i, c in enumerate(cases))
    check(same == len(cases) and len(cases) > 300, "golden tokenizer cases: %d of %d identical" % (same, len(cases)))
else:
    skipped += 1

# ---- images: load_image / preprocess against the C CLI and the goldens -----------------------------
tmp = tempfile.mkdtemp(prefix="cm_py_")
rng = np.random.default_rng(5)
pix = rng.integers(0, 256, size=(157, 301, 3), dtype=np.uint8)
png = os.path.join(tmp, "x.png")
write_png(png, pix)
check(np.array_equal(clipmod.load_image(png), pix), "load_image returns the PNG's pixels")
a = clipmod.preprocess(png)
check(a.dtype == np.float32 and a.shape == (3, 224, 224), "preprocess shape %s" % (a.shape,))
check(np.array_equal(a, clipmod.preprocess(pix)), "preprocess(path) == preprocess(array)")
f32 = os.path.join(tmp, "x.f32")
r = subprocess.run([os.path.join(build, "clipmod"), "preprocess", "--image", png, "--out", f32], capture_output=True)
check(r.returncode == 0 and np.array_equal(np.fromfile(f32, dtype="<f4").reshape(3, 224, 224), a),
      "preprocess equals `clipmod preprocess` (rc %d %s)" % (r.returncode, r.stderr.decode()))
raises(lambda: clipmod.load_image("/nonexistent/cat.jpg"), clipmod.ClipmodError, "/nonexistent/cat.jpg", "bad image path")
raises(lambda: clipmod.preprocess(np.zeros((4, 4), dtype=np.uint8)), ValueError, "uint8", "2-D array")
if have_shared:
    g = os.path.join(shared, "golden", "preprocess")
    got = clipmod.preprocess(os.path.join(g, "images", "000000086220.jpg"))
    want = np.fromfile(os.path.join(g, "000000086220.jpg.f32"), dtype="<f4").reshape(3, 224, 224)
    check(np.abs(got - want).max() <= 1e-6, "preprocess vs OpenCLIP golden: max diff %g" % np.abs(got - want).max())
else:
    skipped += 1

# ---- model: embed and classify against the tiny OpenCLIP goldens --------------------------------------
if have_shared:
    t = os.path.join(shared, "golden", "tiny")
    inp = read_safetensors(os.path.join(t, "inputs.safetensors"))
    exp = read_safetensors(os.path.join(t, "expected.safetensors"))
    with clipmod.Model(os.path.join(t, "model.safetensors"), os.path.join(t, "config.json")) as m:
        check((m.embed_dim, m.image_size, m.num_classes) == (32, 64, 7),
              "tiny model dims %s" % ((m.embed_dim, m.image_size, m.num_classes),))
        imgs, toks = inp["images"], inp["tokens"].astype(np.int32)
        u, v = m.encode_image(imgs), m.encode_text(toks)
        check(np.abs(u - exp["image_features"]).max() <= 1e-5, "image features: %g" % np.abs(u - exp["image_features"]).max())
        check(np.abs(v - exp["text_features"]).max() <= 1e-5, "text features: %g" % np.abs(v - exp["text_features"]).max())
        ur = m.encode_image(imgs, normalize=False)
        check(np.abs(ur - exp["image_features_raw"]).max() <= 5e-5, "raw image features: %g" % np.abs(ur - exp["image_features_raw"]).max())
        probs, logits = m.classify(imgs, toks)
        hl = exp["head_logits"]
        check(np.abs(logits - hl).max() <= 1e-5 * max(1.0, np.abs(hl).max()), "head logits: %g" % np.abs(logits - hl).max())
        sm = np.exp(hl - hl.max(1, keepdims=True))
        sm /= sm.sum(1, keepdims=True)
        check(np.abs(probs - sm).max() <= 1e-6, "probs = softmax(head logits): %g" % np.abs(probs - sm).max())
        raises(lambda: m.encode_image(np.zeros((1, 3, 224, 224), np.float32)), ValueError, "[n, 3, 64, 64]", "wrong image size")
        raises(lambda: m.classify(imgs, toks[:3]), ValueError, "8 images but 3", "pair count mismatch")
    raises(lambda: clipmod.Model("/nonexistent/model.safetensors"), clipmod.ClipmodError, "/nonexistent/model.safetensors",
           "bad model path")
else:
    skipped += 1
    print("  SKIPPED model checks: shared data not found at %s (set CLIPMOD_SHARED)" % shared)

for f in os.listdir(tmp):
    os.unlink(os.path.join(tmp, f))
os.rmdir(tmp)
print("test_python: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
sys.exit(1 if failed else 0)
