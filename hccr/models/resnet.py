"""A lean ResNet at 64 px: the plain-CNN baseline the fast CharNet-S is measured against.

``depths`` gives each stage more residual blocks (default one each). The added blocks start as identities
(their last BatchNorm's scale is zero, so the block adds nothing to its input), so a network grown from a
trained one with ``hccr train --init`` reads as the source did at step 0 and the new depth learns from there.

``widths`` may grow the same way (:func:`widened`): the added channels start as freshly initialised
features that no source channel reads (their weights there are zero), so the wider network computes the
source's function exactly at step 0 and the new channels learn to be read from there."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .charnet import ResBlock
from .registry import register_model

# What ``hccr train --init`` may grow in a lean ResNet, with the values a checkpoint that names none has.
GROWABLE = {"widths": (32, 64, 128, 256), "depths": (1, 1, 1, 1)}


class LeanResNet(nn.Module):
    def __init__(self, num_classes: int, image_size: int = 64, in_chans: int = 1,
                 widths: tuple[int, ...] = GROWABLE["widths"], drop: float = 0.2,
                 depths: tuple[int, ...] = GROWABLE["depths"]):
        super().__init__()
        if len(depths) != len(widths) or min(depths) < 1:
            raise ValueError(f"depths {tuple(depths)}: one count of at least 1 per stage ({len(widths)} stages)")
        layers: list[nn.Module] = [nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                   nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        cin = widths[0]
        for k, w in enumerate(widths):
            layers.append(ResBlock(cin, w, 1 if k == 0 else 2))
            cin = w
        self.body = nn.Sequential(*layers)
        # the stages' added blocks (no tensors where a stage has one block: the default's names are unchanged)
        self.extra = nn.ModuleList(nn.Sequential(*[identity_block(w) for _ in range(d - 1)])
                                   for w, d in zip(widths, depths, strict=True))
        self.neck = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(drop), nn.Linear(cin, num_classes))
        self.num_features = cin
        self.widths, self.depths = tuple(widths), tuple(depths)

    def grow_state(self, state: dict[str, Tensor], source_args: dict) -> dict[str, Tensor]:
        """``state`` of a narrower lean ResNet (its ``model_args``: ``source_args``) widened to this one's widths."""
        if tuple(source_args.get("widths", GROWABLE["widths"])) == self.widths:
            return state
        return widened(state, self.state_dict())

    def forward_features(self, x: Tensor) -> Tensor:
        stem = len(self.body) - len(self.extra)  # the stem's layers, then one block per stage
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i >= stem:
                x = self.extra[i - stem](x)
        return self.neck(x)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, list[Tensor]]:
        logits = self.forward_head(self.forward_features(x))
        return (logits, []) if self.training else logits


def identity_block(width: int) -> ResBlock:
    """A stride-1 residual block that passes its (non-negative, post-ReLU) input through unchanged."""
    block = ResBlock(width, width, 1)
    nn.init.zeros_(block.main[-1][1].weight)
    return block


@register_model("resnet-lean")
def resnet_lean(num_classes: int, image_size: int = 64, **kw) -> LeanResNet:
    return LeanResNet(num_classes, image_size, **kw)


def widened(state: dict[str, Tensor], fresh: dict[str, Tensor]) -> dict[str, Tensor]:
    """A lean ResNet's ``state`` in a wider one whose freshly initialised state is ``fresh``: each source
    tensor fills the leading block of its wider copy; the source channels' weights on the added input channels
    are zero, so no source channel (nor the classifier) reads an added one and the function is the source's
    exactly; the added channels keep their fresh initialisation (they read every channel), so they start as
    new features, not as copies that Adam would move together. Tensors the source lacks are not here."""
    out = {}
    for name, src in state.items():
        new = fresh.get(name)
        if new is None or new.shape == src.shape:
            out[name] = src
            continue
        if new.ndim != src.ndim or any(n < o for n, o in zip(new.shape, src.shape, strict=True)):
            raise ValueError(f"{name}: {tuple(src.shape)} cannot widen to {tuple(new.shape)}")
        w = new.clone().to(torch.float32 if src.is_floating_point() else new.dtype)
        if w.ndim >= 2:  # (out, in, ...): the source's outputs read nothing of the added inputs
            w[: src.shape[0]] = 0
        w[tuple(slice(0, n) for n in src.shape)] = src.to(w.dtype)
        out[name] = w
    return out
