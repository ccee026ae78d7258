"""clipmod — a thin ctypes binding over libclipmod.so, numpy arrays in and out (docs/python.md).

    import clipmod
    ids = clipmod.tokenize(["a photo of a cat"])            # int32 [1, 77]
    img = clipmod.preprocess("cat.jpg")                     # float32 [3, 224, 224]
    with clipmod.Model("epoch_10.safetensors") as m:
        u = m.encode_image(img[None])                       # float32 [1, E], L2-normalised
        v = m.encode_text(ids)
        probs, logits = m.classify(img[None], ids)          # float32 [1, 7] each

Every failure raises clipmod.ClipmodError with the library's message (naming the file, tensor or
argument at fault). The library is found at $CLIPMOD_LIB, else beside this package in the source
tree (build/libclipmod.so), else in the installed prefix (`make install` puts this package in
<prefix>/lib/python3/dist-packages/), else by the system loader (libclipmod.so.MAJOR).
"""
import ctypes
import os

import numpy as np

__all__ = ["ClipmodError", "CONTEXT_LEN", "Model", "Tokenizer", "load_image", "preprocess", "tokenize", "version"]

CONTEXT_LEN = 77
_SO_MAJOR = "0"


class ClipmodError(RuntimeError):
    """A clipmod call failed; str(e) is the library's message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _load_library():
    tried = []
    env = os.environ.get("CLIPMOD_LIB")
    candidates = [env] if env else []
    here = os.path.dirname(os.path.abspath(__file__))
    candidates.append(os.path.join(here, "..", "..", "build", "libclipmod.so"))    # source tree
    candidates.append(os.path.join(here, "..", "..", "..", "libclipmod.so." + _SO_MAJOR))  # installed:
    # <prefix>/lib/python3/dist-packages/clipmod -> <prefix>/lib/libclipmod.so.MAJOR
    candidates.append("libclipmod.so." + _SO_MAJOR)                              # the loader's search
    for c in candidates:
        if os.sep in c and not os.path.exists(c):
            tried.append(c + " (absent)")
            continue
        try:
            return ctypes.CDLL(c)
        except OSError as e:
            tried.append("%s (%s)" % (c, e))
            if c == env:
                break
    raise ImportError("clipmod: cannot load libclipmod.so; tried " + "; ".join(tried) +
                      " (build it with make, or set CLIPMOD_LIB)")


_lib = _load_library()


class _Image(ctypes.Structure):
    _fields_ = [("width", ctypes.c_int), ("height", ctypes.c_int), ("rgb", ctypes.POINTER(ctypes.c_uint8))]


_c_f32p = ctypes.POINTER(ctypes.c_float)
_c_i32p = ctypes.POINTER(ctypes.c_int32)


def _fn(name, res, *args):
    f = getattr(_lib, name)
    f.restype = res
    f.argtypes = list(args)
    return f


_version = _fn("clipmod_version", ctypes.c_char_p)
_last_error = _fn("clipmod_last_error", ctypes.c_char_p)
_tok_load = _fn("clipmod_tokenizer_load", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p))
_tok_free = _fn("clipmod_tokenizer_free", None, ctypes.c_void_p)
_tokenize = _fn("clipmod_tokenize", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, _c_i32p, ctypes.c_int)
_img_load = _fn("clipmod_image_load", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_Image))
_img_free = _fn("clipmod_image_free", None, ctypes.POINTER(_Image))
_preprocess = _fn("clipmod_preprocess", ctypes.c_int, ctypes.POINTER(_Image), _c_f32p)
_model_load = _fn("clipmod_model_load", ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p))
_model_free = _fn("clipmod_model_free", None, ctypes.c_void_p)
_embed_dim = _fn("clipmod_model_embed_dim", ctypes.c_int, ctypes.c_void_p)
_image_size = _fn("clipmod_model_image_size", ctypes.c_int, ctypes.c_void_p)
_num_classes = _fn("clipmod_model_num_classes", ctypes.c_int, ctypes.c_void_p)
_enc_image = _fn("clipmod_encode_image", ctypes.c_int, ctypes.c_void_p, _c_f32p, ctypes.c_int, ctypes.c_bool, _c_f32p)
_enc_text = _fn("clipmod_encode_text", ctypes.c_int, ctypes.c_void_p, _c_i32p, ctypes.c_int, ctypes.c_bool, _c_f32p)
_classify = _fn("clipmod_classify", ctypes.c_int, ctypes.c_void_p, _c_f32p, _c_i32p, ctypes.c_int, _c_f32p, _c_f32p)


def _check(status):
    if status != 0:
        raise ClipmodError(status, _last_error().decode("utf-8", "replace"))


def _path(p):
    return os.fsencode(p)


def _ptr(a, ctype):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


def version():
    """The version of the loaded libclipmod (clipmod_version())."""
    return _version().decode()


class Tokenizer:
    """OpenCLIP's SimpleTokenizer. path: bpe_simple_vocab_16e6.txt.gz, merges.txt, vocab.json or a
    folder; None searches as the library does ($CLIPMOD_VOCAB, then the shipped copy)."""

    def __init__(self, path=None):
        h = ctypes.c_void_p()
        _check(_tok_load(None if path is None else _path(path), ctypes.byref(h)))
        self._h = h

    def __call__(self, texts, context_length=CONTEXT_LEN):
        """str or list of str -> int32 [n, context_length] (SOT ... EOT, zero padded, cut with EOT last)."""
        if isinstance(texts, (str, bytes)):
            texts = [texts]
        out = np.zeros((len(texts), context_length), dtype=np.int32)
        for i, t in enumerate(texts):
            b = t.encode("utf-8") if isinstance(t, str) else bytes(t)
            _check(_tokenize(self._h, b, len(b), _ptr(out[i], ctypes.c_int32), context_length))
        return out

    def close(self):
        if getattr(self, "_h", None):
            _tok_free(self._h)
            self._h = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_default_tokenizer = None


def tokenize(texts, vocab=None, context_length=CONTEXT_LEN):
    """Token ids of texts as int32 [n, 77] (the default vocabulary is loaded once and kept)."""
    global _default_tokenizer
    if vocab is not None:
        with Tokenizer(vocab) as t:
            return t(texts, context_length)
    if _default_tokenizer is None:
        _default_tokenizer = Tokenizer()
    return _default_tokenizer(texts, context_length)


def load_image(path):
    """Decode a JPEG/PNG/WebP file to uint8 RGB [H, W, 3] as PIL's convert('RGB') does."""
    img = _Image()
    _check(_img_load(_path(path), ctypes.byref(img)))
    try:
        n = img.width * img.height * 3
        return np.ctypeslib.as_array(img.rgb, shape=(n,)).copy().reshape(img.height, img.width, 3)
    finally:
        _img_free(ctypes.byref(img))


