#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/ (docs/fuzzing.md).

Deterministic, standard library only (plus a C compiler with libjpeg and libwebp for the JPEG and
WebP seeds, built from tests/fuzz/seed_images.c). Run from the repository root:
    python3 tests/fuzz/make_corpus.py
Seeds are small valid (and a few nearly valid) inputs; the fuzzer mutates from there. Inputs found
by fuzzing that are worth keeping (crash reproducers, minimised new coverage) are added by hand
next to these and are not overwritten (this script only writes the seed-*.* names).
"""
import collections, gzip, io, json, os, pickle, struct, subprocess, sys, tarfile, tempfile, types, zipfile, zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def out(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- safetensors ----------------------------------------------------------------------------
DT = {"F32": ("<f", 4), "F16": ("<e", 2), "F64": ("<d", 8), "I64": ("<q", 8), "I32": ("<i", 4),
      "I16": ("<h", 2), "I8": ("<b", 1), "U8": ("<B", 1), "BOOL": ("<B", 1), "BF16": ("<H", 2)}


def safetensors(tensors, meta=None):
    """tensors: list of (name, dtype, shape, values)."""
    hdr, blob = {}, b""
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, dt, shape, vals in tensors:
        fmt, size = DT[dt]
        data = b"".join(struct.pack(fmt, v) for v in vals)
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + blob


TINY_CFG = {"model_name": "tiny", "model_cfg": {"embed_dim": 16, "quick_gelu": False,
            "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
            "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1}},
            "lora": {"enabled": True, "r": 4, "alpha": 32}, "head": {"enabled": True, "d": 16, "heads": 2, "ff": 64,
            "layers": 1, "classes": 7, "dropout_design": 0.1, "classifier_dropout_design": 0.2}}


def gen_safetensors():
    out("safetensors", "dtypes.safetensors", safetensors([
        ("a.f32", "F32", [2, 3], [0.5, -1, 2, 3, 4, 5]), ("b.f16", "F16", [4], [1, 2, 0.25, -8]),
        ("c.bf16", "BF16", [2], [0x3f80, 0xc000]), ("d.f64", "F64", [], [3.25]),
        ("e.i64", "I64", [2], [7, -7]), ("f.i32", "I32", [1, 1], [5]), ("g.i16", "I16", [2], [1, -1]),
        ("h.i8", "I8", [3], [1, 2, -3]), ("i.u8", "U8", [2], [255, 0]), ("j.bool", "BOOL", [2], [1, 0]),
        ("k.empty", "F32", [0, 4], [])], meta={"format": "pt"}))
    ckpt_meta = {"format": "pt", "clipmod_checkpoint": "1", "epoch": "2", "step": "40", "name": "run",
                 "model_config": json.dumps(TINY_CFG), "has_lora": "true", "has_head": "true",
                 "train_mode": "lora", "lock_image": "false", "lock_text": "false", "trainable_only": "false",
                 "base_model": "", "rng": json.dumps({"data": "0123456789abcdef 1 2 3", "dropout": "a b c d"}),
                 "optimizer": json.dumps({"type": "adamw", "lr": 5e-4, "betas": [0.9, 0.98], "eps": 1e-6,
                                          "weight_decay": 0.2, "step": {"x": 40}}), "tokenizer": "bpe"}
    out("safetensors", "checkpoint.safetensors", safetensors(
        [("x", "F32", [2], [1, 2]), ("optimizer.exp_avg.x", "F32", [2], [0, 0]),
         ("optimizer.exp_avg_sq.x", "F32", [2], [0, 0])], meta=ckpt_meta))
    # a tiny CLIP-shaped file: the config is guessed from these shapes (no model_config)
    w = 64   # the shape guess assumes 64-wide heads
    shapes = [("visual.conv1.weight", [w, 3, 2, 2]), ("visual.positional_embedding", [5, w]),
              ("visual.transformer.resblocks.0.ln_1.weight", [w]),
              ("positional_embedding", [4, w]), ("token_embedding.weight", [8, w]),
              ("transformer.resblocks.0.ln_1.weight", [w]), ("text_projection", [w, 4]),
              ("visual.proj", [w, 4])]
    ts = []
    for n, s in shapes:
        k = 1
        for d in s:
            k *= d
        ts.append((n, "F16", s, [0.0] * k))
    out("safetensors", "clip-shapes.safetensors", safetensors(ts))
    out("safetensors", "empty.safetensors", safetensors([], meta={}))


# ---- torch zip + pickle ---------------------------------------------------------------------
def fake_torch():
    """Modules named like torch's, so that pickle writes the same GLOBALs torch.save does."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*a):
        pass

    def _rebuild_parameter(*a):
        pass
    for fn in (_rebuild_tensor_v2, _rebuild_parameter):
        fn.__module__ = utils.__name__
        fn.__qualname__ = fn.__name__
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    utils._rebuild_parameter = _rebuild_parameter
    for st in ("FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "DoubleStorage"):
        cls = type(st, (), {})
        cls.__module__ = "torch"
        cls.__qualname__ = st
        setattr(torch, st, cls)
    torch._utils = utils
    sys.modules["torch"] = torch
    sys.modules["torch._utils"] = utils
    return torch, utils


TORCH, UTILS = fake_torch()


class Storage:
    def __init__(self, key, stype, numel):
        self.key, self.stype, self.numel = key, stype, numel


class Tensor:
    def __init__(self, storage, offset, size, stride, param=False):
        self.storage, self.offset, self.size, self.stride, self.param = storage, offset, size, stride, param

    def __reduce__(self):
        t = (UTILS._rebuild_tensor_v2, (self.storage, self.offset, tuple(self.size), tuple(self.stride), False,
                                         collections.OrderedDict()))
        if self.param:
            return (UTILS._rebuild_parameter, (Tensor(self.storage, self.offset, self.size, self.stride), True,
                                               collections.OrderedDict()))
        return t


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.stype, obj.key, "cpu", obj.numel)
        return None


