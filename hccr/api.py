"""The Python API, mirroring the CLI.

    import hccr
    rec = hccr.load()                                          # the shipped GB2312 recognizer
    rec = hccr.load("runs/quickstart/models/fast-1")          # or a checkpoint, or an exported .onnx file
    rec.predict(gray_image, topk=5, crops=5)                   # [[('安', 0.98), ...]]
    ens = hccr.Ensemble(["m1", "m2", "m3"], weights=(0.3, 0.2, 0.5))
    ens.predict([img1, img2])
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .ensemble import normalize_weights
from .errors import HccrError
from .runtime import check_topk, load_recognizer, top_candidates


def load(path: str | os.PathLike | None = None, device: str = "cpu"):
    """A recognizer: the shipped 6,763-character GB2312 model when ``path`` is None (or
    ``"gb2312"``), else a checkpoint (run folder, ``.json``, ``.safetensors``) or an ``.onnx`` file."""
    return load_recognizer(path, device)


class Ensemble:
    """Weighted average of several recognizers' probabilities (default: the paper's 0.3/0.2/0.5)."""

    def __init__(self, members: Sequence, weights: Sequence[float] | None = None, device: str = "cpu"):
        if isinstance(members, (str, os.PathLike)) or hasattr(members, "predict_proba"):  # one model, not its letters
            members = [members]
        self.members = [m if hasattr(m, "predict_proba") else load(m, device) for m in members]
        if not self.members:
            raise HccrError("an ensemble needs at least one member")
        self.charset = self.members[0].charset
        for i, m in enumerate(self.members[1:], 2):
            if list(m.charset) != list(self.charset):
                raise HccrError(f"member {i} has a different character list from member 1")
        self.weights = normalize_weights(weights, len(self.members))

    def predict_proba(self, images, crops: int | None = None, bgr: bool = False) -> np.ndarray:
        """Each member predicts with ``crops`` (default: its own spec's)."""
        from .inputs import as_gray_list

        images = as_gray_list(images, bgr)
        return sum(w * m.predict_proba(images, crops) for w, m in zip(self.weights, self.members, strict=True))

    def predict(self, images, topk: int = 5, crops: int | None = None, allowed: str | None = None,
                bgr: bool = False) -> list[list[tuple[str, float]]]:
        """Top-k ``(character, probability)`` per image, as a recognizer's ``predict`` (``allowed`` restricts)."""
        topk = check_topk(topk)
        return top_candidates(self.predict_proba(images, crops, bgr), self.charset, topk, allowed)
