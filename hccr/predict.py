"""PyTorch checkpoints as recognizers: multi-crop prediction, as the paper does it, at any model size.

Each image is normalised (ink high, aspect kept, padded square) to ``size * 280 / 256`` pixels;
five ``size``×``size`` crops (centre and four corners) go through the model, their logits are
averaged and a softmax gives the probabilities. ``crops=1`` feeds the whole image at ``size``
(the view the model was trained on). The torch-free half (recognizer interface, ONNX Runtime,
prediction files) is :mod:`hccr.runtime`.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .augment import resize, to_model_input  # noqa: F401  (to_model_input re-exported)
from .data.charset import Charset
from .preprocess import InputSpec, crop_boxes  # noqa: F401  (crop_boxes re-exported)
from .runtime import (  # noqa: F401  (the torch-free half, re-exported for existing imports)
    BaseRecognizer,
    Predictions,
    file_digest,
    load_recognizer,
    predict_inputs,
    restrict_to,
    topk_chars,
)


def multicrop(x: torch.Tensor, size: int, crops: int) -> torch.Tensor:
    """(B, 1, s, s) normalised images -> (B * crops, 1, size, size), crops of one image adjacent."""
    spec = InputSpec(size, crops=crops)
    x = resize(x, spec.side())
    if crops == 1:
        return x
    views = [x[:, :, r : r + size, c : c + size] for r, c in spec.boxes()]
    return torch.stack(views, 1).reshape(-1, 1, size, size)


class Recognizer(BaseRecognizer):
    """A checkpoint ready to predict: ``predict(images, topk=5, crops=5)``."""

    def __init__(self, model: torch.nn.Module, meta: dict, device: str | torch.device = "cpu",
                 identity: dict | None = None, amp: bool = False):
        from .models import fuse_for_inference

        self.model = fuse_for_inference(model.eval().to(device)).to(memory_format=torch.channels_last)
        self.meta = meta
        self.device = torch.device(device)
        self.charset = Charset(meta["charset"])
        self.spec = InputSpec.from_meta(meta["preprocessing"])
        self.amp = amp  # bf16 autocast: faster on CPUs with bf16 units, probabilities differ by ~1e-2
        self.temperature = float(meta.get("calibration", {}).get("temperature", 1.0))
        self.identity = identity or {"arch": meta.get("arch")}

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "cpu", amp: bool = False) -> Recognizer:
        from .checkpoint import load_checkpoint, resolve
        from .precision import check_device

        check_device(device)  # before the weights: a missing GPU is not a damaged file
        model, meta = load_checkpoint(path, device, heads=False)  # prediction reads the main head
        p = resolve(path)
        ident = {"path": str(p), "arch": meta["arch"], "weights_sha256": file_digest(p.with_suffix(".safetensors")),
                 "created": meta.get("created"), "epoch": meta.get("epoch")}
        return cls(model, meta, device, ident, amp)

    def proba_normalized(self, x: np.ndarray | torch.Tensor, crops: int | None = None) -> np.ndarray:
        """Normalised (B, 1, s, s) images, any s -> (B, C) probabilities."""
        return torch.softmax(self.logits(torch.as_tensor(x), crops), -1).numpy()

    @torch.inference_mode()
    def logits(self, x: torch.Tensor, crops: int | None = None) -> torch.Tensor:
        """Normalised (B, 1, s, s) -> (B, C) logits averaged over crops."""
        from .precision import autocast_for

        b, crops = x.shape[0], self.spec.crops if crops is None else crops
        views = to_model_input(multicrop(x.to(self.device), self.spec.size, crops), self.spec.ink)
        ctx, _ = autocast_for(self.device, self.amp)
        with ctx:
            out = self.model(views)
        return out.float().reshape(b, crops, -1).mean(1)