def dumps(obj):
    b = io.BytesIO()
    TorchPickler(b, protocol=2).dump(obj)
    return b.getvalue()


def torch_zip(obj, storages, compress=False):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", dumps(obj))
        z.writestr("archive/version", "3\n")
        for k, data in storages.items():
            z.writestr("archive/data/" + k, data)
    return b.getvalue()


def gen_torchzip():
    F = TORCH.FloatStorage
    s0, s1 = Storage("0", F, 16), Storage("1", TORCH.HalfStorage, 32)
    sd = collections.OrderedDict()
    sd["w"] = Tensor(s0, 0, [2, 3], [3, 1])
    sd["b"] = Tensor(s0, 6, [4], [1])
    sd["h"] = Tensor(s1, 0, [2, 2], [2, 1], param=True)
    bad = collections.OrderedDict(sd)
    bad["t"] = Tensor(s0, 1, [3, 2], [1, 3])             # a transposed (non-contiguous) view: refused
    storages = {"0": bytes(range(64)), "1": bytes(64)}
    # odd first byte: the rest is a pickle, wrapped by the target with storages 0..3 of 64 bytes
    out("torchzip", "pickle-sd.bin", b"\x01" + dumps(sd))
    out("torchzip", "pickle-noncontiguous.bin", b"\x01" + dumps(bad))
    ck = {"epoch": 3, "name": "run", "state_dict": collections.OrderedDict(
        (("module.w", Tensor(s0, 0, [2, 2], [2, 1])), ("module.b", Tensor(s0, 4, [2], [1])))),
        "optimizer": {"state": {0: {"step": Tensor(Storage("2", F, 1), 0, [], []), "exp_avg": Tensor(
            Storage("2", F, 16), 0, [2, 2], [2, 1]), "exp_avg_sq": Tensor(Storage("3", F, 16), 0, [2, 2], [2, 1])},
            1: {"step": 5.0}},
            "param_groups": [{"lr": 5e-4, "betas": (0.9, 0.98), "eps": 1e-6, "weight_decay": 0.2, "amsgrad": False,
                              "maximize": False, "initial_lr": 5e-4, "params": [0, 1]}]}}
    out("torchzip", "pickle-ckpt.bin", b"\x01" + dumps(ck))
    out("torchzip", "pickle-scalars.bin", b"\x01" + dumps({"a": [1, 2.5, "x", None, True, (1, 2)], "b": -(2 ** 40)}))
    # even first byte: a whole file
    out("torchzip", "zip-stored.bin", b"\x00" + torch_zip(sd, storages))
    out("torchzip", "zip-deflated.bin", b"\x00" + torch_zip(sd, storages, compress=True))
    out("torchzip", "zip-ckpt.bin", b"\x00" + torch_zip(ck, {"0": bytes(64), "2": bytes(64), "3": bytes(64)}))


