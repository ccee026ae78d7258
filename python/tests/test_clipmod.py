"""The Python binding (python/clipmod) against the C CLI, the goldens and itself.

Run from the repository root by tests/test_python.sh (`make test`): python/tests/run.py. Environment:
BUILD (default build: the CLI is $BUILD/clipmod, the library $CLIPMOD_LIB), CLIPMOD_SHARED (default
../shared). Cases needing ../shared skip when it is absent, and fail under CI=true (SHARED_OR_SKIP).
"""
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import unittest
import zlib

import numpy as np

import clipmod

REPO = os.getcwd()
BUILD = os.environ.get("BUILD", "build")
CLI = os.path.join(REPO, BUILD, "clipmod")
SHARED = os.environ.get("CLIPMOD_SHARED", os.path.join(REPO, "..", "shared"))
TINY = os.path.join(SHARED, "golden", "tiny")
IMAGES = os.path.join(SHARED, "golden", "preprocess", "images")
HAVE_SHARED = os.path.isdir(os.path.join(SHARED, "golden"))
UNDER_CI = os.environ.get("CI", "") not in ("", "false")


def shared_or_skip(tc):
    if HAVE_SHARED:
        return
    if UNDER_CI:
        tc.fail("shared data %s missing under CI" % SHARED)
    tc.skipTest("shared data not found at %s (set CLIPMOD_SHARED)" % SHARED)


