"""Count multiply-accumulates of conv and linear layers with forward hooks (enough for these CNNs)."""

from __future__ import annotations

import torch
from torch import nn


def count_macs(model: nn.Module, image_size: int, in_chans: int = 1) -> int:
    """MACs for one image in eval mode (auxiliary heads excluded, as at prediction time)."""
    total = 0

    def hook(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            total += out.numel() // out.shape[0] * m.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_chans, image_size, image_size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total