# ---- tar / WebDataset -----------------------------------------------------------------------
def tar_bytes(members, fmt=tarfile.USTAR_FORMAT, gz=False):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=fmt) as t:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            if data is None:
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            else:
                ti.size = len(data)
                ti.mtime = 0
                t.addfile(ti, io.BytesIO(data))
    raw = b.getvalue()
    return gzip.compress(raw, mtime=0) if gz else raw


def gen_wds():
    sample = [("000.jpg", b"\xff\xd8\xff\xe0JFIF"), ("000.txt", b"a cat"),
              ("000.json", b'{"label": 2, "dataset": "fakeddit"}'),
              ("001.png", b"\x89PNG\r\n\x1a\n"), ("001.txt", b"a dog"), ("001.json", b'{"tweet_id": "1", "labels": [0]}'),
              ("002.txt", b"no json"), ("002.TXT", b"upper")]
    out("wds", "ustar.tar", tar_bytes(sample))
    out("wds", "gnu-longname.tar", tar_bytes([("d/" + "x" * 120 + ".a.txt", b"long"), ("d/k.jpg", b"1"),
                                                ("dir", None), ("__key__", b"meta"), ("d/.hidden", b"h")],
                                               fmt=tarfile.GNU_FORMAT))
    out("wds", "pax.tar", tar_bytes([("p/\u00e9t\u00e9." + "y" * 100 + ".txt", b"pax"), ("p/a.json", b"{}"),
                                      ("p/a.txt", b"t")], fmt=tarfile.PAX_FORMAT))
    out("wds", "gzip.tar.gz", tar_bytes(sample[:3], gz=True))


# ---- JSON configs and labels ----------------------------------------------------------------
def gen_config_json():
    out("config_json", "open_clip_config.json", json.dumps(TINY_CFG).encode())
    out("config_json", "vit-b-32.json", json.dumps({"embed_dim": 512, "vision_cfg": {"image_size": 224, "layers": 12,
        "width": 768, "patch_size": 32}, "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512,
        "heads": 8, "layers": 12}}).encode())
    out("config_json", "quickgelu-hf.json", json.dumps({"embed_dim": 16, "quick_gelu": True, "vision_cfg": {
        "image_size": [32, 32], "layers": 1, "width": 32, "patch_size": 16, "mlp_ratio": 2.0},
        "text_cfg": {"hf_model_name": "x"}}).encode())
    out("config_json", "label-ours.json", b'{"label": 3, "dataset": "mmhs150k"}')
    out("config_json", "label-fakeddit.json", b'{"dataset": "fakeedit", "6_way_label": 4}')
    out("config_json", "label-tweet.json", b'{"tweet_id": "123", "labels": [0, 1, 0]}')


