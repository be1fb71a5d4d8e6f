"""Image normalisation shared by conversion, prediction, export and serving.

Every sample is normalised once, the same way everywhere: invert so ink is high, keep the aspect
ratio, pad to a square, resize to ``size``. The paper-specific training-time blur lives here too.
"""

from __future__ import annotations

import math

import numpy as np

# The paper predicts from 256x256 crops of an image padded to 280x280; hccr keeps that ratio at any size.
MULTICROP_RATIO = 280 / 256


def normalize(img: np.ndarray, size: int, margin: float = 0.0) -> np.ndarray:
    """Gray image (dark ink on white, any H×W) -> ``size``×``size`` uint8 with ink high, aspect kept.

    ``margin`` is the fraction of the side left blank around the character (0 = touching the edges).
    """
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
