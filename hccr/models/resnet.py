"""A lean ResNet at 64 px: the plain-CNN baseline the fast CharNet-S is measured against.

``depths`` gives each stage more residual blocks (default one each). The added blocks start as identities
(their last BatchNorm's scale is zero, so the block adds nothing to its input), so a network grown from a
trained one with ``hccr train --init`` reads as the source did at step 0 and the new depth learns from there.

``widths`` may grow the same way (:func:`widened`): each added channel copies a source channel, and the
layers that read it share that channel's weights among the copies, so the wider network computes the
source's function exactly at step 0; the shares are drawn at random, so the copies learn apart."""

from __future__ import annotations

import torch
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
        self.widths, self.depths = tuple(widths), tuple(depths)

    def grow_state(self, state: dict[str, Tensor], source_args: dict) -> dict[str, Tensor]:
        """``state`` of a narrower lean ResNet (its ``model_args``: ``source_args``) widened to this one's widths."""
        have = tuple(source_args.get("widths", (32, 64, 128, 256)))
        if have == self.widths:
            return state
        return widened(state, have, self.widths, tuple(source_args.get("depths", (1,) * len(have))))

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


def widened(state: dict[str, Tensor], have: tuple[int, ...], want: tuple[int, ...],
            depths: tuple[int, ...]) -> dict[str, Tensor]:
    """A lean ResNet's ``state`` (stage widths ``have``) with every stage ``want`` wide, computing the same
    function (Net2Net's widening). Channels are tracked as streams: a stage's output (shared by the stem or
    the shortcut, the blocks' last convolutions and the next readers: residual sums need one channel
    map) and each block's inner channels. A stream's new channels copy source channels drawn at random
    (torch's generator); a reader's weights for a source channel are split among its copies in random
    shares that sum to one. Tensors outside the body (the classifier's rows) keep their first dimension."""
    if len(want) != len(have) or any(w < h for w, h in zip(want, have, strict=True)):
        raise ValueError(f"widths {want}: cannot widen {have} (one width per stage, none smaller)")
    maps: dict[str, tuple[Tensor, Tensor]] = {}

    def stream(name: str, old: int, new: int) -> tuple[Tensor, Tensor]:
        if name not in maps:  # (source channel of each new channel, its share of the source channel)
            src = torch.cat([torch.arange(old), torch.randperm(old)[: new - old] if new - old <= old
                             else torch.randint(old, (new - old,))])
            share = torch.rand(new) + 0.5
            share = share / torch.zeros(old).index_add_(0, src, share)[src]
            maps[name] = (src, share)
        return maps[name]

    out = dict(state)

    def conv_bn(conv: str, bn: str, cin: tuple[str, int, int] | None, cout: tuple[str, int, int]) -> None:
        src, _ = stream(*cout)
        w = out[conv][src]
        if cin is not None:
            isrc, ishare = stream(*cin)
            w = w[:, isrc].float() * ishare.view(1, -1, *[1] * (w.ndim - 2))  # shares in float32 (fp16 sources)
        out[conv] = w
        for k in ("weight", "bias", "running_mean", "running_var"):
            out[f"{bn}.{k}"] = out[f"{bn}.{k}"][src]

    def stage(k: int) -> tuple[str, int, int]:
        return (f"S{k}", have[k], want[k])

    conv_bn("body.0.weight", "body.1", None, stage(0))
    for k in range(len(have)):
        cin = stage(max(k - 1, 0))  # the first block reads the stem's channels and adds to them
        blocks = [f"body.{4 + k}"] + [f"extra.{k}.{j}" for j in range(depths[k] - 1)]
        for j, b in enumerate(blocks):
            inner = (f"M{k}.{j}", have[k], want[k])
            conv_bn(f"{b}.main.0.0.weight", f"{b}.main.0.1", cin if j == 0 else stage(k), inner)
            conv_bn(f"{b}.main.2.0.weight", f"{b}.main.2.1", inner, stage(k))
            if f"{b}.short.0.weight" in out:
                conv_bn(f"{b}.short.0.weight", f"{b}.short.1", cin, stage(k))
    src, share = stream(*stage(len(have) - 1))
    out["head.1.weight"] = out["head.1.weight"][:, src].float() * share
    return out
