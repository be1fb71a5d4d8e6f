"""CharNet, the paper's network, and CharNet-S, the same stage design adapted to 64 px and CPUs.

Both are four stages of [conv, ResBlock, Inception] with an auxiliary classifier after each stage
and a main head; auxiliary logits are returned in training mode only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .registry import register_model


def conv_bn(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))


class ResBlock(nn.Module):
    """main: conv3x3 stride s + BN + ReLU, conv3x3 + BN; shortcut: conv1x1 stride s + BN; add, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 2):
        super().__init__()
        self.main = nn.Sequential(conv_bn(cin, cout, 3, stride), nn.ReLU(inplace=True), conv_bn(cout, cout, 3))
        self.short = conv_bn(cin, cout, 1, stride) if (stride != 1 or cin != cout) else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.main(x) + self.short(x))


class Inception(nn.Module):
    """[1x1/a] | [1x1/b_r, 3x3/b] | [1x1/c_r, 5x5/c] | [maxpool 3x3 s1, 1x1/d], ReLU after each conv.

    ``bn=True`` (CharNet-S) adds BatchNorm before each ReLU; the paper's block has none.
    """

    def __init__(self, cin: int, a: int, b_r: int, b: int, c_r: int, c: int, d: int, bn: bool = False):
        super().__init__()

        def cbr(i: int, o: int, k: int) -> list[nn.Module]:
            conv = nn.Conv2d(i, o, k, 1, k // 2, bias=not bn)
            return [conv, nn.BatchNorm2d(o), nn.ReLU(inplace=True)] if bn else [conv, nn.ReLU(inplace=True)]

        self.b1 = nn.Sequential(*cbr(cin, a, 1))
        self.b2 = nn.Sequential(*cbr(cin, b_r, 1), *cbr(b_r, b, 3))
        self.b3 = nn.Sequential(*cbr(cin, c_r, 1), *cbr(c_r, c, 5))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), *cbr(cin, d, 1))
        self.out_channels = a + b + c + d

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class CharNetBase(nn.Module):
    """Shared forward logic: ``stages`` -> aux heads on stage outputs, ``neck`` -> main head."""

    stages: nn.ModuleList
    aux_heads: nn.ModuleList
    neck: nn.Module
    head: nn.Module

    def _stage_outputs(self, x: Tensor) -> list[Tensor]:
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def forward_features(self, x: Tensor) -> Tensor:
        return self.neck(self._stage_outputs(x)[-1])

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, list[Tensor]]:
        outs = self._stage_outputs(x)  # the auxiliary heads read the first len(aux_heads) outputs
        logits = self.forward_head(self.neck(outs[-1]))
        if self.training:
            return logits, [h(o) for h, o in zip(self.aux_heads, outs[: len(self.aux_heads)], strict=True)]
        return logits


# ---------------------------------------------------------------------------------------------
# The paper's CharNet (256 px; about 400 M parameters at 7,330 classes)

PAPER_INCEPTION = [(32, 48, 64, 16, 32, 32), (64, 96, 128, 32, 64, 64), (128, 182, 256, 64, 128, 128),
                   (256, 364, 512, 128, 256, 256)]


def _flat_aux_head(features: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(features, 512), nn.ReLU(inplace=True), nn.Dropout(0.5),
                         nn.Linear(512, 256), nn.ReLU(inplace=True), nn.Linear(256, num_classes))


