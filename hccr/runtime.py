"""Recognising without PyTorch: image batches, the recognizer interface, ONNX Runtime, prediction files.

Everything a user needs to *use* a model lives here and imports only numpy, Pillow and (for
``.onnx`` models, the shipped one included) ONNX Runtime. PyTorch checkpoints load through
:mod:`hccr.predict`, imported only when one is asked for; training is the ``hccr[train]`` extra.

Each image is normalised (ink high, aspect kept, padded square) to ``size * 280 / 256`` pixels for
the paper's five crops (centre and four corners, logits averaged), or to ``size`` for one crop.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data.charset import Charset
from .errors import HccrError
from .preprocess import MULTICROP_RATIO, normalize

MANY_CLASSES = 4096  # above this, probabilities are kept as float16 (prediction files and ensembles)


def file_digest(path: str | os.PathLike, limit: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(limit))
    return h.hexdigest()[:16]


def normalize_images(images: list[np.ndarray], image_size: int, crops: int, margin: float = 0.0,
                     cleanup: bool = True) -> np.ndarray:
    """The one input path shared by PyTorch, ONNX Runtime and the server: gray images (dark ink on
    white, any size) -> (B, 1, s, s) float32, ink high, aspect kept, at the size the crops need."""
    s = round(image_size * MULTICROP_RATIO) if crops == 5 else image_size
    arr = np.stack([normalize(np.asarray(im, np.uint8), s, margin, cleanup) for im in images])
    return arr[:, None].astype(np.float32) / 255


def temper(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities at another softmax temperature: softmax(log p / T) = softmax(z / T) for any
    logits z behind p, so a recognizer that only returns probabilities (ONNX) can be calibrated."""
    if temperature == 1.0:
        return probs
    out = np.empty(probs.shape, probs.dtype)
    for i in range(0, len(probs), 4096):
        z = np.log(np.clip(np.asarray(probs[i : i + 4096], np.float64), 1e-30, None)) / temperature
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        out[i : i + 4096] = e / e.sum(1, keepdims=True)
    return out


def several_characters(images: list[np.ndarray]) -> list[bool]:
    """For each gray image: whether it probably holds several characters (a word, a line), which a
    single-character recognizer would answer confidently and wrongly."""
    from .preprocess import clean, looks_like_several

    return [looks_like_several(clean(np.asarray(im, np.uint8))) for im in images]


def resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    """(B, h, w) uint8 store images (ink high) -> (B, 1, size, size) float32 in [0, 1], resized the
    way :func:`normalize` resizes image files (Pillow, bilinear), so stores and files agree."""
    from PIL import Image

    images = np.asarray(images)
    if images.shape[1:] != (size, size):
        resample = Image.Resampling.BILINEAR
        images = np.stack([np.asarray(Image.fromarray(im).resize((size, size), resample)) for im in images])
    return images[:, None].astype(np.float32) / 255


class BaseRecognizer:
    """What every recognizer offers on top of ``proba_normalized(x, crops)``, which maps normalised
    (B, 1, s, s) float32 images (ink high, s = the crops' input size) to (B, C) probabilities."""

    charset: Charset
    image_size: int
    margin: float = 0.0
    cleanup: bool = True  # flatten the paper and crop to the ink first (False: the image as it is)
    temperature: float = 1.0  # fitted by `hccr calibrate`: probabilities a user can threshold

    def probabilities(self, x: np.ndarray, crops: int) -> np.ndarray:
        """Normalised images -> calibrated (B, C) probabilities."""
        return temper(self.proba_normalized(x, crops), self.temperature)

    def normalize_images(self, images: list[np.ndarray], crops: int) -> np.ndarray:
        return normalize_images(images, self.image_size, crops, self.margin, self.cleanup)

    def predict_proba(self, images, crops: int = 5, batch_size: int = 256, bgr: bool = False) -> np.ndarray:
        """(N, C) probabilities for one image or a list: paths, bytes, PIL images or arrays (see
        :mod:`hccr.inputs`)."""
        from .inputs import as_gray_list

        images = as_gray_list(images, bgr)
        out = []
        for i in range(0, len(images), batch_size):
            out.append(self.probabilities(self.normalize_images(images[i : i + batch_size], crops), crops))
        return np.concatenate(out) if out else np.zeros((0, len(self.charset)), np.float32)

    def predict(self, images, topk: int = 5, crops: int = 5, allowed: str | None = None, bgr: bool = False
                ) -> list[list[tuple[str, float]]]:
        """Top-k ``(character, probability)`` for each image: a path, bytes, a PIL image or an array
        (H×W gray, H×W×3 RGB, or BGR with ``bgr=True``; uint8 or float in [0, 1]), or a list of them.
        ``allowed`` (a string of characters, a charset name or file) restricts the answers."""
        import warnings

        from .inputs import as_gray_list

        images = as_gray_list(images, bgr)
        several = [i for i, s in enumerate(several_characters(images)) if s]
        if several:
            warnings.warn(f"image(s) {', '.join(map(str, several[:10]))} look like several characters (a word or "
                          "a line); hccr reads one character per image", stacklevel=2)
        probs = self.predict_proba(images, crops)
        if allowed:
            probs = restrict_to(probs, self.charset, allowed)
            topk = min(topk, int((probs[:1] > 0).sum()) or 1)  # never pad with excluded characters
        return topk_chars(probs, self.charset, topk)