def cli(*args, check=True):
    r = subprocess.run([CLI] + list(args), capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError("clipmod %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r


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


class TmpDir:
    path = None

    @classmethod
    def setUpModule(cls):
        cls.path = tempfile.mkdtemp(prefix="cm_py_")

    @classmethod
    def tearDownModule(cls):
        if cls.path:
            shutil.rmtree(cls.path, ignore_errors=True)


def setUpModule():
    TmpDir.setUpModule()


def tearDownModule():
    TmpDir.tearDownModule()


def tmp(name):
    return os.path.join(TmpDir.path, name)


# ---- no model ------------------------------------------------------------------------------------

class TestLibrary(unittest.TestCase):
    def test_version_is_the_headers(self):
        header = open(os.path.join(REPO, "include", "clipmod.h")).read()
        want = header.split('#define CLIPMOD_VERSION "')[1].split('"')[0]
        self.assertEqual(clipmod.version(), want)
        self.assertEqual(cli("--version").stdout.split()[-1], want)

    def test_library_search(self):
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "python"))
        code = "import clipmod; print(clipmod.library_path())"
        # $CLIPMOD_LIB wins, and a wrong one is an error naming it (no silent fallback)
        env["CLIPMOD_LIB"] = "/nonexistent/libclipmod.so"
        r = subprocess.run([sys.executable, "-c", code], env=env,
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("/nonexistent/libclipmod.so", r.stderr)
        # without it, the source tree's build/ (the package sits in python/clipmod); run from elsewhere
        del env["CLIPMOD_LIB"]
        if not os.path.exists(os.path.join(REPO, "build", "libclipmod.so")):
            self.skipTest("no build/libclipmod.so (BUILD=%s)" % BUILD)
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                           cwd="/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.path.realpath(r.stdout.strip()), os.path.realpath(os.path.join(REPO, "build", "libclipmod.so")))

    def test_class_names(self):
        self.assertEqual(clipmod.class_name(0), "True")
        self.assertEqual(clipmod.class_name(6), "Hate")
        self.assertIsNone(clipmod.class_name(7))


class TestTokenize(unittest.TestCase):
    def test_equals_cli(self):
        for text in ["a photo of a cat", "Ünïcode & <b>HTML</b>   spaces", ""]:
            want = json.loads(cli("tokenize", text).stdout.strip().splitlines()[0])
            got = clipmod.tokenize(text)
            self.assertEqual(got.dtype, np.int32)
            self.assertEqual(got.shape, (1, 77))
            self.assertEqual(got[0].tolist(), want, text)
        self.assertEqual(clipmod.tokenize("a photo of a cat")[0, :8].tolist(), [49406, 320, 1125, 539, 320, 2368, 49407, 0])

    def test_batch_and_context(self):
        ids = clipmod.tokenize(["a photo of a cat", "a dog"])
        self.assertEqual(ids.shape, (2, 77))
        self.assertEqual(clipmod.tokenize("a dog")[0].tolist(), ids[1].tolist())
        self.assertEqual(clipmod.tokenize("a photo of a cat", context_length=4)[0].tolist(), [49406, 320, 1125, 49407])

    def test_golden_cases(self):
        shared_or_skip(self)
        cases = [json.loads(l) for l in open(os.path.join(SHARED, "golden", "tokenizer", "cases.jsonl"), encoding="utf-8")]
        got = clipmod.tokenize([c["text"] for c in cases])
        same = sum(got[i].tolist() == c["ids"] for i, c in enumerate(cases))
        self.assertGreater(len(cases), 300)
        self.assertEqual(same, len(cases))

    def test_bad_vocabulary_names_it(self):
        with self.assertRaises(clipmod.ClipmodError) as cm:
            clipmod.Tokenizer("/nonexistent/vocab.txt.gz")
        self.assertIn("/nonexistent/vocab.txt.gz", str(cm.exception))
        self.assertLess(cm.exception.status, 0)


class TestImages(unittest.TestCase):
    def test_load_and_preprocess_equal_cli(self):
        pix = np.random.default_rng(5).integers(0, 256, size=(157, 301, 3), dtype=np.uint8)
        png = tmp("x.png")
        write_png(png, pix)
        self.assertTrue(np.array_equal(clipmod.load_image(png), pix))
        a = clipmod.preprocess(png)
        self.assertEqual((a.dtype, a.shape), (np.float32, (3, 224, 224)))
        self.assertTrue(np.array_equal(a, clipmod.preprocess(pix)))
        cli("preprocess", "--image", png, "--out", tmp("x.f32"))
        self.assertTrue(np.array_equal(np.fromfile(tmp("x.f32"), dtype="<f4").reshape(3, 224, 224), a))

    def test_golden(self):
        shared_or_skip(self)
        g = os.path.join(SHARED, "golden", "preprocess")
        got = clipmod.preprocess(os.path.join(g, "images", "000000086220.jpg"))
        want = np.fromfile(os.path.join(g, "000000086220.jpg.f32"), dtype="<f4").reshape(3, 224, 224)
        self.assertLessEqual(np.abs(got - want).max(), 1e-6)

    def test_errors(self):
        with self.assertRaises(clipmod.ClipmodError) as cm:
            clipmod.load_image("/nonexistent/cat.jpg")
        self.assertIn("/nonexistent/cat.jpg", str(cm.exception))
        with open(tmp("notimage.jpg"), "wb") as f:
            f.write(b"this is not an image")
        with self.assertRaises(clipmod.ClipmodError) as cm:
            clipmod.preprocess(tmp("notimage.jpg"))
        self.assertIn("notimage.jpg", str(cm.exception))
        with self.assertRaises(ValueError):
            clipmod.preprocess(np.zeros((4, 4), dtype=np.uint8))

    def test_bad_model_path_names_it(self):
        with self.assertRaises(clipmod.ClipmodError) as cm:
            clipmod.Model("/nonexistent/model.safetensors")
        self.assertIn("/nonexistent/model.safetensors", str(cm.exception))


# ---- the tiny OpenCLIP golden model (plain weights + config) -----------------------------------------

class TestTinyGolden(unittest.TestCase):
    def setUp(self):
        shared_or_skip(self)
        self.m = clipmod.Model(os.path.join(TINY, "model.safetensors"), model_name=os.path.join(TINY, "config.json"))

    def tearDown(self):
        if getattr(self, "m", None):
            self.m.close()

    def test_dims(self):
        m = self.m
        self.assertEqual((m.embed_dim, m.image_size, m.context_length, m.num_classes, m.tokenizer),
                         (32, 64, 77, 7, "bpe"))
        self.assertEqual(m.class_names[0], "True")

    def test_features_and_head_vs_openclip(self):
        inp = read_safetensors(os.path.join(TINY, "inputs.safetensors"))
        exp = read_safetensors(os.path.join(TINY, "expected.safetensors"))
        imgs, toks = inp["images"], inp["tokens"].astype(np.int32)
        u, v = self.m.embed_images(imgs), self.m.embed_texts(toks)
        self.assertEqual((u.dtype, u.shape), (np.float32, (8, 32)))
        self.assertLessEqual(np.abs(u - exp["image_features"]).max(), 1e-5)
        self.assertLessEqual(np.abs(v - exp["text_features"]).max(), 1e-5)
        self.assertLessEqual(np.abs(np.linalg.norm(u, axis=1) - 1).max(), 1e-5)
        ur = self.m.embed_images(imgs, normalize=False)
        self.assertLessEqual(np.abs(ur - exp["image_features_raw"]).max(), 5e-5)
        probs, labels, logits = self.m.classify(imgs, toks, return_logits=True)
        hl = exp["head_logits"]
        self.assertLessEqual(np.abs(logits - hl).max(), 1e-5 * max(1.0, np.abs(hl).max()))
        sm = np.exp(hl - hl.max(1, keepdims=True))
        sm /= sm.sum(1, keepdims=True)
        self.assertLessEqual(np.abs(probs - sm).max(), 1e-6)
        self.assertEqual(labels, [clipmod.class_name(k) for k in sm.argmax(1)])

    def test_embed_equals_cli(self):
        ims = [os.path.join(IMAGES, n) for n in ("000000086220.jpg", "000000039769.png", "tall_90x700.png")]
        texts = ["a photo of a cat", "A couple of cats laying on top of a pink blanket."]
        args = ["embed", "--model", os.path.join(TINY, "model.safetensors"), "--model-name", os.path.join(TINY, "config.json")]
        for i in ims:
            args += ["--image", i]
        for t in texts:
            args += ["--text", t]
        rows = [json.loads(l) for l in cli(*args).stdout.splitlines() if l.strip()]
        want_i = np.array([r["embedding"] for r in rows if r["type"] == "image"], dtype=np.float64)
        want_t = np.array([r["embedding"] for r in rows if r["type"] == "text"], dtype=np.float64)
        self.assertEqual((want_i.shape, want_t.shape), ((3, 32), (2, 32)))
        got_i, got_t = self.m.embed_images(ims), self.m.embed_texts(texts)
        self.assertLessEqual(np.abs(got_i - want_i).max(), 1e-6)
        self.assertLessEqual(np.abs(got_t - want_t).max(), 1e-6)
        # the same through explicit preprocess / tokenize
        self.assertTrue(np.array_equal(self.m.embed_images(self.m.preprocess(ims)), got_i))
        self.assertTrue(np.array_equal(self.m.embed_texts(self.m.tokenize(texts)), got_t))
        self.assertEqual(self.m.preprocess(ims[0]).shape, (3, 64, 64))

    def test_sessions_chunks_and_threads(self):
        inp = read_safetensors(os.path.join(TINY, "inputs.safetensors"))
        imgs = inp["images"]
        want = self.m.embed_images(imgs)
        with clipmod.Model(os.path.join(TINY, "model.safetensors"), model_name=os.path.join(TINY, "config.json"),
                           max_batch=3) as small:      # 8 rows in chunks of 3
            self.assertLessEqual(np.abs(small.embed_images(imgs) - want).max(), 1e-6)
        out = [None] * 4

        def work(k):
            out[k] = self.m.embed_images(imgs)
        ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for o in out:
            self.assertTrue(np.array_equal(o, want))

    def test_shape_errors(self):
        inp = read_safetensors(os.path.join(TINY, "inputs.safetensors"))
        with self.assertRaisesRegex(ValueError, r"\[n, 3, 64, 64\]"):
            self.m.embed_images(np.zeros((1, 3, 224, 224), np.float32))
        with self.assertRaisesRegex(ValueError, "8 images but 3"):
            self.m.classify(inp["images"], inp["tokens"][:3])
        with self.assertRaisesRegex(ValueError, r"\[n, 77\]"):
            self.m.embed_texts(np.zeros((2, 5), np.int32))
        with self.assertRaises(clipmod.ClipmodError) as cm:
            self.m.embed_images(["/nonexistent/a.png"])
        self.assertIn("/nonexistent/a.png", str(cm.exception))
        self.m.close()
        with self.assertRaisesRegex(ValueError, "closed"):
            self.m.embed_texts("a")


# ---- checkpoints of `clipmod train`: LoRA over the tiny model (BPE), a full byte-tokenizer one ---------------------

SAMPLES = [("000000086220.jpg", "A car and a public transit vehicle on a road.", 0),
           ("000000039769.png", "A couple of cats laying on top of a pink blanket.", 6),
           ("letterbox_256.jpg", "thumbs up but i dont think it will fit", 1),
           ("gray.jpg", "a gray picture", 0),
           ("palette.png", "a title with a word", 4),
           ("progressive.jpg", "orthodox priest blesses rocket before liftoff", 2),
           ("wide_1000x120.png", "Google to remove image of dead teenager from Maps", 0),
           ("tall_90x700.png", "a long clean title", 5)]


def write_shard(path):
    with tarfile.open(path, "w") as tar:
        for i, (img, cap, label) in enumerate(SAMPLES):
            ext = img.rsplit(".", 1)[1]
            for name, data in (("s%02d.%s" % (i, ext), open(os.path.join(IMAGES, img), "rb").read()),
                               ("s%02d.txt" % i, cap.encode()), ("s%02d.json" % i, json.dumps({"label": label}).encode())):
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))