class CharNet(CharNetBase):
    def __init__(self, num_classes: int, image_size: int = 256, in_chans: int = 1, aux: bool = True):
        super().__init__()
        self.arch_args = {"aux": bool(aux)}  # a packaged model drops the auxiliary heads (training only)
        widths = [32, 64, 128, 256]
        stages: list[nn.Module] = []
        cin = in_chans
        for k, f in enumerate(widths):
            # Stem (k = 0): conv 5x5/32; later stages: conv 3x3/f. ReLU before BN, as in the paper.
            ksize = 5 if k == 0 else 3
            inc = Inception(f, *PAPER_INCEPTION[k])
            stages.append(nn.Sequential(
                nn.Conv2d(cin, f, ksize, 1, ksize // 2), nn.ReLU(inplace=True), nn.BatchNorm2d(f),
                nn.MaxPool2d(2), nn.Dropout(0.2), ResBlock(f, f, 2), inc))
            cin = inc.out_channels
        stages.append(nn.Sequential(nn.Conv2d(cin, 512, 3, 1, 1), nn.ReLU(inplace=True), nn.BatchNorm2d(512),
                                    nn.Dropout(0.4)))
        self.stages = nn.ModuleList(stages)
        # Flatten sizes follow from the input size: each stage halves twice (max-pool, stride-2 ResBlock).
        side, shapes = image_size, []
        for k in range(4):
            side = -(-(side // 2) // 2)
            shapes.append(side * side * sum(PAPER_INCEPTION[k][i] for i in (0, 2, 4, 5)))
        self.aux_heads = nn.ModuleList(_flat_aux_head(n, num_classes) for n in (shapes if aux else []))
        self.neck = nn.Sequential(nn.Flatten(), nn.Linear(side * side * 512, 512), nn.ReLU(inplace=True),
                                  nn.Dropout(0.6), nn.Linear(512, 256), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(0.6), nn.Linear(256, num_classes))


@register_model("charnet")
def charnet(num_classes: int, image_size: int = 256, **kw) -> CharNet:
    if image_size < 96 or image_size % 32:  # at 64 px the last stage would shrink to nothing
        from ..errors import HccrError

        raise HccrError(f"charnet needs an image size that is a multiple of 32 and at least 96, got {image_size}")
    return CharNet(num_classes, image_size, **kw)


# ---------------------------------------------------------------------------------------------
# CharNet-S: the stage design at 64 px for CPUs

class CharNetS(CharNetBase):
    """Stride-2 stem conv (64 -> 32), then four [conv?, ResBlock, Inception] stages, each ResBlock with
    its own stride; the default (2, 2, 2, 2) gives stages ending at 16, 8, 4 and 2 px for a 64 px
    input. ``conv_stages`` lists the stages that open with a 3x3 conv at their input resolution,
    as every stage of the paper's net does; by default only stage 0 (at 32 px), which measured
    +0.9 pt on held-out writers at no measurable cost (docs/benchmarks.md).

    Differences from the paper's net, all for speed or stability at 64 px: a strided stem instead
    of a full-resolution conv and max-pool (on CPUs the passes over large activation maps, not the
    multiply-adds, dominate inference time), BatchNorm inside the Inception blocks, auxiliary heads
    on globally pooled features (a linear layer instead of flatten-dense stacks), and a pooled
    main head. ``arch_args`` records every constructor argument so checkpoints rebuild it exactly.
    """

    def __init__(self, num_classes: int, image_size: int = 64, in_chans: int = 1,
                 widths: tuple[int, ...] = (32, 64, 128, 256), stem: int = 16,
                 strides: tuple[int, ...] = (2, 2, 2, 2), conv_stages: tuple[int, ...] | int = (0,),
                 drop: float = 0.2, aux: bool = True):
        super().__init__()
        conv_stages = tuple(conv_stages) if isinstance(conv_stages, (tuple, list)) else (int(conv_stages),)
        if len(strides) != len(widths):
            from ..errors import HccrError

            raise HccrError(f"charnet-s: {len(widths)} widths need as many strides, got {len(strides)}")
        self.arch_args = {"widths": list(widths), "stem": stem, "strides": list(strides),
                          "conv_stages": list(conv_stages), "drop": drop, "aux": bool(aux)}
        stages: list[nn.Module] = []
        stage_channels: list[int] = []
        cin = stem
        first = nn.Sequential(nn.Conv2d(in_chans, stem, 3, 2, 1, bias=False), nn.BatchNorm2d(stem),
                              nn.ReLU(inplace=True))
        for k, (f, s) in enumerate(zip(widths, strides, strict=True)):
            body: list[nn.Module] = [first] if k == 0 else []
            if k in conv_stages:  # the paper's stage opener: a 3x3 conv at the stage's input resolution
                body += [conv_bn(cin, f, 3), nn.ReLU(inplace=True)]
                cin = f
            # Branch widths in the paper's proportions: a, b, c, d = f/4, f/2, f/4, f/4 (reductions 3f/8, f/8).
            inc = Inception(f, f // 4, f // 4 * 3 // 2, f // 2, f // 8, f // 4, f // 4, bn=True)
            stages.append(nn.Sequential(*body, ResBlock(cin, f, s), inc))
            cin = inc.out_channels
            stage_channels.append(cin)
        self.stages = nn.ModuleList(stages)
        self.num_features = cin
        # Auxiliary heads (deep supervision) can be left out: at thousands of classes each is a
        # large linear layer that costs training time for little gain.
        self.aux_heads = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))
            for c in (stage_channels if aux else []))
        self.neck = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(drop), nn.Linear(cin, num_classes))


@register_model("charnet-s")
def charnet_s(num_classes: int, image_size: int = 64, **kw) -> CharNetS:
    return CharNetS(num_classes, image_size, **kw)
