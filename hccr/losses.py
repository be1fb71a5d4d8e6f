"""Losses: the paper's binary focal cross-entropy, softmax cross-entropy, deep supervision."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def binary_focal_loss(logits: Tensor, target: Tensor, gamma: float = 4.0, alpha: float = 0.25) -> Tensor:
    """Sigmoid focal cross-entropy on one-hot targets, class-balanced, from logits, mean over classes.

    Per element: ``alpha_t * (1 - p_t) ** gamma * BCE(logit, y)`` with ``p_t = p`` for the true class
    and ``1 - p`` otherwise, ``alpha_t = alpha`` on positives and ``1 - alpha`` on negatives; the mean
    is taken over classes and then over the batch (Keras' BinaryFocalCrossentropy with
    ``apply_class_balancing=True``, as the paper uses it). Computed in float32 under autocast.
    """
    logits = logits.float()
    y = F.one_hot(target, logits.shape[-1]).to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    p = torch.sigmoid(logits)
    p_t = y * p + (1 - y) * (1 - p)
    alpha_t = y * alpha + (1 - y) * (1 - alpha)
    return (alpha_t * (1 - p_t).pow(gamma) * bce).mean()


def cross_entropy(logits: Tensor, target: Tensor, label_smoothing: float = 0.0) -> Tensor:
    return F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)


def deep_supervision(main: Tensor, aux: Sequence[Tensor], target: Tensor, loss_fn, main_weight: float = 1.0,
                     aux_weights: Sequence[float] = ()) -> Tensor:
    """``main_weight * loss(main) + sum_k aux_weights[k] * loss(aux_k)``.

    A zero weight still enters the sum (as 0 * loss) so every head takes part in the graph, which
    DistributedDataParallel requires; auxiliary heads beyond the listed weights are ignored.
    """
    total = main_weight * loss_fn(main, target)
    for w, a in zip(aux_weights, aux, strict=False):
        total = total + w * loss_fn(a, target)
    return total
