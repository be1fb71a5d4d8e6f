"""Rasterise pen trajectories into offline bitmaps (anti-aliased by supersampling)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def crop_to_ink(img: np.ndarray, background: int = 255, threshold: int = 8) -> np.ndarray:
    """Tight crop to the pixels that differ from ``background`` by more than ``threshold``."""
    mask = np.abs(img.astype(np.int16) - background) > threshold
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if len(rows) == 0:
        return img[:1, :1]
    return img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def draw_polylines(strokes: Sequence[np.ndarray], widths: Sequence[float | np.ndarray], shape: tuple[int, int],
                   ink: Sequence[int] | int = 0) -> np.ndarray:
    """Draw strokes (arrays of (x, y) in pixel units) on a white canvas with round joints and caps.

    ``widths[i]`` is a pen width for the whole stroke or one per segment (variable pressure).
    """
    from PIL import Image, ImageDraw

    h, w = shape
    canvas = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(canvas)
    inks = [ink] * len(strokes) if isinstance(ink, int) else list(ink)
    for pts, width, value in zip(strokes, widths, inks, strict=True):
        pts = np.asarray(pts, dtype=np.float64)
        if len(pts) == 0:
            continue
        per_segment = np.ndim(width) > 0
        if len(pts) == 1 or not per_segment:
            wd = float(np.mean(width)) if per_segment else float(width)
            _stroke(draw, pts, wd, int(value))
            continue
        wseg = np.asarray(width, dtype=np.float64)
        # Runs of similar width are drawn as one polyline (few C calls); caps only at the stroke's ends.
        q = np.maximum(np.rint(wseg), 1)
        cuts = np.flatnonzero(np.diff(q)) + 1
        bounds = [0, *cuts.tolist(), len(q)]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            draw.line(pts[a : b + 1].reshape(-1).tolist(), fill=int(value), width=int(q[a]))
        for (x, y), wd in ((pts[0], q[0]), (pts[-1], q[-1])):
            r = wd / 2
            draw.ellipse([x - r, y - r, x + r, y + r], fill=int(value))
    return np.asarray(canvas, dtype=np.uint8)


def _stroke(draw, pts: np.ndarray, width: float, value: int) -> None:
    width = max(width, 1.0)
    r = width / 2
    flat = pts.reshape(-1).tolist()
    if len(pts) > 1:
        draw.line(flat, fill=value, width=max(1, int(round(width))), joint="curve")
    for x, y in (pts[0], pts[-1]):  # round caps
        draw.ellipse([x - r, y - r, x + r, y + r], fill=value)


def render_trajectory(strokes: Sequence[np.ndarray], size: int = 64, stroke_width: float = 2.0,
                      supersample: int = 4) -> np.ndarray:
    """Online strokes (any units, y down) -> a tightly cropped offline bitmap, ink dark on 255.

    The longer side of the character becomes ``size`` pixels; ``stroke_width`` is in output pixels.
    """
    from PIL import Image

    strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes if len(s)]
    if not strokes:
        raise ValueError("no points to render")
    allpts = np.concatenate(strokes)
    lo, hi = allpts.min(0), allpts.max(0)
    extent = max(float((hi - lo).max()), 1e-6)
    k = supersample
    inner = (size - stroke_width) * k
    scale = inner / extent
    pad = stroke_width * k
    h = int(np.ceil((hi[1] - lo[1]) * scale + 2 * pad)) + 1
    w = int(np.ceil((hi[0] - lo[0]) * scale + 2 * pad)) + 1
    scaled = [(s - lo) * scale + pad for s in strokes]
    big = draw_polylines(scaled, [stroke_width * k] * len(scaled), (h, w))
    small = Image.fromarray(big).resize((max(1, round(w / k)), max(1, round(h / k))), Image.Resampling.BOX)
    return crop_to_ink(np.asarray(small, dtype=np.uint8))
