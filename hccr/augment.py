"""Batched image operations on tensors, on the training device: resize, affine + elastic warps,
the paper's Gaussian blur, the paper's aspect-ignoring stretch. Inputs are (B, 1, H, W) floats."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import HccrError
from .preprocess import gaussian_kernel1d


def resize(x: Tensor, size: int) -> Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < x.shape[-1])


def gaussian_blur(x: Tensor, ksize: int, sigma: float) -> Tensor:
    """OpenCV ``GaussianBlur(ksize, sigma)`` semantics: separable kernel, BORDER_REFLECT_101 edges."""
    if ksize <= 1:
        return x
    k = torch.as_tensor(gaussian_kernel1d(ksize, sigma), dtype=x.dtype, device=x.device)
    c = x.shape[1]
    pad = ksize // 2
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")  # torch's "reflect" is OpenCV's REFLECT_101
    x = F.conv2d(x, k.view(1, 1, 1, ksize).expand(c, 1, 1, ksize), groups=c)
    return F.conv2d(x, k.view(1, 1, ksize, 1).expand(c, 1, ksize, 1), groups=c)


def stretch_to_content(x: Tensor, sizes: Tensor) -> Tensor:
    """Undo the store's aspect-keeping padding: map each sample's content box onto the full square.

    The paper resizes training images to 256x256 without keeping the aspect ratio; ``sizes`` holds
    the original (height, width) of each sample, from which its box inside the square follows.
    """
    h, w = sizes[:, 0].float(), sizes[:, 1].float()
    side = torch.maximum(h, w)
    theta = torch.zeros(len(x), 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = (w / side).to(x.dtype)
    theta[:, 1, 1] = (h / side).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@dataclass
class AugmentConfig:
    rotation: float = 0.0  # degrees, uniform in [-r, r]
    shear: float = 0.0  # uniform in [-s, s]
    scale: tuple[float, float] = (1.0, 1.0)
    aspect: float = 0.0  # log-uniform width/height change in [-a, a]
    translate: float = 0.0  # fraction of the side
    elastic: float = 0.0  # displacement amplitude as a fraction of the side
    elastic_grid: int = 4  # control points per side of the elastic field
    pen: float = 0.0  # probability of a heavier or lighter pen: 3x3 dilation or erosion of the ink
    ink: float = 0.0  # ink gain uniform in [1 - ink, 1]: paler pens and scans
    blur: float = 0.0  # probability of a Gaussian blur, sigma uniform in blur_sigma (px at the input size)
    blur_sigma: tuple[float, float] = (0.4, 1.2)
    noise: float = 0.0  # pixel noise: Gaussian, std uniform in [0, noise] per sample (1 = full ink), clipped
    erase: float = 0.0  # probability of blanking a random rectangle (a missing or unfamiliar part)
    erase_size: tuple[float, float] = (0.15, 0.35)  # its sides, as fractions of the image side

    def validate(self) -> AugmentConfig:
        """Each strength in its range, so that a typo in ``--set augment.X=V`` is said, not trained on."""
        for name in ("rotation", "shear", "aspect", "translate", "elastic", "noise"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):  # NaN and inf too
                raise HccrError(f"augment.{name} must be >= 0 (0 = off), not {getattr(self, name)}")
        for name in ("pen", "ink", "blur", "erase"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise HccrError(f"augment.{name} must be a probability or fraction in [0, 1], not {getattr(self, name)}")
        for name in ("scale", "blur_sigma", "erase_size"):
            value = tuple(getattr(self, name))
            if len(value) != 2:
                raise HccrError(f"augment.{name} must be a range of two values lo,hi, not {','.join(map(str, value))}")
            lo, hi = value
            if not 0.0 < lo <= hi:
                raise HccrError(f"augment.{name} must be a range lo,hi with 0 < lo <= hi, not {lo},{hi}")
        if self.elastic_grid < 2:
            raise HccrError(f"augment.elastic_grid must be at least 2 control points a side, not {self.elastic_grid}")
        return self

    @property
    def photometric(self) -> bool:
        return bool(self.pen or self.ink or self.blur or self.noise)

    @property
    def active(self) -> bool:
        return bool(self.rotation or self.shear or self.scale != (1.0, 1.0) or self.aspect or self.translate
                    or self.elastic)


def random_warp(x: Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> Tensor:
    """One ``grid_sample`` per batch: a random affine map per sample plus a smooth elastic field."""
    if not cfg.active:
        return x
    b, dev, dt = x.shape[0], x.device, torch.float32

    def u(lo: float, hi: float) -> Tensor:
        return torch.rand(b, generator=generator, dtype=dt).to(dev) * (hi - lo) + lo

    rot = u(-cfg.rotation, cfg.rotation) * (math.pi / 180)
    shear = u(-cfg.shear, cfg.shear)
    scale = u(*cfg.scale)
    asp = torch.exp(u(-cfg.aspect, cfg.aspect))
    sx, sy = scale * asp.sqrt(), scale / asp.sqrt()
    cos, sin = torch.cos(rot), torch.sin(rot)
    # Output -> input coordinates (normalised): inverse of rotate . shear . scale.
    a = torch.stack([torch.stack([cos / sx, (-sin + shear * cos) / sx], -1),
                     torch.stack([sin / sy, (cos + shear * sin) / sy], -1)], 1)
    t = torch.stack([u(-cfg.translate, cfg.translate), u(-cfg.translate, cfg.translate)], -1) * 2
    coef = torch.cat([a, t.unsqueeze(-1)], -1)  # the affine map (theta), (b, 2, 3)
    g = cfg.elastic_grid if cfg.elastic else 0
    if g:  # elastic control points, bicubically interpolated: (b, 2, g * g) more coefficients
        noise = torch.randn(b, 2, g, g, generator=generator, dtype=dt).to(dev) * (cfg.elastic * 2)
        coef = torch.cat([coef, noise.reshape(b, 2, g * g)], -1)
    h, w = x.shape[-2:]
    # Affine grid + elastic field in one matrix product (equal to affine_grid + bicubic interpolate,
    # several times faster on CPU: those two were most of the augmentation's time).
    grid = (coef.reshape(b * 2, -1) @ _warp_basis(h, w, g, str(dev))).view(b, 2, h, w).permute(0, 2, 3, 1)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)


@lru_cache(maxsize=16)
def _warp_basis(h: int, w: int, g: int, device: str) -> Tensor:
    """(3 + g*g, h*w): rows x, y, 1 of the pixel centres (``affine_grid``, align_corners=False),
    then the bicubic interpolation (align_corners=True) of each of the g×g control points."""
    ys = (2 * torch.arange(h, dtype=torch.float32) + 1) / h - 1
    xs = (2 * torch.arange(w, dtype=torch.float32) + 1) / w - 1
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    rows = [xx.reshape(1, -1), yy.reshape(1, -1), torch.ones(1, h * w)]
    if g:
        eye = torch.eye(g * g).view(g * g, 1, g, g)
        rows.append(F.interpolate(eye, size=(h, w), mode="bicubic", align_corners=True).view(g * g, h * w))
    return torch.cat(rows).to(device)


def random_pen_ink(x: Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> Tensor:
    """What rendering and scanning vary after the shape: pen width by morphology (grey dilation
    or erosion with a 3x3 window, each with probability ``pen / 2``), ink intensity (a gain), a
    soft focus or a low-resolution scan (a Gaussian blur of random width, with probability
    ``blur``) and sensor or paper grain (Gaussian noise, clipped to [0, 1])."""
    b, dev = x.shape[0], x.device
    if cfg.pen:
        r = torch.rand(b, generator=generator).to(dev).view(b, 1, 1, 1)
        heavy = F.max_pool2d(x, 3, 1, 1)
        light = -F.max_pool2d(-x, 3, 1, 1)
        x = torch.where(r < cfg.pen / 2, heavy, torch.where(r < cfg.pen, light, x))
    if cfg.ink:
        gain = 1 - torch.rand(b, generator=generator).to(dev) * cfg.ink
        x = x * gain.view(b, 1, 1, 1).to(x.dtype)
    if cfg.blur:
        lo, hi = cfg.blur_sigma
        sigma = torch.rand(b, generator=generator).to(dev) * (hi - lo) + lo
        on = torch.rand(b, generator=generator).to(dev) < cfg.blur
        if on.any():  # blur only the chosen samples
            x = x.clone()
            x[on] = batched_blur(x[on], sigma[on], hi)
    if cfg.noise:
        std = torch.rand(b, generator=generator).to(dev) * cfg.noise
        grain = torch.randn(x.shape, generator=generator).to(dev)
        x = (x + grain.to(x.dtype) * std.view(b, 1, 1, 1).to(x.dtype)).clamp_(0, 1)
    return x


def random_erase(x: Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> Tensor:
    """Blank one random rectangle (sides uniform in ``erase_size`` of the image side) in each sample
    with probability ``erase``, so no single part of a character decides the answer."""
    b, _, h, w = x.shape
    dev = x.device
    lo, hi = cfg.erase_size
    u = torch.rand(b, 5, generator=generator).to(dev)
    eh, ew = (lo + (hi - lo) * u[:, 0]) * h, (lo + (hi - lo) * u[:, 1]) * w
    y0, x0 = u[:, 2] * (h - eh), u[:, 3] * (w - ew)
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    inside = ((ys >= y0.view(b, 1, 1)) & (ys < (y0 + eh).view(b, 1, 1))
              & (xs >= x0.view(b, 1, 1)) & (xs < (x0 + ew).view(b, 1, 1)) & (u[:, 4] < cfg.erase).view(b, 1, 1))
    return x.masked_fill(inside.unsqueeze(1), 0.0)


def batched_blur(x: Tensor, sigma: Tensor, max_sigma: float) -> Tensor:
    """A separable Gaussian blur with its own ``sigma`` per sample, in one grouped convolution pair
    (samples as channels); zero padding, as ink-high images have paper 0 at their edges."""
    b, c, h, w = x.shape
    r = max(1, math.ceil(3 * max_sigma))
    t = torch.arange(-r, r + 1, device=x.device, dtype=torch.float32)
    k = torch.exp(-(t.view(1, -1) ** 2) / (2 * sigma.view(-1, 1).float() ** 2))
    k = (k / k.sum(1, keepdim=True)).to(x.dtype).repeat_interleave(c, 0)  # (b*c, 2r+1)
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(y, k.view(b * c, 1, 1, -1), padding=(0, r), groups=b * c)
    y = F.conv2d(y, k.view(b * c, 1, -1, 1), padding=(r, 0), groups=b * c)
    return y.reshape(b, c, h, w)


def to_model_input(x: torch.Tensor, ink: str, channels_last: bool = True) -> torch.Tensor:
    """Ink-high images -> the polarity the network was built for (``InputSpec.ink``); every front end
    (training, PyTorch prediction, distillation teachers, the audit) flips through here."""
    if ink == "dark":
        x = 1.0 - x
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
