"""A lean ResNet at 64 px: the plain-CNN baseline the fast CharNet-S is measured against.

``depths`` gives each stage more residual blocks (default one each). The added blocks start as identities
(their last BatchNorm's scale is zero, so the block adds nothing to its input), so a network grown from a
trained one with ``hccr train --init`` reads as the source did at step 0 and the new depth learns from there."""

from __future__ import annotations

from torch import Tensor, nn

from .charnet import ResBlock
from .registry import register_model


class LeanResNet(nn.Module):
    def __init__(self, num_classes: int, image_size: int = 64, in_chans: int = 1,
                 widths: tuple[int, ...] = (32, 64, 128, 256), drop: float = 0.2,
                 depths: tuple[int, ...] = (1, 1, 1, 1)):
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
