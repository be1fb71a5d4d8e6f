"""Multi-crop prediction -> class probabilities, as the paper does it, at any model size.

Each image is normalised (ink high, aspect kept, padded square) to ``size * 280 / 256`` pixels;
five ``size``×``size`` crops (centre and four corners) go through the model, their logits are
averaged and a softmax gives the probabilities. ``crops=1`` feeds the whole image at ``size``
(the view the model was trained on).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .augment import resize
from .data.charset import Charset
from .errors import HccrError
from .preprocess import MULTICROP_RATIO, normalize


def crop_boxes(big: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners of the five crops: centre, then top-left, top-right, bottom-left, bottom-right."""
    d = big - size
    c = d // 2
    return [(c, c), (0, 0), (0, d), (d, 0), (d, d)]


def multicrop(x: torch.Tensor, size: int, crops: int) -> torch.Tensor:
    """(B, 1, s, s) normalised images -> (B * crops, 1, size, size), crops of one image adjacent."""
    if crops == 1:
        return resize(x, size)
    if crops != 5:
        raise HccrError(f"--crops must be 1 or 5, got {crops}")
    big = round(size * MULTICROP_RATIO)
    x = resize(x, big)
    views = [x[:, :, r : r + size, c : c + size] for r, c in crop_boxes(big, size)]
    return torch.stack(views, 1).reshape(-1, 1, size, size)


def to_model_input(x: torch.Tensor, ink: str, channels_last: bool = True) -> torch.Tensor:
    if ink == "dark":
        x = 1.0 - x
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def file_digest(path: str | os.PathLike, limit: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(limit))
    return h.hexdigest()[:16]


def normalize_images(images: list[np.ndarray], image_size: int, crops: int, margin: float = 0.0) -> torch.Tensor:
    """The one input path shared by PyTorch, ONNX Runtime and the server: gray images (dark ink on
    white, any size) -> (B, 1, s, s) floats, ink high, aspect kept, at the size the crops need."""
    s = round(image_size * MULTICROP_RATIO) if crops == 5 else image_size
    arr = np.stack([normalize(np.asarray(im, np.uint8), s, margin) for im in images])
    return torch.from_numpy(arr).unsqueeze(1).float().div_(255)


class BaseRecognizer:
    """What every recognizer offers on top of ``normalize_images`` and ``proba_normalized``."""

    charset: Charset
    image_size: int
    margin: float = 0.0

    def normalize_images(self, images: list[np.ndarray], crops: int) -> torch.Tensor:
        return normalize_images(images, self.image_size, crops, self.margin)

    def predict_proba(self, images, crops: int = 5, batch_size: int = 256, bgr: bool = False) -> np.ndarray:
        """(N, C) probabilities for one image or a list: paths, bytes, PIL images or arrays (see
        :mod:`hccr.inputs`)."""
        from .inputs import as_gray_list

        images = as_gray_list(images, bgr)
        out = []
        for i in range(0, len(images), batch_size):
            out.append(self.proba_normalized(self.normalize_images(images[i : i + batch_size], crops), crops))
        return np.concatenate(out) if out else np.zeros((0, len(self.charset)), np.float32)

    def predict(self, images, topk: int = 5, crops: int = 5, allowed: str | None = None, bgr: bool = False
                ) -> list[list[tuple[str, float]]]:
        """Top-k ``(character, probability)`` for each image: a path, bytes, a PIL image or an array
        (H×W gray, H×W×3 RGB, or BGR with ``bgr=True``; uint8 or float in [0, 1]), or a list of them.
        ``allowed`` (a string of characters, a charset name or file) restricts the answers."""
        probs = self.predict_proba(images, crops, bgr=bgr)
        if allowed:
            probs = restrict_to(probs, self.charset, allowed)
            topk = min(topk, int((probs[:1] > 0).sum()) or 1)  # never pad with excluded characters
        return topk_chars(probs, self.charset, topk)