class TestLoraCheckpoints(unittest.TestCase):
    ckpt = {}

    @classmethod
    def setUpClass(cls):
        if not HAVE_SHARED:
            return
        os.makedirs(tmp("shards"), exist_ok=True)
        write_shard(tmp("shards/00000.tar"))
        common = ["--batch-size", "4", "--epochs", "1", "--train-num-samples", "8", "--lr", "1e-3", "--warmup", "1",
                  "--precision", "fp32", "--workers", "1", "--seed", "5", "--dataset-type", "webdataset",
                  "--train-data", tmp("shards/00000.tar"), "--logs", tmp("runs"), "--threads", "2"]
        # BPE: LoRA over the golden tiny weights (the checkpoint finds its base by itself)
        cli("train", "--model", os.path.join(TINY, "config.json"), "--pretrained", os.path.join(TINY, "model.safetensors"),
            "--enable-lora", "--name", "bpe", *common)
        # bytes: the tiny config with the byte-level vocabulary (258), a full checkpoint from the seed
        cfg = json.load(open(os.path.join(TINY, "config.json")))
        cfg["model_cfg"]["text_cfg"]["vocab_size"] = 258
        with open(tmp("tiny_bytes.json"), "w") as f:
            json.dump(cfg, f)
        cli("train", "--model", tmp("tiny_bytes.json"), "--tokenizer", "bytes", "--name", "bytes", *common)
        for tok in ("bpe", "bytes"):
            cls.ckpt[tok] = tmp("runs/%s/checkpoints/epoch_1.safetensors" % tok)

    def pairs(self):
        return [os.path.join(IMAGES, "000000086220.jpg"), os.path.join(IMAGES, "rgba_alpha.png")], \
            ["a photo of a cat", "Soviet-style propaganda commercial"]

    def check_predict(self, tok):
        shared_or_skip(self)
        ck = self.ckpt[tok]
        ims, caps = self.pairs()
        args = ["predict", "--model", ck]
        for i, c in zip(ims, caps):
            args += ["--image", i, "--text", c]
        rows = [json.loads(l) for l in cli(*args).stdout.splitlines() if l.strip()]
        with clipmod.Model(ck) as m:          # the API's default params: the base found from the checkpoint
            self.assertEqual(m.tokenizer, tok)
            probs, labels = m.classify(ims, caps)
            self.assertEqual((probs.dtype, probs.shape), (np.float32, (2, 7)))
            want = np.array([r["probs"] for r in rows])
            self.assertLessEqual(np.abs(probs - want).max(), 1e-6)
            self.assertEqual(labels, [r["label"] for r in rows])
            self.assertLessEqual(np.abs(probs.sum(1) - 1).max(), 1e-6)
            # embed of the checkpoint equals `clipmod embed` too (LoRA active in both towers)
            e = [json.loads(l) for l in cli("embed", "--model", ck, "--text", caps[0], "--image", ims[0]).stdout.splitlines()]
            got = {"image": m.embed_images(ims[0])[0], "text": m.embed_texts(caps[0])[0]}
            for r in e:
                self.assertLessEqual(np.abs(got[r["type"]] - np.array(r["embedding"])).max(), 1e-6, r["type"])
            return m.tokenize(caps[0])[0]

    def test_bpe_checkpoint_equals_predict(self):
        ids = self.check_predict("bpe")
        self.assertEqual(ids.tolist(), clipmod.tokenize("a photo of a cat")[0].tolist())

    def test_bytes_checkpoint_equals_predict(self):
        ids = self.check_predict("bytes")
        b = list(b"a photo of a cat")
        self.assertEqual(ids[:len(b) + 2].tolist(), [256] + b + [257])
        self.assertFalse(ids[len(b) + 2:].any())

    def test_missing_base_names_it(self):
        shared_or_skip(self)
        with self.assertRaises(clipmod.ClipmodError) as cm:
            clipmod.Model(self.ckpt["bpe"], base_model="/nonexistent/base.safetensors")
        self.assertIn("/nonexistent/base.safetensors", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
