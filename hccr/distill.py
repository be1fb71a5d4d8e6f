"""Distillation: one student learns an ensemble's soft five-crop predictions (``hccr distill``).

Every training batch is augmented once; the teachers see exactly the views the student sees, each
through its own five crops (the way the ensemble predicts), and their probabilities at temperature
``T`` are averaged with the ensemble weights. The student's loss mixes the usual hard-label loss
with ``T² · KL(teacher ‖ student)`` (Hinton et al.'s scaling keeps the gradients comparable across T).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .errors import HccrError


class Teacher:
    """An ensemble of checkpoints answering in the student's charset: ``teacher(x) -> (B, C)`` probabilities."""

    def __init__(self, paths: tuple[str, ...], weights: tuple[float, ...], charset: str, temperature: float,
                 crops: int, device: torch.device):
        from .predict import Recognizer

        if not paths:
            raise HccrError("distillation needs at least one teacher checkpoint")
        if weights and len(weights) != len(paths):
            raise HccrError(f"{len(weights)} teacher weights for {len(paths)} teachers")
        if not weights:
            weights = (0.3, 0.2, 0.5) if len(paths) == 3 else (1.0,) * len(paths)
        w = np.asarray(weights, np.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise HccrError(f"teacher weights must be >= 0 and not all 0, got {weights}")
        self.weights = (w / w.sum()).tolist()
        from .finetune import resolve_init

        self.members = [Recognizer.from_checkpoint(resolve_init(p), device) for p in paths]  # shipped names too
        self.temperature, self.crops, self.device = temperature, crops, device
        # Each member's classes -> the student's: students may know characters a teacher does not.
        self.index = []
        for p, m in zip(paths, self.members, strict=True):
            idx = torch.tensor([m.charset.index.get(c, -1) for c in charset])
            if (idx < 0).all():
                raise HccrError(f"teacher {p} knows none of the student's characters")
            self.index.append(idx)
        # characters no teacher knows: their soft target would say "one of the others"; their label teaches them
        self.known = torch.stack([idx >= 0 for idx in self.index]).any(0).to(device)
        self.unknown = "".join(c for c, k in zip(charset, self.known.tolist(), strict=True) if not k)

    def with_labels(self, soft: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``soft`` with the rows of samples whose character no teacher knows replaced by their one-hot label."""
        rows = ~self.known[y]
        if rows.any():
            soft[rows] = F.one_hot(y[rows], soft.shape[1]).to(soft.dtype)
        return soft

    def __call__(self, x_ink_high: torch.Tensor) -> torch.Tensor:
        """(B, 1, s, s) augmented views, ink high, any s -> (B, C) soft targets (a normal tensor)."""
        soft = None
        for w, m, idx in zip(self.weights, self.members, self.index, strict=True):
            z = m.logits(x_ink_high.contiguous(), self.crops)  # inference mode inside
            p = torch.softmax(z / self.temperature, -1)[:, idx.clamp(min=0)] * (idx >= 0)
            soft = w * p if soft is None else soft + w * p
        soft = soft.clone()  # out of inference mode: the loss may keep it for backward
        return soft / soft.sum(1, keepdim=True).clamp_min(1e-12)


def distill_loss(logits: torch.Tensor, soft: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T² · KL(soft ‖ softmax(logits / T))``, averaged over the batch."""
    logp = F.log_softmax(logits.float() / temperature, -1)
    kl = (soft * (soft.clamp_min(1e-12).log() - logp)).sum(1).mean()
    return kl * temperature**2
