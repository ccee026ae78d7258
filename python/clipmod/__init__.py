"""clipmod — a thin ctypes binding over libclipmod.so, numpy arrays in and out (docs/python.md).

    import clipmod
    with clipmod.Model("logs/RUN/checkpoints/epoch_10.safetensors") as m:   # any file clipmod writes
        ids = m.tokenize(["a photo of a cat"])          # int32 [1, 77], the model's tokenizer
        img = m.preprocess("cat.jpg")                   # float32 [3, S, S], the model's image size
        u = m.embed_images(["cat.jpg"])                 # float32 [n, E], L2-normalised
        v = m.embed_texts(["a photo of a cat"])         # float32 [n, E]
        probs, labels = m.classify(["cat.jpg"], ["a photo of a cat"])   # [n, 7], class names

Every failure of the library raises clipmod.ClipmodError with the library's message (naming the
file, tensor or argument at fault); a wrong array shape raises ValueError before any call.
The library is found at $CLIPMOD_LIB, else next to this package (the installed layout:
<prefix>/lib/python3/dist-packages/clipmod -> <prefix>/lib/libclipmod.so.MAJOR), else build/ of the
source tree this package sits in, else by the system loader (libclipmod.so.MAJOR).
"""
import collections
import ctypes
import os
import threading

import numpy as np

__all__ = ["ClipmodError", "CONTEXT_LEN", "Classification", "Model", "Tokenizer", "class_name", "library_path",
           "load_image", "preprocess", "tokenize", "version"]

CONTEXT_LEN = 77
_SO_MAJOR = "0"