def preprocess(image):
    """OpenCLIP's ViT-B-32 eval transform of a file path or a uint8 RGB array [H, W, 3] ->
    float32 [3, 224, 224]."""
    if isinstance(image, (str, bytes, os.PathLike)):
        image = load_image(image)
    a = np.ascontiguousarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError("preprocess: expected a uint8 array [H, W, 3], got %s %s" % (a.dtype, a.shape))
    img = _Image(a.shape[1], a.shape[0], _ptr(a, ctypes.c_uint8))
    out = np.empty((3, 224, 224), dtype=np.float32)
    _check(_preprocess(ctypes.byref(img), _ptr(out, ctypes.c_float)))
    return out


class Model:
    """A loaded model (read-only; may be shared by threads). path: OpenCLIP safetensors / .bin / .pt or
    a clipmod safetensors; model_name: "ViT-B-32", ... or a JSON config file; None: from the file."""

    def __init__(self, path, model_name=None):
        h = ctypes.c_void_p()
        _check(_model_load(_path(path), None if model_name is None else _path(model_name), ctypes.byref(h)))
        self._h = h
        self.embed_dim = _embed_dim(h)
        self.image_size = _image_size(h)
        self.num_classes = _num_classes(h)

    def _images(self, images):
        a = np.ascontiguousarray(images, dtype=np.float32)
        if a.ndim == 3:
            a = a[None]
        s = self.image_size
        if a.shape[1:] != (3, s, s):
            raise ValueError("images must be float32 [n, 3, %d, %d], got %s" % (s, s, a.shape))
        return a

    @staticmethod
    def _tokens(tokens):
        t = np.ascontiguousarray(tokens, dtype=np.int32)
        if t.ndim == 1:
            t = t[None]
        if t.ndim != 2 or t.shape[1] != CONTEXT_LEN:
            raise ValueError("tokens must be int32 [n, %d], got %s" % (CONTEXT_LEN, t.shape))
        return t

    def encode_image(self, images, normalize=True):
        """images float32 [n, 3, S, S] (preprocessed) -> float32 [n, embed_dim]."""
        a = self._images(images)
        out = np.empty((a.shape[0], self.embed_dim), dtype=np.float32)
        _check(_enc_image(self._h, _ptr(a, ctypes.c_float), a.shape[0], normalize, _ptr(out, ctypes.c_float)))
        return out

    def encode_text(self, tokens, normalize=True):
        """tokens int32 [n, 77] (or a list of strings, tokenized with the default vocabulary)
        -> float32 [n, embed_dim]."""
        if isinstance(tokens, str) or (isinstance(tokens, (list, tuple)) and tokens and isinstance(tokens[0], str)):
            tokens = tokenize(tokens)
        t = self._tokens(tokens)
        out = np.empty((t.shape[0], self.embed_dim), dtype=np.float32)
        _check(_enc_text(self._h, _ptr(t, ctypes.c_int32), t.shape[0], normalize, _ptr(out, ctypes.c_float)))
        return out

    def classify(self, images, tokens):
        """The classification head on image+text pairs -> (probs, logits), float32 [n, num_classes]."""
        if isinstance(tokens, str) or (isinstance(tokens, (list, tuple)) and tokens and isinstance(tokens[0], str)):
            tokens = tokenize(tokens)
        a, t = self._images(images), self._tokens(tokens)
        if a.shape[0] != t.shape[0]:
            raise ValueError("classify: %d images but %d token rows" % (a.shape[0], t.shape[0]))
        probs = np.empty((a.shape[0], max(self.num_classes, 1)), dtype=np.float32)
        logits = np.empty_like(probs)
        _check(_classify(self._h, _ptr(a, ctypes.c_float), _ptr(t, ctypes.c_int32), a.shape[0],
                         _ptr(probs, ctypes.c_float), _ptr(logits, ctypes.c_float)))
        return probs, logits

    def close(self):
        if getattr(self, "_h", None):
            _model_free(self._h)
            self._h = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