# ---- argument lists -------------------------------------------------------------------------
def gen_args():
    lists = [["--train-data", "a-{000..009}.tar::b.tar", "--train-num-samples", "128", "--batch-size", "8",
              "--epochs", "2", "--lr", "1e-4", "--wd", "0.1", "--warmup", "10", "--model", "ViT-B-32",
              "--enable-lora", "--precision", "amp_bf16", "--seed", "0"],
             ["--train-data=x.tar", "--image-mean", "0.5", "0.5", "0.5", "--image-std", "0.2", "0.2", "0.2",
              "--aug-cfg", "scale=(0.9,1.0)", "--force-image-size", "224", "--lr-scheduler", "cosine",
              "--epochs-cooldown", "1", "--lr-cooldown-end", "0.0", "--grad-clip-norm", "1.0", "--accum-freq", "2"],
             ["--help"], ["--", "--lr"], ["--lr", "nan", "--beta1", "-1"], ["--unknown", "1"]]
    for i, l in enumerate(lists):
        out("args", "argv%d.bin" % i, b"\x00".join(a.encode() for a in l))


# ---- captions --------------------------------------------------------------------------------
def gen_tokenizer():
    caps = ["a photo of a cat", "Hello, World!! It's 2024 &amp; we're   here &lt;3",
            "caf\u00e9 na\u00efve \u65e5\u672c\u8a9e \U0001F600 emoji", "&#128512; &quot;quoted&quot; &nbsp;x &amp;amp;",
            "don't WON'T they'll I'm we've", "x" * 300, "a1b2c3 123456789 -- ... ??? !!!"]
    for i, c in enumerate(caps):
        out("tokenizer", "caption%d.txt" % i, c.encode())
    out("tokenizer", "invalid-utf8.txt", b"ok \xff\xfe \xc3\x28 \xe2\x82 \xf0\x9f\x98 end\x00nul")


# ---- images ---------------------------------------------------------------------------------
def png(w, h, color_type, bit_depth, rows, extra=b"", interlace=0):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, interlace)
    raw = b"".join(b"\x00" + r for r in rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def gen_images():
    w, h = 7, 5
    out("image", "rgb8.png", png(w, h, 2, 8, [bytes(sum(([x * 30, y * 40, 128] for x in range(w)), [])) for y in range(h)]))
    out("image", "gray16.png", png(w, h, 0, 16, [bytes(sum(([x, y * 9] for x in range(w)), [])) for y in range(h)]))
    pal = struct.pack(">I", 9) + b"PLTE" + bytes([255, 0, 0, 0, 255, 0, 0, 0, 255])
    pal += struct.pack(">I", zlib.crc32(b"PLTE" + bytes([255, 0, 0, 0, 255, 0, 0, 0, 255])) & 0xffffffff)
    trns = struct.pack(">I", 2) + b"tRNS" + b"\x00\x80" + struct.pack(">I", zlib.crc32(b"tRNS\x00\x80") & 0xffffffff)
    out("image", "palette-trns.png", png(w, h, 3, 2, [bytes([0b00011011, 0b00011011]) for _ in range(h)], pal + trns))
    # Adam7: the pass sub-images' rows, each with its own filter byte
    iw, ih = 5, 5
    pix = lambda x, y: bytes([x * 50, y * 50, (x + y) * 20, 200])
    rows = []
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)):
        xs = range(x0, iw, dx)
        if not xs:
            continue
        rows += [b"".join(pix(x, y) for x in xs) for y in range(y0, ih, dy)]
    out("image", "rgba-interlaced.png", png(iw, ih, 6, 8, rows, interlace=1))
    out("image", "gray-alpha.png", png(2, 2, 4, 8, [b"\x10\x80\x20\xff", b"\x30\x00\x40\x40"]))
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seed_images.c")
    with tempfile.TemporaryDirectory() as td:
        exe = os.path.join(td, "seed_images")
        subprocess.check_call(["cc", "-O1", "-o", exe, src, "-ljpeg", "-lwebp"])
        subprocess.check_call([exe, os.path.join(ROOT, "image")])


if __name__ == "__main__":
    gen_safetensors()
    gen_torchzip()
    gen_wds()
    gen_config_json()
    gen_args()
    gen_tokenizer()
    gen_images()
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(ROOT) for f in fs)
    print("corpus: %d bytes under %s" % (total, ROOT))
