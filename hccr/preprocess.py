"""Image normalisation shared by conversion, prediction, export and serving.

Every sample is normalised once, the same way everywhere: invert so ink is high, keep the aspect
ratio, pad to a square, resize to ``size``. The paper-specific training-time blur lives here too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

# The paper predicts from 256x256 crops of an image padded to 280x280; hccr keeps that ratio at any size.
MULTICROP_RATIO = 280 / 256
MAX_SIDE = 1024  # larger inputs are shrunk (area average) before cleaning: a character needs far less


def quantile(img: np.ndarray, q: float) -> float:
    """The ``q`` quantile of a uint8 image's pixels from its histogram: one pass, no sort (the
    percentiles of every image were a third of a conversion's time)."""
    if img.dtype != np.uint8:
        return float(np.quantile(img, q))
    cum = np.bincount(img.ravel(), minlength=256).cumsum()
    return float(np.searchsorted(cum, q * (cum[-1] - 1), side="right"))


def flatten_paper(img: np.ndarray) -> np.ndarray:
    """Paper that is not white (gray, lit unevenly, photographed) -> white, ink scaled with it.

    The paper's brightness is estimated locally (a morphological closing over about a quarter of
    the image, smoothed): strokes are thinner than the window, so what remains is paper. Dividing by it removes lighting
    gradients and gray paper and leaves the ink's darkness relative to its paper; the median
    (paper) is then set to white, which removes the gray fog that grain leaves. Clean pages
    (the brightest 10% already white) pass unchanged, at the cost of one percentile."""
    from PIL import Image, ImageFilter

    paper = quantile(img, 0.9)
    if paper >= 250 or min(img.shape) < 8:
        return img
    h, w = img.shape
    scale = 64 / max(h, w)
    small = Image.fromarray(img).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX)
    k = 2 * (max(small.size) // 8) + 1
    # A closing (max then min filter) removes the ink and keeps the paper's own gradient.
    bg = small.filter(ImageFilter.MaxFilter(k)).filter(ImageFilter.MinFilter(k)).filter(ImageFilter.GaussianBlur(k / 4))
    bg = np.asarray(bg.resize((w, h), Image.Resampling.BILINEAR), np.float32)
    bg = np.maximum(bg, 0.6 * paper)  # inside a large blot of ink the filter may not reach paper
    out = img.astype(np.float32) * (255.0 / np.maximum(bg, 1.0))
    # The closing rests on the paper's brightest grain, so grainy paper comes out gray (a fog that
    # cost 8 pt on noisy photographs). Paper is most of a character's box, so the median is paper:
    # scale it back to white, unless ink dominates (median darker than 200).
    fog = float(np.median(out))
    if 200 <= fog < 255:
        out *= 255.0 / fog
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def crop_ink(img: np.ndarray, threshold: int = 20, noisy_threshold: int = 48, noisy: bool = False) -> np.ndarray:
    """Crop a page (white paper, dark ink) to the bounding box of its ink.

    On clean white paper, ink is anything darker than ``255 - threshold`` (the synthetic writers'
    own crop, so their images pass unchanged). On paper that was not white or holds little ink,
    ink must be darker than ``255 - noisy_threshold`` after a 3×3 median, so specks and grain do not
    stretch the box; the crop itself keeps the unfiltered pixels. ``noisy=True`` says the paper
    was not white before :func:`flatten_paper` made it so."""
    from PIL import Image, ImageFilter

    if min(img.shape) < 3:
        return img
    ink = img < 255 - threshold
    if ink.all() or not ink.any():
        return img
    if noisy or quantile(img, 0.9) < 250 or ink.mean() < 0.02:  # noisy, or little ink: ignore specks
        ink = np.asarray(Image.fromarray(img).filter(ImageFilter.MedianFilter(3))) < 255 - noisy_threshold
        if not ink.any():
            return img
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    return img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def fix_polarity(img: np.ndarray) -> np.ndarray:
    """Invert light-on-dark images: the border (paper) should be the light side."""
    if min(img.shape) < 3:
        return img
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    return (255 - img) if quantile(border, 0.5) < 128 else img


def clean(img: np.ndarray) -> np.ndarray:
    """What every image goes through before size normalisation, in conversion, training and
    prediction alike: light-on-dark inverted, paper flattened to white, then cropped to the ink."""
    img = fix_polarity(img)
    flat = flatten_paper(img)
    return crop_ink(flat, noisy=flat is not img)


def looks_like_several(img: np.ndarray, threshold: int = 48) -> bool:
    """Whether a cleaned image (white paper, cropped to the ink) probably holds several characters
    side by side or one above the other (a word, a line): at least 1.6 times longer than wide, and
    cut by a blank gap with at least a quarter of the ink on either side. One wide character
    (一, 二) has no such gap; one with gaps between its strokes (川, 八) is not that elongated."""
    h, w = img.shape
    if max(h, w) < 1.6 * min(h, w) or min(h, w) < 4:
        return False
    ink = (img < 255 - threshold).sum(axis=0 if w > h else 1).astype(np.float64)
    total = ink.sum()
    if total == 0:
        return False
    before = np.cumsum(ink) / total
    blank = ink == 0
    # A blank line at position i with at least a quarter of the ink before and after it.
    return bool((blank & (before >= 0.25) & (before <= 0.75)).sum() >= max(1, round(0.08 * min(h, w))))


def prepare(img: np.ndarray, cleanup: bool = True) -> np.ndarray:
    """A gray image as it arrives (dark ink on white, any H×W) -> the image :func:`frame` squares:
    shrunk first when larger than ``MAX_SIDE`` (a photo or a page scan: cleaning 16 M pixels is
    wasted work), then, with ``cleanup`` (the default everywhere), :func:`clean`."""
    from PIL import Image

    if max(img.shape) > MAX_SIDE:
        scale = MAX_SIDE / max(img.shape)
        img = np.asarray(Image.fromarray(img).resize((max(1, round(img.shape[1] * scale)),
                                                      max(1, round(img.shape[0] * scale))), Image.Resampling.BOX))
    return clean(img) if cleanup else img


def frame(img: np.ndarray, size: int, margin: float = 0.0) -> np.ndarray:
    """A prepared image (dark ink on white) -> ``size``×``size`` uint8 with ink high, aspect kept,
    centred on a square with ``margin`` (the fraction of the side left blank) around it."""
    from PIL import Image

    h, w = img.shape
    side = max(h, w)
    if margin:
        side = int(math.ceil(side / (1.0 - 2 * margin)))
    sq = np.zeros((side, side), dtype=np.uint8)
    y0, x0 = (side - h) // 2, (side - w) // 2
    np.subtract(255, img, out=sq[y0 : y0 + h, x0 : x0 + w], casting="unsafe")
    if side == size:
        return sq
    return np.asarray(Image.fromarray(sq).resize((size, size), Image.Resampling.BILINEAR))


def normalize(img: np.ndarray, size: int, margin: float = 0.0, cleanup: bool = True) -> np.ndarray:
    """Gray image (dark ink on white, any H×W) -> ``size``×``size`` uint8 with ink high, aspect kept:
    :func:`prepare` then :func:`frame`."""
    return frame(prepare(img, cleanup), size, margin)


def crop_boxes(big: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners of the five crops: centre, then top-left, top-right, bottom-left, bottom-right."""
    d = big - size
    c = d // 2
    return [(c, c), (0, 0), (0, d), (d, 0), (d, d)]


@dataclass(frozen=True)
class InputSpec:
    """What a model expects of its input, in one place, for every front end.

    Conversion, training, prediction (PyTorch and ONNX Runtime), export and serving read the
    same four facts from here rather than from their own copies: the model's input ``size``,
    the ``ink`` polarity the network sees (``"high"``: ink 1, paper 0; ``"dark"``: the reverse),
    the ``margin`` (fraction of the side left blank around the character, from the store it was
    trained on) and the default number of ``crops`` (1, or the paper's 5: centre and corners of
    the image normalised to ``size * 280 / 256``). ``cleanup`` flattens the paper and crops to the
    ink first (:func:`clean`); turning it off feeds images as they are.

    It is stored in a checkpoint's ``preprocessing`` (:meth:`to_meta`) and read back with
    :meth:`from_meta`, so a model never sees at prediction a framing it was not trained on.
    """

    size: int
    ink: str = "high"
    margin: float = 0.0
    crops: int = 5
    cleanup: bool = True

    def __post_init__(self) -> None:
        from .errors import HccrError

        if not 8 <= int(self.size) <= 2048:
            raise HccrError(f"input size must be 8-2048 px, not {self.size}")
        if self.ink not in ("high", "dark"):
            raise HccrError(f"ink must be 'high' or 'dark', not {self.ink!r}")
        if not 0.0 <= self.margin < 0.5:
            raise HccrError(f"margin must be in [0, 0.5), not {self.margin}")
        if self.crops not in (1, 5):
            raise HccrError(f"--crops must be 1 or 5, got {self.crops}")

    @classmethod
    def from_meta(cls, pre: dict, crops: int | None = None) -> InputSpec:
        """From a checkpoint's or an ONNX file's ``preprocessing`` (older files lack some keys)."""
        return cls(int(pre["image_size"]), pre.get("ink", "high"), float(pre.get("margin", 0.0)),
                   int(crops if crops is not None else pre.get("crops", 5)))

    def to_meta(self) -> dict:
        return {"image_size": self.size, "ink": self.ink, "margin": self.margin, "crops": self.crops,
                "multicrop_ratio": MULTICROP_RATIO,
                "normalization": "flatten the paper, crop to the ink, invert (ink high), keep aspect, pad to a "
                                 "centred square with the margin, resize"}

    def with_(self, **changes) -> InputSpec:
        return replace(self, **changes)

    def side(self, crops: int | None = None) -> int:
        """The side images are normalised to: ``size * 280 / 256`` for five crops, ``size`` for one."""
        crops = self.crops if crops is None else crops
        if crops not in (1, 5):
            from .errors import HccrError

            raise HccrError(f"--crops must be 1 or 5, got {crops}")
        return round(self.size * MULTICROP_RATIO) if crops == 5 else self.size

    def boxes(self, crops: int | None = None) -> list[tuple[int, int]]:
        """Top-left corners of the ``size``×``size`` crops inside an image of :meth:`side`."""
        crops = self.crops if crops is None else crops
        return crop_boxes(self.side(crops), self.size) if crops == 5 else [(0, 0)]

    def normalize(self, img: np.ndarray, side: int | None = None) -> np.ndarray:
        """One gray image (dark ink on white) -> ``side``×``side`` uint8, ink high (default: :meth:`side`)."""
        return normalize(np.asarray(img, np.uint8), side or self.side(), self.margin, self.cleanup)

    def batch(self, images: list[np.ndarray], crops: int | None = None) -> np.ndarray:
        """Gray images -> (B, 1, s, s) float32 in [0, 1], ink high, at the side the crops need."""
        return self.batch_checked(images, crops)[0]

    def batch_checked(self, images: list[np.ndarray], crops: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`batch`, plus for each image whether it looks like several characters
        (:func:`looks_like_several`), judged on the same cleaned image: each image is cleaned once."""
        s = self.side(crops)
        prepared = [prepare(np.asarray(im, np.uint8), self.cleanup) for im in images]
        several = np.array([looks_like_several(p) for p in prepared], bool)
        x = np.stack([frame(p, s, self.margin) for p in prepared]) if prepared else np.zeros((0, s, s), np.uint8)
        return x[:, None].astype(np.float32) / 255, several


def gaussian_kernel1d(ksize: int, sigma: float) -> np.ndarray:
    """OpenCV's ``getGaussianKernel`` for sigma > 0: exp(-(i - (k-1)/2)^2 / (2 sigma^2)), normalised."""
    x = np.arange(ksize, dtype=np.float64) - (ksize - 1) / 2
    k = np.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def scaled_blur(ksize: int, sigma: float, from_size: int, to_size: int) -> tuple[int, float]:
    """The paper's blur (defined at ``from_size`` px) with the same spread in character units at ``to_size``.

    The standard deviation of the paper's (nearly flat) kernel is matched; the kernel is then a
    proper Gaussian of that deviation, ``3 sigma`` wide, at least 3 taps.
    """
    k = gaussian_kernel1d(ksize, sigma)
    x = np.arange(ksize) - (ksize - 1) / 2
    std = float(np.sqrt((k * x**2).sum())) * to_size / from_size
    if to_size == from_size:
        return ksize, sigma
    taps = max(3, 2 * int(math.ceil(3 * std)) + 1)
    return taps, std
