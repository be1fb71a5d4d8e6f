"""A lean ResNet at 64 px: the plain-CNN baseline the fast CharNet-S is measured against."""

from __future__ import annotations

from torch import Tensor, nn

from .charnet import ResBlock
from .registry import register_model


class LeanResNet(nn.Module):
    def __init__(self, num_classes: int, image_size: int = 64, in_chans: int = 1,
                 widths: tuple[int, ...] = (32, 64, 128, 256), drop: float = 0.2):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                   nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        cin = widths[0]
        for k, w in enumerate(widths):
            layers.append(ResBlock(cin, w, 1 if k == 0 else 2))
            cin = w
        self.body = nn.Sequential(*layers)
        self.neck = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(drop), nn.Linear(cin, num_classes))
        self.num_features = cin

    def forward_features(self, x: Tensor) -> Tensor:
        return self.neck(self.body(x))

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, list[Tensor]]:
        logits = self.forward_head(self.forward_features(x))
        return (logits, []) if self.training else logits


@register_model("resnet-lean")
def resnet_lean(num_classes: int, image_size: int = 64, **kw) -> LeanResNet:
    return LeanResNet(num_classes, image_size, **kw)
