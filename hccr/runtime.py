"""Recognising without PyTorch: image batches, the recognizer interface, ONNX Runtime, prediction files.

Everything a user needs to *use* a model lives here and imports only numpy, Pillow and (for
``.onnx`` models, the shipped one included) ONNX Runtime. PyTorch checkpoints load through
:mod:`hccr.predict`, imported only when one is asked for; training is the ``hccr[train]`` extra.

Each image is normalised as the model's :class:`~hccr.preprocess.InputSpec` says (ink high, aspect
kept, padded square) to ``size * 280 / 256`` pixels for the paper's five crops (centre and four
corners, logits averaged), or to ``size`` for one crop.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data.charset import Charset
from .errors import HccrError
from .preprocess import InputSpec
from .utils import read_json

MANY_CLASSES = 4096  # above this many classes, large prediction runs keep probabilities as float16
HALF_ABOVE = 1 << 26  # ... once they hold more values than this (256 MB as float32; ~9,900 images x 6,763 classes)


def file_digest(path: str | os.PathLike, limit: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(limit))
    return h.hexdigest()[:16]


def temper(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities at another softmax temperature: softmax(log p / T) = softmax(z / T) for any
    logits z behind p, so a recognizer that only returns probabilities (ONNX) can be calibrated."""
    if temperature == 1.0:
        return probs
    out = np.empty(probs.shape, probs.dtype)
    for i in range(0, len(probs), 4096):
        out[i : i + 4096] = softmax(log_probs(probs[i : i + 4096]) / temperature)
    return out


def log_probs(probs: np.ndarray) -> np.ndarray:
    """log p in float64, p floored at 1e-30: the logits behind p, less one constant per row."""
    return np.log(np.clip(np.asarray(probs, np.float64), 1e-30, None))


def softmax(z: np.ndarray) -> np.ndarray:
    """Rows of logits -> rows of probabilities."""
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def several_characters(images: list[np.ndarray]) -> list[bool]:
    """For each gray image: whether it probably holds several characters (a word, a line), which a
    single-character recognizer would answer confidently and wrongly. Recognizers answer this as
    they read (:meth:`BaseRecognizer.proba_and_flags`); this is for images read without one."""
    from .preprocess import looks_like_several, prepare

    return [looks_like_several(prepare(np.asarray(im, np.uint8))) for im in images]


def resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    """(B, h, w) uint8 store images (ink high) -> (B, 1, size, size) float32 in [0, 1], resized as
    :func:`normalize` resizes image files (Pillow, bilinear). At the store's own size (one crop) a store and its
    source files give the same input; five crops need a larger side, which a file is framed at directly (the
    paper's way) and a store's image is enlarged to, so their five-crop figures differ slightly."""
    from PIL import Image

    images = np.asarray(images)
    if images.shape[1:] != (size, size):
        resample = Image.Resampling.BILINEAR
        images = np.stack([np.asarray(Image.fromarray(im).resize((size, size), resample)) for im in images])
    return images[:, None].astype(np.float32) / 255


