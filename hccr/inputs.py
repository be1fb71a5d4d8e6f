"""What users have -> the gray image every recognizer reads (uint8, dark ink on light paper).

Accepted: a path, raw file bytes (``bytes``, ``bytearray`` or ``memoryview``), a Pillow image, or a numpy array
H×W, H×W×1, H×W×2 (gray + alpha), H×W×3 (RGB; pass ``bgr=True`` for OpenCV's order) or H×W×4 (RGBA: strokes of
one colour on a transparent canvas read as ink, other images composited on white), uint8 or float in [0, 1]; a
list of them, or an N×H×W array of gray images.
Light ink on a dark background is detected from the border and inverted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .errors import HccrError
from .preprocess import fix_polarity


def as_gray(image, bgr: bool = False, name: str = "image") -> np.ndarray:
    """One input -> uint8 H×W, dark ink on light paper."""
    from PIL import Image

    from .data.images import MAX_PIXELS, character_image, float_levels, load_gray, on_paper, to_gray

    if isinstance(image, Image.Image):
        h, w = image.height, image.width
    else:
        h, w = image.shape[:2] if isinstance(image, np.ndarray) and image.ndim >= 2 else (0, 0)
    if h * w > MAX_PIXELS:  # refused before any copy is made, as image files are before decoding
        raise HccrError(f"{name}: {w}×{h} pixels is too large for one character image "
                        f"(limit {MAX_PIXELS // 1_000_000} M pixels); crop or downscale it")
    if isinstance(image, (str, os.PathLike)):
        return character_image(fix_polarity(load_gray(image)), str(image))
    if isinstance(image, (bytes, bytearray, memoryview)):  # a file's bytes, as web frameworks hand them over
        return character_image(fix_polarity(load_gray(bytes(image))), name)
    if isinstance(image, Image.Image):
        return character_image(fix_polarity(to_gray(image)), name)
    if not isinstance(image, np.ndarray):
        raise HccrError(f"{name}: expected a path, bytes, a PIL image or a numpy array, got {type(image).__name__}")
    a = image
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (2, 3, 4)) or 0 in a.shape:
        raise HccrError(f"{name}: expected an H×W, H×W×1, H×W×2 (gray + alpha), H×W×3 or H×W×4 array, got shape "
                        f"{a.shape}")
    if a.dtype == np.uint8:
        a = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.floating) or a.dtype == bool:
        a = a.astype(np.float32)
        if np.isnan(a).all():
            raise HccrError(f"{name}: every pixel is NaN (no image)")
        a = float_levels(a)
    elif np.issubdtype(a.dtype, np.integer):
        hi = float(a.max())
        a = a.astype(np.float32) * (255.0 / hi if hi > 255 else 1.0)
    else:
        raise HccrError(f"{name}: unsupported array dtype {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 2:  # gray + alpha (Pillow's "LA")
        a = on_paper(a[:, :, 0], a[:, :, 1] / 255)
    elif a.ndim == 3:
        rgb = a[:, :, :3][:, :, ::-1] if bgr else a[:, :, :3]
        gray = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
        a = on_paper(gray, a[:, :, 3] / 255) if a.shape[2] == 4 else gray
    # a blank or degenerate image is refused, as every other way in refuses it, never answered for nothing
    return character_image(fix_polarity(np.clip(np.nan_to_num(a, nan=255.0) + 0.5, 0, 255).astype(np.uint8)), name)


def as_gray_list(images, bgr: bool = False) -> list[np.ndarray]:
    """A single input or a sequence of inputs -> a list of gray images."""
    if isinstance(images, np.ndarray):
        # One image: H×W, or H×W×C with C in 1..4 (gray + alpha, colour: not a stack of rows).
        if images.ndim == 2 or (images.ndim == 3 and images.shape[2] in (1, 2, 3, 4)):
            return [as_gray(images, bgr)]
        if images.ndim == 3 and min(images.shape[1:]) >= 8:  # N×H×W: a batch of gray images
            return [as_gray(im, bgr, f"image {i}") for i, im in enumerate(images)]
        raise HccrError(f"an array of shape {images.shape} is neither an image (H×W, or H×W×C with 1-4 channels: gray, "
                        "gray + alpha, RGB, RGBA) nor a batch of gray images (N×H×W)")
    if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview)) or not isinstance(images, Sequence):
        return [as_gray(images, bgr)]
    return [as_gray(im, bgr, f"image {i}") for i, im in enumerate(images)]