def restrict_to(probs: np.ndarray, charset: Charset, allowed: str) -> np.ndarray:
    """Probabilities renormalised over the allowed characters (a charset name, file or string);
    the others get 0. For users who know their text uses only some characters."""
    from .data.charset import resolve_charset

    chars = resolve_charset(allowed)
    keep = np.zeros(len(charset), bool)
    idx = [charset.index[c] for c in chars if c in charset.index]
    if not idx:
        raise HccrError(f"--charset {allowed[:40]!r}: none of its characters is known to this model")
    keep[idx] = True
    out = np.where(keep, probs, 0).astype(probs.dtype)
    return out / np.maximum(out.sum(1, keepdims=True), 1e-12)


def topk_chars(probs: np.ndarray, charset: Charset, k: int) -> list[list[tuple[str, float]]]:
    k = min(k, probs.shape[1])
    idx = np.argsort(-probs, axis=1)[:, :k]
    return [[(charset[int(j)], float(p[j])) for j in row] for p, row in zip(probs, idx, strict=True)]


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
        import json

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
        import json

        path = Path(path)
        if not path.is_file():
            raise HccrError(f"{path}: no such predictions file")
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(z["probs"], str(z["charset"]), z["labels"], z["ids"], str(z["source"]),
                           json.loads(str(z["meta"])))
        except (KeyError, ValueError, OSError) as e:
            raise HccrError(f"{path}: not an hccr predictions file ({e})") from None


def expand_inputs(inputs: list[str], stdin=None) -> list[tuple[str, str | None]]:
    """What users type -> ``(image path, label character or None)``: image files; folders, either
    labelled (``<root>/<char>/<n>.png``) or flat (images directly inside, unlabelled); glob patterns
    (``scans/**/*.png``); ``-`` for paths on standard input, one per line."""
    import glob
    import sys

    from .data.images import IMAGE_SUFFIXES, _class_dirs, scan_image_folder

    out: list[tuple[str, str | None]] = []
    for inp in inputs:
        if inp == "-":
            lines = [ln.strip() for ln in (stdin or sys.stdin).read().splitlines() if ln.strip()]
            out += expand_inputs(lines) if lines and "-" not in lines else []
            continue
        p = Path(inp)
        if not p.exists() and any(ch in inp for ch in "*?["):
            matches = sorted(m for m in glob.glob(inp, recursive=True)
                             if Path(m).is_file() and Path(m).suffix.lower() in IMAGE_SUFFIXES)
            if not matches:
                raise HccrError(f"{inp}: no image file matches this pattern")
            out += [(m, None) for m in matches]
        elif p.is_dir():
            flat = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if flat or not _class_dirs(p):
                if not flat:
                    raise HccrError(f"{p}: no images found (expected image files, or <root>/<char>/<n>.png)")
                out += [(str(f), None) for f in flat]
            else:
                out += [(it.path, it.char) for it in scan_image_folder(p)]
        elif p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            out.append((str(p), None))
        elif p.exists():
            raise HccrError(f"{p}: not an image, an image folder or an hccr store")
        else:
            raise HccrError(f"{p}: no such file or folder")
    return out