class BaseRecognizer:
    """What every recognizer offers on top of ``proba_normalized(x, crops)``, which maps normalised
    (B, 1, s, s) float32 images (ink high, s = ``spec.side(crops)``) to (B, C) probabilities.
    ``spec`` (:class:`~hccr.preprocess.InputSpec`) is everything the model expects of its input;
    ``crops=None`` anywhere means the spec's own."""

    charset: Charset
    spec: InputSpec
    temperature: float = 1.0  # fitted by `hccr calibrate`: probabilities a user can threshold

    @property
    def image_size(self) -> int:
        return self.spec.size

    @property
    def crops(self) -> int:
        return self.spec.crops

    def probabilities(self, x: np.ndarray, crops: int | None = None) -> np.ndarray:
        """Normalised images -> calibrated (B, C) probabilities."""
        p = temper(self.proba_normalized(x, self.spec.crops if crops is None else crops), self.temperature)
        if not np.isfinite(p).all():
            raise HccrError(f"{getattr(self, 'identity', {}).get('path', 'the model')}: answers NaN or infinite "
                            "probabilities: its weights are damaged (or it was trained into divergence); "
                            "use another copy or checkpoint")
        return p

    def normalize_images(self, images: list[np.ndarray], crops: int | None = None) -> np.ndarray:
        return self.spec.batch(images, crops)

    def proba_and_flags(self, images, crops: int | None = None, batch_size: int = 256, bgr: bool = False
                        ) -> tuple[np.ndarray, np.ndarray]:
        """(N, C) probabilities and (N,) flags, True where an image looks like several characters
        (a word or a line), for one image or a list: paths, bytes, PIL images or arrays (see
        :mod:`hccr.inputs`). Each image is cleaned once for both."""
        from .inputs import as_gray_list

        crops = self.spec.crops if crops is None else crops
        images = as_gray_list(images, bgr)
        probs, flags = [], []
        for i in range(0, len(images), batch_size):
            x, several = self.spec.batch_checked(images[i : i + batch_size], crops)
            probs.append(self.probabilities(x, crops))
            flags.append(several)
        if not probs:
            return np.zeros((0, len(self.charset)), np.float32), np.zeros(0, bool)
        return np.concatenate(probs), np.concatenate(flags)

    def predict_proba(self, images, crops: int | None = None, batch_size: int = 256, bgr: bool = False
                      ) -> np.ndarray:
        """(N, C) probabilities for one image or a list: paths, bytes, PIL images or arrays (see
        :mod:`hccr.inputs`)."""
        return self.proba_and_flags(images, crops, batch_size, bgr)[0]

    def predict_flagged(self, images, topk: int = 5, crops: int | None = None, allowed: str | None = None,
                        bgr: bool = False) -> tuple[list[list[tuple[str, float]]], np.ndarray]:
        """:meth:`predict` without the warning: the top-k lists and, per image, whether it looks
        like several characters (what a server answers in its own words)."""
        topk = check_topk(topk)
        probs, several = self.proba_and_flags(images, crops, bgr=bgr)
        return top_candidates(probs, self.charset, topk, allowed), several

    def predict(self, images, topk: int = 5, crops: int | None = None, allowed: str | None = None,
                bgr: bool = False) -> list[list[tuple[str, float]]]:
        """Top-k ``(character, probability)`` for each image: a path, bytes, a PIL image or an array
        (H×W gray, H×W×2 gray + alpha, H×W×3 RGB, or BGR with ``bgr=True``; uint8 or float in [0, 1]), a list of them,
        or an N×H×W array of gray images.
        ``allowed`` (a string of characters, a charset name or file) restricts the answers."""
        import warnings

        cands, several = self.predict_flagged(images, topk, crops, allowed, bgr)
        if several.any():
            where = ", ".join(map(str, np.flatnonzero(several)[:10]))
            warnings.warn(f"image(s) {where} look like several characters (a word or a line); hccr reads one "
                          "character per image", stacklevel=2)
        return cands


def allowed_indices(charset: Charset, allowed) -> list[int]:
    """The classes of the allowed characters (a charset name, file, string or list of characters) that the model
    knows; none known is an error."""
    from .data.charset import resolve_charset

    if isinstance(allowed, str):
        chars = resolve_charset(allowed)
    else:  # a list or set: characters, never a charset name
        chars = [str(c) for c in allowed]
        allowed = "".join(chars)
    idx = sorted({charset.index[c] for c in chars if c in charset.index})
    if not idx:
        raise HccrError(f"--charset {allowed[:40]!r}: none of its characters is known to this model")
    return idx


def restrict_to(probs: np.ndarray, charset: Charset, allowed) -> np.ndarray:
    """Probabilities renormalised over the allowed characters (:func:`allowed_indices`); the others get 0. For
    users who know their text uses only some characters."""
    return _renormalise_over(probs, allowed_indices(charset, allowed))