class ClipmodError(RuntimeError):
    """A clipmod call failed; str(e) is the library's message, e.status the clipmod_status (< 0)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _candidates():
    here = os.path.dirname(os.path.abspath(__file__))
    env = os.environ.get("CLIPMOD_LIB")
    if env:
        return [env], True
    paths = [os.path.join(here, "libclipmod.so"),                                  # beside the package
             os.path.join(here, "..", "..", "..", "libclipmod.so." + _SO_MAJOR),    # installed: <prefix>/lib
             os.path.join(here, "..", "..", "build", "libclipmod.so")]              # source tree: python/clipmod
    return [os.path.normpath(p) for p in paths] + ["libclipmod.so." + _SO_MAJOR], False   # then the loader


def _load_library():
    tried = []
    cands, explicit = _candidates()
    for c in cands:
        if os.sep in c and not os.path.exists(c):
            tried.append(c + " (absent)")
            continue
        try:
            return ctypes.CDLL(os.path.abspath(c) if os.sep in c else c), c
        except OSError as e:
            tried.append("%s (%s)" % (c, e))
    why = "$CLIPMOD_LIB=" + cands[0] if explicit else "tried " + "; ".join(tried)
    raise ImportError("clipmod: cannot load libclipmod.so: %s (build it with make, or set CLIPMOD_LIB)" %
                      (tried[0] if explicit else why))


_lib, _lib_path = _load_library()


def library_path():
    """The libclipmod.so this package loaded (as found: $CLIPMOD_LIB, a path, or the loader's name)."""
    return _lib_path


class _Image(ctypes.Structure):
    _fields_ = [("width", ctypes.c_int), ("height", ctypes.c_int), ("rgb", ctypes.POINTER(ctypes.c_uint8))]


class _ModelParams(ctypes.Structure):   # clipmod_model_params
    _fields_ = [("model_name", ctypes.c_char_p), ("base_model", ctypes.c_char_p), ("cache_dir", ctypes.c_char_p),
                ("vocab_path", ctypes.c_char_p), ("n_threads", ctypes.c_int)]


class _SessionParams(ctypes.Structure):   # clipmod_session_params
    _fields_ = [("max_batch", ctypes.c_int)]


_c_f32p = ctypes.POINTER(ctypes.c_float)
_c_i32p = ctypes.POINTER(ctypes.c_int32)
_vp = ctypes.c_void_p
_int = ctypes.c_int


def _fn(name, res, *args):
    f = getattr(_lib, name)
    f.restype = res
    f.argtypes = list(args)
    return f


_version = _fn("clipmod_version", ctypes.c_char_p)
_last_error = _fn("clipmod_last_error", ctypes.c_char_p)
_class_name = _fn("clipmod_class_name", ctypes.c_char_p, _int)
_tok_load = _fn("clipmod_tokenizer_load", _int, ctypes.c_char_p, ctypes.POINTER(_vp))
_tok_free = _fn("clipmod_tokenizer_free", None, _vp)
_tokenize = _fn("clipmod_tokenize", _int, _vp, ctypes.c_char_p, ctypes.c_size_t, _c_i32p, _int)
_img_load = _fn("clipmod_image_load", _int, ctypes.c_char_p, ctypes.POINTER(_Image))
_img_free = _fn("clipmod_image_free", None, ctypes.POINTER(_Image))
_preprocess = _fn("clipmod_preprocess", _int, ctypes.POINTER(_Image), _c_f32p)
_model_defaults = _fn("clipmod_model_default_params", _ModelParams)
_model_load = _fn("clipmod_model_load_with_params", _int, ctypes.c_char_p, _ModelParams, ctypes.POINTER(_vp))
_model_free = _fn("clipmod_model_free", None, _vp)
_embed_dim = _fn("clipmod_model_embed_dim", _int, _vp)
_image_size = _fn("clipmod_model_image_size", _int, _vp)
_num_classes = _fn("clipmod_model_num_classes", _int, _vp)
_context_length = _fn("clipmod_model_context_length", _int, _vp)
_tokenizer_kind = _fn("clipmod_model_tokenizer", _int, _vp)
_model_tokenize = _fn("clipmod_model_tokenize", _int, _vp, ctypes.c_char_p, ctypes.c_size_t, _c_i32p)
_model_preprocess = _fn("clipmod_model_preprocess", _int, _vp, ctypes.POINTER(_Image), _c_f32p)
_session_defaults = _fn("clipmod_session_default_params", _SessionParams)
_session_init = _fn("clipmod_session_init_with_params", _int, _vp, _SessionParams, ctypes.POINTER(_vp))
_session_free = _fn("clipmod_session_free", None, _vp)
_s_enc_image = _fn("clipmod_session_encode_image", _int, _vp, _c_f32p, _int, ctypes.c_bool, _c_f32p)
_s_enc_text = _fn("clipmod_session_encode_text", _int, _vp, _c_i32p, _int, ctypes.c_bool, _c_f32p)
_s_classify = _fn("clipmod_session_classify", _int, _vp, _c_f32p, _c_i32p, _int, _c_f32p, _c_f32p)


def _check(status):
    if status != 0:
        raise ClipmodError(status, _last_error().decode("utf-8", "replace"))


def _path(p):
    return os.fsencode(p)


def _opt(p):
    return None if p is None else os.fsencode(p)


def _ptr(a, ctype):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


def _texts(texts):
    if isinstance(texts, (str, bytes)):
        texts = [texts]
    return [t.encode("utf-8") if isinstance(t, str) else bytes(t) for t in texts]


def _is_text_list(x):
    return isinstance(x, (str, bytes)) or (isinstance(x, (list, tuple)) and len(x) > 0 and isinstance(x[0], (str, bytes)))


def _is_image_ref(x):
    return isinstance(x, (str, bytes, os.PathLike))


def version():
    """The version of the loaded libclipmod (clipmod_version())."""
    return _version().decode()


def class_name(c):
    """Name of class c ("True" .. "Hate" for the 7 moderation classes); None outside 0..6."""
    s = _class_name(int(c))
    return None if s is None else s.decode()


class Tokenizer:
    """OpenCLIP's BPE SimpleTokenizer. path: bpe_simple_vocab_16e6.txt.gz, merges.txt, vocab.json or a
    folder; None searches as the library does ($CLIPMOD_VOCAB, then the installed / shipped copy).
    For a model's own tokenizer (BPE or the byte level) use Model.tokenize."""

    def __init__(self, path=None):
        h = _vp()
        _check(_tok_load(_opt(path), ctypes.byref(h)))
        self._h = h

    def __call__(self, texts, context_length=CONTEXT_LEN):
        """str or list of str -> int32 [n, context_length] (SOT ... EOT, zero padded, cut with EOT last)."""
        if not self._h:
            raise ValueError("clipmod: the tokenizer is closed")
        bs = _texts(texts)
        out = np.zeros((len(bs), context_length), dtype=np.int32)
        for i, b in enumerate(bs):
            _check(_tokenize(self._h, b, len(b), _ptr(out[i], ctypes.c_int32), context_length))
        return out

    def close(self):
        if getattr(self, "_h", None) and _tok_free is not None:
            _tok_free(self._h)
        self._h = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_default_tokenizer = None
_default_lock = threading.Lock()


def tokenize(texts, vocab=None, context_length=CONTEXT_LEN):
    """Token ids of texts with the BPE tokenizer as int32 [n, context_length] (the default vocabulary
    is loaded once and kept)."""
    global _default_tokenizer
    if vocab is not None:
        with Tokenizer(vocab) as t:
            return t(texts, context_length)
    with _default_lock:
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


def _rgb(image):
    if _is_image_ref(image):
        image = load_image(image)
    a = np.ascontiguousarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError("preprocess: expected a uint8 array [H, W, 3], got %s %s" % (a.dtype, a.shape))
    return a, _Image(a.shape[1], a.shape[0], _ptr(a, ctypes.c_uint8))


def preprocess(image):
    """OpenCLIP's ViT-B-32 eval transform (224) of a file path or a uint8 RGB array [H, W, 3] ->
    float32 [3, 224, 224]. Model.preprocess uses the model's own image size."""
    a, img = _rgb(image)
    out = np.empty((3, 224, 224), dtype=np.float32)
    _check(_preprocess(ctypes.byref(img), _ptr(out, ctypes.c_float)))
    return out


Classification = collections.namedtuple("Classification", ["probs", "labels"])
Classification.__doc__ = """Model.classify's result: probs float32 [n, K] (softmax of the head logits, as
`clipmod predict`), labels the class name of each row's most probable class (list of str)."""


class Model:
    """A model loaded with clipmod_model_load_with_params (the API's default params, then these):
    path is any file clipmod reads or writes (OpenCLIP safetensors / .bin / .pt, a folder with
    open_clip_model.safetensors, a `clipmod train` checkpoint, full or LoRA over its base found by
    SHA-256). model_name: config of a plain weights file ("ViT-B-32", ... or a JSON file);
    base_model / cache_dir: where a LoRA checkpoint's base is; vocab: the BPE vocabulary;
    n_threads: compute threads for the process (0: as is); max_batch: samples per forward pass of
    each thread's session (None: the API's default, 16; larger calls run in chunks).
    Weights are read-only and shared; each thread calling the model gets its own session."""

    def __init__(self, path, model_name=None, base_model=None, cache_dir=None, vocab=None, n_threads=0,
                 max_batch=None):
        p = _model_defaults()
        keep = [_opt(model_name), _opt(base_model), _opt(cache_dir), _opt(vocab)]
        if model_name is not None:
            p.model_name = keep[0]
        if base_model is not None:
            p.base_model = keep[1]
        if cache_dir is not None:
            p.cache_dir = keep[2]
        if vocab is not None:
            p.vocab_path = keep[3]
        p.n_threads = int(n_threads)
        self._sp = _session_defaults()
        if max_batch is not None:
            if int(max_batch) < 1:
                raise ValueError("max_batch must be >= 1, got %r" % (max_batch,))
            self._sp.max_batch = int(max_batch)
        self._h = None
        self._sessions = []
        self._local = threading.local()
        self._lock = threading.Lock()
        h = _vp()
        _check(_model_load(_path(path), p, ctypes.byref(h)))
        self._h = h
        self.path = os.fspath(path)
        self.embed_dim = _embed_dim(h)
        self.image_size = _image_size(h)
        self.context_length = _context_length(h)
        self.num_classes = _num_classes(h)
        self.tokenizer = "bytes" if _tokenizer_kind(h) == 1 else "bpe"
        self.class_names = [class_name(c) or str(c) for c in range(self.num_classes)]

    # ---- helpers -------------------------------------------------------------------------------
    def _handle(self):
        if not self._h:
            raise ValueError("clipmod: the model is closed")
        return self._h

    def _session(self):
        s = getattr(self._local, "s", None)
        if s is None:
            h = self._handle()
            s = _vp()
            _check(_session_init(h, self._sp, ctypes.byref(s)))
            with self._lock:
                self._sessions.append(s)
            self._local.s = s
        return s

    def _images(self, images):
        """paths / uint8 arrays / float32 [n,3,S,S] or [3,S,S] -> C-contiguous float32 [n,3,S,S]."""
        if _is_image_ref(images):
            images = [images]
        if isinstance(images, (list, tuple)) and images and (_is_image_ref(images[0]) or
                                                             np.asarray(images[0]).dtype == np.uint8):
            return self.preprocess(list(images))
        a = np.ascontiguousarray(images, dtype=np.float32)
        if a.ndim == 3:
            a = a[None]
        s = self.image_size
        if a.ndim != 4 or a.shape[1:] != (3, s, s) or a.shape[0] < 1:
            raise ValueError("images must be float32 [n, 3, %d, %d] (n >= 1), file paths or uint8 RGB arrays; got %s"
                             % (s, s, a.shape))
        return a

    def _tokens(self, tokens):
        if _is_text_list(tokens):
            return self.tokenize(tokens)
        t = np.ascontiguousarray(tokens, dtype=np.int32)
        if t.ndim == 1:
            t = t[None]
        if t.ndim != 2 or t.shape[1] != self.context_length or t.shape[0] < 1:
            raise ValueError("tokens must be int32 [n, %d] (n >= 1) or a list of str; got %s" % (self.context_length, t.shape))
        return t

    # ---- the API -------------------------------------------------------------------------------
    def tokenize(self, texts):
        """str or list of str -> int32 [n, context_length] with the model's tokenizer (BPE or bytes)."""
        h = self._handle()
        bs = _texts(texts)
        out = np.zeros((len(bs), self.context_length), dtype=np.int32)
        for i, b in enumerate(bs):
            _check(_model_tokenize(h, b, len(b), _ptr(out[i], ctypes.c_int32)))
        return out

    def preprocess(self, image):
        """The eval transform at the model's image size: a file path or uint8 RGB [H, W, 3] ->
        float32 [3, S, S]; a list of them -> [n, 3, S, S]."""
        h = self._handle()
        if isinstance(image, (list, tuple)):
            return np.stack([self.preprocess(x) for x in image]) if image else \
                np.empty((0, 3, self.image_size, self.image_size), np.float32)
        a, img = _rgb(image)
        out = np.empty((3, self.image_size, self.image_size), dtype=np.float32)
        _check(_model_preprocess(h, ctypes.byref(img), _ptr(out, ctypes.c_float)))
        return out

    def embed_images(self, images, normalize=True):
        """Image features float32 [n, embed_dim] (L2-normalised; normalize=False: the raw projection).
        images: preprocessed float32 [n, 3, S, S] / [3, S, S], or file paths / uint8 RGB arrays."""
        a = self._images(images)
        out = np.empty((a.shape[0], self.embed_dim), dtype=np.float32)
        _check(_s_enc_image(self._session(), _ptr(a, ctypes.c_float), a.shape[0], normalize, _ptr(out, ctypes.c_float)))
        return out

    def embed_texts(self, texts, normalize=True):
        """Text features float32 [n, embed_dim]. texts: a str, a list of str (the model's tokenizer)
        or int32 token ids [n, context_length]."""
        t = self._tokens(texts)
        out = np.empty((t.shape[0], self.embed_dim), dtype=np.float32)
        _check(_s_enc_text(self._session(), _ptr(t, ctypes.c_int32), t.shape[0], normalize, _ptr(out, ctypes.c_float)))
        return out

    encode_image = embed_images
    encode_text = embed_texts

    def classify(self, images, texts, return_logits=False):
        """The classification head on image+caption pairs (row i of images with row i of texts) ->
        Classification(probs float32 [n, K], labels [str]); with return_logits, (probs, labels, logits).
        Inputs as embed_images / embed_texts take them."""
        if self.num_classes == 0:
            raise ClipmodError(-4, "%s has no classification head" % self.path)
        a, t = self._images(images), self._tokens(texts)
        if a.shape[0] != t.shape[0]:
            raise ValueError("classify: %d images but %d captions" % (a.shape[0], t.shape[0]))
        probs = np.empty((a.shape[0], self.num_classes), dtype=np.float32)
        logits = np.empty_like(probs)
        _check(_s_classify(self._session(), _ptr(a, ctypes.c_float), _ptr(t, ctypes.c_int32), a.shape[0],
                           _ptr(probs, ctypes.c_float), _ptr(logits, ctypes.c_float)))
        labels = [self.class_names[k] for k in probs.argmax(axis=1)]
        return (probs, labels, logits) if return_logits else Classification(probs, labels)

    def close(self):
        """Free the sessions and the model (also done when the object is collected)."""
        if _session_free is None or _model_free is None:   # interpreter shutdown
            return
        with self._lock if hasattr(self, "_lock") else threading.Lock():
            for s in getattr(self, "_sessions", []):
                _session_free(s)
            self._sessions = []
            self._local = threading.local()
        if getattr(self, "_h", None):
            _model_free(self._h)
        self._h = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "clipmod.Model(%r: embed_dim %d, image_size %d, %d classes, %s tokenizer)" % (
            self.path, self.embed_dim, self.image_size, self.num_classes, self.tokenizer)