def predict_inputs(rec: BaseRecognizer, inputs: list[str], crops: int = 5, batch_size: int = 256, split: str = "all",
                   progress: bool = True, on_error: str = "stop") -> Predictions:
    """Probabilities for a store (``split`` of it) or images (see :func:`expand_inputs`; labels come
    from per-character folder names). ``on_error="skip"`` leaves out unreadable images and counts
    them (``meta["skipped"]``); images labelled with characters the model does not know get label
    -1 and are counted in ``meta["unknown_labels"]``, never silently mixed into an accuracy."""
    from .data.store import Store
    from .inputs import as_gray
    from .utils import Progress

    if on_error not in ("skip", "stop"):
        raise HccrError(f"--on-error must be skip or stop, not {on_error!r}")
    inputs = [str(i) for i in inputs]
    store = None
    if len(inputs) == 1 and (Path(inputs[0]) / "manifest.json").exists():
        store = Store(inputs[0])
        idx = store.indices(split)
        chars = [store.charset[int(c)] for c in store.labels[idx]]
        ids = np.array([f"store:{i}" for i in idx])
    else:
        items = expand_inputs(inputs)
        chars = [c for _, c in items]
        ids = np.array([p for p, _ in items])
    labels = np.array([rec.charset.index.get(c, -1) if c is not None else -1 for c in chars], np.int32)
    unknown = np.array([c is not None and c not in rec.charset.index for c in chars], bool)
    n = len(labels)
    if n == 0:
        raise HccrError(f"{', '.join(inputs)}: nothing to predict")
    # Thousands of classes: float16 (100,000 images x 6,763 classes = 1.35 GB instead of 2.7).
    probs = np.zeros((n, len(rec.charset)), np.float16 if len(rec.charset) > MANY_CLASSES else np.float32)
    ok = np.ones(n, bool)
    skipped: list[str] = []
    several: list[str] = []
    t0 = time.perf_counter()
    with Progress((n + batch_size - 1) // batch_size, "predict", disable=not progress, unit="batches") as bar:
        for i in range(0, n, batch_size):
            if store is not None:
                b = idx[i : i + batch_size]  # sorted: sequential reads from the memory map
                s = round(rec.image_size * MULTICROP_RATIO) if crops == 5 else rec.image_size
                probs[i : i + len(b)] = rec.probabilities(resize_batch(store.images[b], s), crops)
            else:
                imgs, rows = [], []
                for j in range(i, min(i + batch_size, n)):
                    try:
                        imgs.append(as_gray(ids[j], name=str(ids[j])))
                        rows.append(j)
                    except HccrError as e:
                        if on_error == "stop":
                            raise HccrError(f"{e} (--on-error skip leaves it out and goes on)") from None
                        skipped.append(str(e))
                        ok[j] = False
                if imgs:
                    probs[rows] = rec.predict_proba(imgs, crops, batch_size)
                    several += [str(ids[j]) for j, s in zip(rows, several_characters(imgs), strict=True) if s]
            bar.update(1)
    dt = time.perf_counter() - t0
    if not ok.all():
        probs, labels, ids = probs[ok], labels[ok], ids[ok]
        if not ok.any():
            raise HccrError(f"{', '.join(inputs)}: no readable image ({skipped[0]})")
    meta = {"model": rec.identity, "crops": crops, "ms_per_char": 1000 * dt / max(int(ok.sum()), 1), "seconds": dt,
            "kind": "model", "split": split if store is not None else None, "skipped": skipped,
            "unknown_labels": int(unknown[ok].sum()), "several_characters": several,
            "unknown_chars": "".join(sorted({c for c, u in zip(chars, unknown, strict=True) if u}))}
    return Predictions(probs, "".join(rec.charset), labels, ids, ",".join(inputs), meta)


def load_recognizer(path: str | os.PathLike | None = None, device: str = "cpu", amp: bool = False):
    """A shipped model by name (``gb2312``; the default when ``path`` is None), a checkpoint (run
    folder, .json, .safetensors) or an exported ``.onnx`` file."""
    from .shipped import DEFAULT_MODEL, SHIPPED, load_shipped

    if path is None or str(path) in SHIPPED:
        return load_shipped(str(path or DEFAULT_MODEL), device)
    if str(path).endswith(".onnx"):
        return OnnxRecognizer(path)
    try:
        from .predict import Recognizer
    except ImportError as e:
        raise HccrError(f"{path}: a PyTorch checkpoint needs torch ({e.name} is not installed): "
                        "pip install 'hccr[train]', or export the model with `hccr export` and use the .onnx file") from None
    return Recognizer.from_checkpoint(path, device, amp)


class OnnxRecognizer(BaseRecognizer):
    """The same interface as :class:`hccr.predict.Recognizer`, running an exported graph in ONNX
    Runtime (no PyTorch needed). ``providers`` picks the execution providers (default: CPU)."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None, providers: list[str] | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise HccrError(f"{path}: running ONNX models needs onnxruntime: pip install onnxruntime") from None

        path = Path(path)
        if not path.is_file():
            raise HccrError(f"{path}: no such ONNX file")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise HccrError(f"{path}: not a loadable ONNX model ({str(e).splitlines()[0]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("hccr_format") != "hccr-onnx/1":
            raise HccrError(f"{path}: not exported by hccr (no hccr metadata)")
        self.charset = Charset(meta["charset"])
        pre = json.loads(meta["preprocessing"])
        self.image_size = int(pre["image_size"])
        self.margin = float(pre.get("margin", 0.0))
        self.crops = int(meta["crops"])
        self.input_size = int(meta["input_size"])
        self.temperature = float(meta.get("temperature", 1.0))
        self.identity = {"path": str(path), "arch": "onnx", "members": json.loads(meta["members"]),
                         "weights": json.loads(meta["weights"])}

    def proba_normalized(self, x: np.ndarray, crops: int | None = None) -> np.ndarray:
        if crops is not None and crops != self.crops:
            raise HccrError(f"this ONNX model was exported with {self.crops} crop(s); export again for {crops}")
        if x.shape[-1] != self.input_size:
            raise HccrError(f"this ONNX model takes {self.input_size} px inputs, got {x.shape[-1]} px")
        return self.session.run(None, {"image": np.ascontiguousarray(x, np.float32)})[0]

    def predict_proba(self, images, crops: int | None = None, batch_size: int = 256, bgr: bool = False) -> np.ndarray:
        return super().predict_proba(images, self.crops if crops is None else crops, batch_size, bgr)

    def predict(self, images, topk: int = 5, crops: int | None = None, allowed: str | None = None,
                bgr: bool = False):
        return super().predict(images, topk, self.crops if crops is None else crops, allowed, bgr)