def _renormalise_over(probs: np.ndarray, idx: list[int]) -> np.ndarray:
    """:func:`restrict_to` with the allowed classes already resolved (once per run, not once per batch)."""
    keep = np.zeros(probs.shape[1], bool)
    keep[idx] = True
    out = np.where(keep, probs.astype(np.float32, copy=False), np.float32(0))
    total = out.sum(1, keepdims=True)
    # where every allowed character's probability underflowed to 0, the model says nothing among them: uniform
    out = np.where(total > 0, out / np.maximum(total, np.float32(1e-30)), keep / np.float32(len(idx)))
    return out.astype(probs.dtype, copy=False)


def check_topk(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise HccrError(f"topk must be a whole number of at least 1, got {k!r}")
    return int(k)


def topk_chars(probs: np.ndarray, charset: Charset, k: int) -> list[list[tuple[str, float]]]:
    k = min(check_topk(k), probs.shape[1])
    idx = np.argsort(-probs, axis=1)[:, :k]
    return [[(charset[int(j)], float(p[j])) for j in row] for p, row in zip(probs, idx, strict=True)]


def top_candidates(probs: np.ndarray, charset: Charset, topk: int, allowed: str | None = None
                   ) -> list[list[tuple[str, float]]]:
    """:func:`topk_chars`, answering only among ``allowed`` when given (never padded with excluded characters)."""
    if allowed:
        idx = allowed_indices(charset, allowed)
        probs, topk = _renormalise_over(probs, idx), min(topk, len(idx))
    return topk_chars(probs, charset, topk)


# ---------------------------------------------------------------------------------------------
# Predictions files

@dataclass
class Predictions:
    """Class probabilities for N samples, plus everything needed to evaluate and ensemble them."""

    probs: np.ndarray  # (N, C) float32 or float16
    charset: str
    labels: np.ndarray  # (N,) int32, -1 where unknown
    ids: np.ndarray  # (N,) str: "store:<index>" or a file path
    source: str
    meta: dict = field(default_factory=dict)  # model identity, crops, ms_per_char, members, weights

    def __len__(self) -> int:
        return len(self.labels)

    def save(self, path: str | os.PathLike, float16: bool = False) -> Path:

        from .utils import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                half = float16 or self.probs.dtype == np.float16
                np.savez(f, probs=self.probs.astype(np.float16 if half else np.float32, copy=False),
                         charset=np.array(self.charset), labels=self.labels.astype(np.int32),
                         ids=self.ids.astype(str), source=np.array(self.source),
                         meta=np.array(json.dumps(self.meta, ensure_ascii=False)))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Predictions:

        path = Path(path)
        if not path.is_file():
            raise HccrError(f"{path}: no such predictions file")
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(z["probs"], str(z["charset"]), z["labels"], z["ids"], str(z["source"]),
                           json.loads(str(z["meta"])))
        except (KeyError, ValueError, OSError) as e:  # numpy's own advice (load pickles) is not for the user
            raise HccrError(f"{path}: not an hccr predictions file (hccr predict --out FILE.npz writes one; "
                            f"{str(e).split('. ')[0][:100]})") from None


def predict_inputs(rec: BaseRecognizer, inputs: list[str], crops: int | None = None, batch_size: int = 256, split: str = "all",
                   progress: bool = True, on_error: str = "stop", allowed: str | None = None) -> Predictions:
    """Probabilities for a store (``split`` of it) or any other sources (images, folders, globs,
    ``-``, ``.gnt``/``.pot`` files: :func:`hccr.data.sources.plan_units`; labels come from records
    and per-character folder names). ``on_error="skip"`` leaves out unreadable images and counts
    them (``meta["skipped"]``); images labelled with characters the model does not know get label
    -1 and are counted in ``meta["unknown_labels"]``, never silently mixed into an accuracy. ``allowed``
    restricts the answers (:func:`restrict_to`), before thousands of classes are stored as float16."""
    from .data.store import Store

    if on_error not in ("skip", "stop"):
        raise HccrError(f"--on-error must be skip or stop, not {on_error!r}")
    if batch_size < 1:
        raise HccrError(f"--batch-size must be at least 1, got {batch_size}")
    keep = allowed_indices(rec.charset, allowed) if allowed else None  # a bad --charset fails before any work
    crops = rec.spec.crops if crops is None else crops
    inputs = [str(i) for i in inputs]
    t0 = time.perf_counter()
    stores = [i for i in inputs if (Path(i) / "manifest.json").exists()]
    if stores and len(inputs) > 1:
        raise HccrError(f"{stores[0]}: a packed store is read on its own (its samples are named store:N); give it "
                        "alone, and the other inputs in another run")
    if stores:
        probs, chars, ids, skipped, several = _predict_store(rec, Store(inputs[0]), split, crops, batch_size, progress,
                                                             keep)
    else:
        probs, chars, ids, skipped, several = _predict_sources(rec, inputs, crops, batch_size, progress, on_error,
                                                               keep)
        split = None
    dt = time.perf_counter() - t0
    if several:  # a labelled sample (a .gnt/.pot record, a <char>/ folder's image) is one character by its label
        flagged = set(several)
        several = [i for i, c in zip(ids, chars, strict=True) if c is None and i in flagged]
    labels = np.array([rec.charset.index.get(c, -1) if c is not None else -1 for c in chars], np.int32)
    unknown = np.array([c is not None and c not in rec.charset.index for c in chars], bool)
    meta = {"model": rec.identity, "crops": crops, "ms_per_char": 1000 * dt / max(len(labels), 1), "seconds": dt,
            "kind": "model", "split": split, "skipped": skipped, "unknown_labels": int(unknown.sum()),
            "several_characters": several, "unknown_chars": "".join(sorted({c for c, u in zip(chars, unknown,
                                                                                              strict=True) if u}))}
    # a store's absolute path: a report made from another folder still finds its example images
    source = str(Path(inputs[0]).resolve()) if split is not None else ",".join(inputs)
    return Predictions(probs, "".join(rec.charset), labels, ids, source, meta)


def probs_dtype(n_samples: int, n_classes: int):
    """float16 for runs too big for float32 (100,000 images x 6,763 classes = 1.35 GB instead of 2.7);
    float32, exactly what the API answers, for everything smaller."""
    return np.float16 if n_classes > MANY_CLASSES and n_samples * n_classes > HALF_ABOVE else np.float32


def _predict_store(rec: BaseRecognizer, store, split: str, crops: int, batch_size: int, progress: bool,
                   keep: list[int] | None = None):
    """A packed store: images already normalised, read in sorted batches from the memory map."""
    from .utils import Progress

    idx = store.indices(split)
    if len(idx) == 0:
        raise HccrError(f"{store.path}: no images in split {split!r}")
    probs = np.zeros((len(idx), len(rec.charset)), probs_dtype(len(idx), len(rec.charset)))
    with Progress((len(idx) + batch_size - 1) // batch_size, "predict", disable=not progress, unit="batches") as bar:
        for i in range(0, len(idx), batch_size):
            b = idx[i : i + batch_size]
            p = rec.probabilities(resize_batch(store.images[b], rec.spec.side(crops)), crops)
            probs[i : i + len(b)] = _renormalise_over(p, keep) if keep is not None else p
            bar.update(1)
    chars = [store.charset[int(c)] for c in store.labels[idx]]
    return probs, chars, np.array([f"store:{i}" for i in idx]), [], []


def _predict_sources(rec: BaseRecognizer, inputs: list[str], crops: int, batch_size: int, progress: bool,
                     on_error: str, keep: list[int] | None = None):
    """Images, folders, globs, ``-``, ``.gnt`` and ``.pot`` files, streamed through the same units
    ``hccr convert`` reads (:mod:`hccr.data.sources`), ``batch_size`` samples at a time."""
    from .data.sources import plan_units
    from .errors import Problem
    from .utils import Progress

    units = plan_units(inputs, labelled=False)
    chunks: list[np.ndarray] = []
    chars: list[str | None] = []
    ids: list[str] = []
    skipped: list[str] = []
    several: list[str] = []
    batch: list = []

    def flush() -> None:
        imgs = [s.image for s in batch]
        probs, flags = rec.proba_and_flags(imgs, crops, batch_size)
        if keep is not None:  # the allowed classes (--charset), resolved once by predict_inputs
            probs = _renormalise_over(probs, keep)
        chunks.append(probs)
        if probs_dtype(sum(map(len, chunks)), probs.shape[1]) == np.float16:  # the run has grown big: halve it all
            chunks[:] = [c.astype(np.float16, copy=False) for c in chunks]
        several.extend(s.id for s, m in zip(batch, flags, strict=True) if m)
        chars.extend(s.char for s in batch)
        ids.extend(s.id for s in batch)
        batch.clear()

    with Progress(len(units), "predict", disable=not progress, unit="units") as bar:
        for unit in units:
            for item in unit.samples():
                if isinstance(item, Problem):
                    if on_error == "stop":
                        raise HccrError(f"{item} (--on-error skip leaves it out and goes on)")
                    skipped.append(str(item))
                    continue
                batch.append(item)
                if len(batch) == batch_size:
                    flush()
            bar.update(1)
    if batch:
        flush()
    if not chunks:
        raise HccrError(f"{', '.join(inputs)}: " + (f"no readable image ({skipped[0]})" if skipped
                                                     else "nothing to predict"))
    return np.concatenate(chunks), chars, np.array(ids), skipped, several


# Recognizers for PyTorch checkpoints live on the training side (hccr.predict, which needs torch).
# The runtime names them here instead of importing them: ``register_loader`` replaces an entry,
# and "module:attribute" strings are imported only when such a model is asked for.
_LOADERS: dict[str, object] = {"checkpoint": "hccr.predict:Recognizer.from_checkpoint"}


def register_loader(kind: str, loader) -> None:
    """Make ``loader(path, device, amp)`` the way models of ``kind`` (``"checkpoint"``) are loaded."""
    _LOADERS[kind] = loader


def _loader(kind: str, path):
    entry = _LOADERS[kind]
    if isinstance(entry, str):
        import importlib

        module, _, attr = entry.partition(":")
        try:
            obj = importlib.import_module(module)
        except ImportError as e:
            raise HccrError(f"{path}: a PyTorch checkpoint needs torch ({e.name} is not installed): pip install "
                            "'hccr[train]', or export the model with `hccr export` and use the .onnx file") from None
        for part in attr.split("."):
            obj = getattr(obj, part)
        entry = _LOADERS[kind] = obj
    return entry


def load_recognizer(path: str | os.PathLike | None = None, device: str = "cpu", amp: bool = False,
                    backend: str = "auto", crops: int | None = None):
    """A shipped model by name (``gb2312``; the default when ``path`` is None), a checkpoint (run
    folder, .json, .safetensors) or an exported ``.onnx`` file. A shipped model runs in ONNX Runtime
    on a CPU where it is installed (faster there), else as its PyTorch checkpoint (``backend``:
    auto, onnx or torch); its one-crop ONNX file reads five crops too; ``amp`` (bf16 autocast) and crops its ONNX
    file cannot read need the checkpoint."""
    from .zoo import DEFAULT_MODEL, shipped_files, shipped_name

    if backend not in ("auto", "onnx", "torch"):
        raise HccrError(f"backend must be auto, onnx or torch, not {backend!r}")
    if crops not in (None, 1, 5):  # before any model is opened
        raise HccrError(f"--crops must be 1 or 5, got {crops}")
    # a torch.device reads as its name, a number as that GPU (as torch reads both)
    device = f"cuda:{device}" if isinstance(device, int) and not isinstance(device, bool) else str(device)
    if not re.fullmatch(r"cpu(:0)?|cuda(:\d+)?", device):  # said with or without torch
        raise HccrError(f"device {device!r}: not a device name hccr runs on (cpu, cuda, cuda:1, ...)")
    device = "cpu" if device == "cpu:0" else device
    if device != "cpu" and not _installed("torch"):
        raise HccrError(f"device {device!r}: a GPU runs a model's PyTorch checkpoint, which needs torch: pip install "
                        "'hccr[train]' (on the CPU, the default, the shipped model and .onnx files need no torch)")
    if path is None or shipped_name(path):
        name = str(path or DEFAULT_MODEL)
        ckpt, onnx_path = shipped_files(name)
        if backend == "onnx" or (backend == "auto" and device == "cpu" and onnx_path.exists() and _installed("onnxruntime")):
            own = read_json(ckpt, "model metadata")["preprocessing"].get("crops", 1)  # packaging writes the ONNX file's here
            if backend == "onnx" or (crops in (None, own) or own == 1) and not amp:
                return OnnxRecognizer(onnx_path)
            if not _installed("torch"):
                raise HccrError(f"{name}: its ONNX file reads {own} crop(s) in float32; "
                                f"{'--amp' if amp else f'--crops {crops}'} runs its PyTorch "
                                "checkpoint, which needs torch: pip install 'hccr[train]'")
        path = ckpt
    elif str(path).endswith(".onnx"):
        if amp:
            raise HccrError(f"{path}: --amp (bf16 autocast) is for PyTorch checkpoints; an ONNX model runs in float32")
        return OnnxRecognizer(path)
    return _loader("checkpoint", path)(path, device, amp)


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


class OnnxRecognizer(BaseRecognizer):
    """The same interface as :class:`hccr.predict.Recognizer`, running an exported graph in ONNX
    Runtime (no PyTorch needed). ``providers`` picks the execution providers (default: CPU)."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None, providers: list[str] | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise HccrError(f"{path}: running ONNX models needs onnxruntime: pip install onnxruntime") from None

        from .integrity import check_onnx_meta, onnx_graph_digest, verify_file

        path = Path(path)
        if not path.is_file():
            raise HccrError(f"{path}: no such ONNX file")
        data = path.read_bytes()
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(data, opts, providers=providers or ["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise HccrError(f"{path}: not a loadable ONNX model ({str(e).splitlines()[0]})") from None
        raw = self.session.get_modelmeta().custom_metadata_map
        if raw.get("hccr_format") != "hccr-onnx/1":
            raise HccrError(f"{path}: not exported by hccr (no hccr metadata)")
        meta = check_onnx_meta(raw, path)  # every field: types, ranges, finite values
        if raw.get("graph_sha256"):
            verify_file(path, raw["graph_sha256"], "graph_sha256", onnx_graph_digest(data))
        self.charset = Charset(meta["charset"])
        self.spec = InputSpec.from_meta(meta["preprocessing"], crops=meta["crops"])
        self.input_size = meta["input_size"]
        if self.input_size != self.spec.side():
            raise HccrError(f"{path}: bad metadata field input_size: {self.input_size} px, but its preprocessing "
                            f"and {meta['crops']} crop(s) make {self.spec.side()} px")
        self.temperature = meta["temperature"]
        self.identity = {"path": str(path), "arch": "onnx", "members": meta["members"], "weights": meta["weights"]}

    def proba_normalized(self, x: np.ndarray, crops: int | None = None) -> np.ndarray:
        """A graph of one model and one crop also reads five: its crops run as one batch, and their logits are
        averaged as a five-crop graph averages them (the mean of log-probabilities differs from the mean of
        logits by one constant per image, which the softmax removes; exact while no probability falls below
        the floor of :func:`log_probs`, i.e. for logit gaps under about 69)."""
        crops, path = self.crops if crops is None else crops, self.identity["path"]
        if crops != self.crops and (self.crops != 1 or len(self.identity["members"]) > 1):
            what = f"{self.crops} crop(s)" + (f" and {len(self.identity['members'])} members" if self.crops == 1 else "")
            raise HccrError(f"{path}: exported with {what}; export it again with --crops {crops}")
        side = self.spec.side(crops)
        if x.shape[-1] != side:
            raise HccrError(f"{path}: takes {side} px inputs for {crops} crop(s), got {x.shape[-1]} px")
        if crops == self.crops:
            return self.session.run(None, {"image": np.ascontiguousarray(x, np.float32)})[0]
        size = self.spec.size
        views = np.stack([x[:, :, r : r + size, c : c + size] for r, c in self.spec.boxes(crops)], 1)
        p = self.session.run(None, {"image": np.ascontiguousarray(views.reshape(-1, 1, size, size), np.float32)})[0]
        return softmax(log_probs(p).reshape(len(x), crops, -1).mean(1)).astype(np.float32)