class Recognizer(BaseRecognizer):
    """A checkpoint ready to predict: ``predict(images, topk=5, crops=5)``."""

    def __init__(self, model: torch.nn.Module, meta: dict, device: str | torch.device = "cpu",
                 identity: dict | None = None, amp: bool = False):
        from .models import fuse_for_inference

        self.model = fuse_for_inference(model.eval().to(device)).to(memory_format=torch.channels_last)
        self.meta = meta
        self.device = torch.device(device)
        self.charset = Charset(meta["charset"])
        pre = meta["preprocessing"]
        self.image_size = int(pre["image_size"])
        self.ink = pre["ink"]
        self.margin = float(pre.get("margin", 0.0))
        self.amp = amp  # bf16 autocast: faster on CPUs with bf16 units, probabilities differ by ~1e-2
        self.identity = identity or {"arch": meta.get("arch")}

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "cpu", amp: bool = False) -> Recognizer:
        from .checkpoint import load_checkpoint, resolve

        model, meta = load_checkpoint(path, device)
        p = resolve(path)
        ident = {"path": str(p), "arch": meta["arch"], "weights_sha256": file_digest(p.with_suffix(".safetensors")),
                 "created": meta.get("created"), "epoch": meta.get("epoch")}
        return cls(model, meta, device, ident, amp)

    def proba_normalized(self, x: torch.Tensor, crops: int = 5) -> np.ndarray:
        """Normalised (B, 1, s, s) images, any s -> (B, C) probabilities."""
        return torch.softmax(self.logits(x, crops), -1).numpy()

    @torch.inference_mode()
    def logits(self, x: torch.Tensor, crops: int = 5) -> torch.Tensor:
        """Normalised (B, 1, s, s) -> (B, C) logits averaged over crops."""
        from .train import autocast_for

        b = x.shape[0]
        views = to_model_input(multicrop(x.to(self.device), self.image_size, crops), self.ink)
        ctx, _ = autocast_for(self.device, self.amp)
        with ctx:
            out = self.model(views)
        return out.float().reshape(b, crops, -1).mean(1)



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
                np.savez(f, probs=self.probs.astype(np.float16 if float16 else np.float32),
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
                return cls(z["probs"].astype(np.float32), str(z["charset"]), z["labels"], z["ids"], str(z["source"]),
                           json.loads(str(z["meta"])))
        except (KeyError, ValueError, OSError) as e:
            raise HccrError(f"{path}: not an hccr predictions file ({e})") from None


def _gather_inputs(inputs: list[str], charset: Charset, split: str) -> tuple[str, list, np.ndarray, np.ndarray]:
    """-> kind ('store' or 'files'), loader payload, labels, ids."""
    from .data.images import IMAGE_SUFFIXES, load_gray, scan_image_folder
    from .data.store import Store

    if len(inputs) == 1 and (Path(inputs[0]) / "manifest.json").exists():
        store = Store(inputs[0])
        idx = store.indices(split)
        lut = np.array([charset.index.get(ch, -1) for ch in store.charset], dtype=np.int32)
        return "store", [store, idx], lut[store.labels[idx]], np.array([f"store:{i}" for i in idx])
    paths, labels = [], []
    for inp in inputs:
        p = Path(inp)
        if p.is_dir():
            for it in scan_image_folder(p):
                paths.append(it.path)
                labels.append(charset.index.get(it.char, -1))
        elif p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            paths.append(str(p))
            labels.append(-1)
        elif p.exists():
            raise HccrError(f"{p}: not an image, an image folder or an hccr store")
        else:
            raise HccrError(f"{p}: no such file or folder")
    return "files", [load_gray, paths], np.asarray(labels, np.int32), np.asarray(paths)


def predict_inputs(rec: Recognizer, inputs: list[str], crops: int = 5, batch_size: int = 256, split: str = "all",
                   progress: bool = True) -> Predictions:
    """Probabilities for a store (``split`` of it), an image folder (labels from folder names) or files."""
    from .utils import Progress

    kind, payload, labels, ids = _gather_inputs([str(i) for i in inputs], rec.charset, split)
    n = len(labels)
    if n == 0:
        raise HccrError(f"{', '.join(map(str, inputs))}: nothing to predict")
    probs = np.zeros((n, len(rec.charset)), np.float32)
    t0 = time.perf_counter()
    with Progress((n + batch_size - 1) // batch_size, "predict", disable=not progress, unit="batches") as bar:
        for i in range(0, n, batch_size):
            if kind == "store":
                store, idx = payload
                b = idx[i : i + batch_size]  # sorted: sequential reads from the memory map
                x = torch.from_numpy(np.ascontiguousarray(store.images[b])).unsqueeze(1).float().div_(255)
                probs[i : i + len(b)] = rec.proba_normalized(x, crops)
            else:
                loader, paths = payload
                imgs = [loader(p) for p in paths[i : i + batch_size]]
                probs[i : i + len(imgs)] = rec.predict_proba(imgs, crops, batch_size)
            bar.update(1)
    dt = time.perf_counter() - t0
    meta = {"model": rec.identity, "crops": crops, "ms_per_char": 1000 * dt / n, "seconds": dt,
            "kind": "model", "split": split if kind == "store" else None}
    return Predictions(probs, "".join(rec.charset), labels, ids, ",".join(map(str, inputs)), meta)


def load_recognizer(path: str | os.PathLike | None = None, device: str = "cpu", amp: bool = False):
    """A shipped model by name (``gb2312``; the default when ``path`` is None), a checkpoint (run
    folder, .json, .safetensors) or an exported ``.onnx`` file."""
    from .shipped import DEFAULT_MODEL, SHIPPED, load_shipped

    if path is None or str(path) in SHIPPED:
        return load_shipped(str(path or DEFAULT_MODEL), device)
    if str(path).endswith(".onnx"):
        from .export import OnnxRecognizer

        return OnnxRecognizer(path)
    return Recognizer.from_checkpoint(path, device, amp)
