"""Human-readable views of stores: text summaries and labelled sample grids."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def store_summary(store) -> str:
    m = store.manifest
    counts = np.bincount(store.labels, minlength=len(store.charset))
    present = counts[counts > 0]
    sizes = store.sizes.astype(np.int64)
    lines = [
        f"store      {store.path}",
        f"samples    {len(store)}  (train {m['train']}, val {m['val']})",
        f"classes    {len(store.charset)}  ({m['classes_present']} with samples; "
        f"per class min {present.min() if len(present) else 0}, median {int(np.median(present)) if len(present) else 0}, "
        f"max {present.max() if len(present) else 0})",
        f"writers    {m['writers'] or 'unknown'}",
        f"image      {store.size}x{store.size} uint8, ink high, aspect kept (margin {m['normalization']['margin']})",
        f"original   height {sizes[:, 0].min()}-{sizes[:, 0].max()} (mean {sizes[:, 0].mean():.0f}), "
        f"width {sizes[:, 1].min()}-{sizes[:, 1].max()} (mean {sizes[:, 1].mean():.0f})",
        f"characters {''.join(store.charset[:40])}{' ...' if len(store.charset) > 40 else ''}",
        f"sources    {', '.join(m['sources'][:3])}{' ...' if len(m['sources']) > 3 else ''}",
    ]
    if m["skipped"]:
        lines.append("skipped    " + ", ".join(f"{k}: {v}" for k, v in m["skipped"].items()))
    return "\n".join(lines)


def glyph(ch: str, size: int) -> np.ndarray | None:
    """A small dark-on-white rendering of ``ch`` from the stroke asset (None if not covered)."""
    from .data.render import render_trajectory
    from .data.strokes import char_strokes, has_strokes

    if not has_strokes(ch):
        return None
    return render_trajectory(char_strokes(ch), size=size, stroke_width=max(1.2, size / 14))


def label_tile(img_ink_high: np.ndarray, ch: str, tile: int, caption: str = "", predicted: str | None = None
               ) -> np.ndarray:
    """A sample (ink high) drawn dark on white with its label glyph underneath, optionally followed
    by ``>`` and the predicted character's glyph, then a short caption."""
    from PIL import Image, ImageDraw

    lab_h = max(14, tile // 3)
    canvas = Image.new("L", (tile, tile + lab_h), 255)
    sample = Image.fromarray(255 - np.asarray(img_ink_high, np.uint8)).resize((tile - 4, tile - 4))
    canvas.paste(sample, (2, 2))
    draw = ImageDraw.Draw(canvas)
    x = 2
    for k, c in enumerate([ch] if predicted is None else [ch, predicted]):
        if k:
            draw.text((x, tile + 2), ">", fill=90)
            x += 8
        g = glyph(c, lab_h - 4)
        if g is None:
            draw.text((x, tile + 2), f"U+{ord(c):04X}", fill=0)
            x += 44
        else:
            canvas.paste(Image.fromarray(g), (x, tile + 2))
            x += g.shape[1] + 3
    if caption:
        draw.text((x + 2, tile + 2), caption, fill=90)
    return np.asarray(canvas)


def tile_grid(tiles: list[np.ndarray], cols: int) -> np.ndarray:
    h, w = tiles[0].shape
    rows = (len(tiles) + cols - 1) // cols
    grid = np.full((rows * (h + 2), cols * (w + 2)), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        grid[r * (h + 2) : r * (h + 2) + h, c * (w + 2) : c * (w + 2) + w] = t
    return grid


def save_png(arr: np.ndarray, path: str | os.PathLike) -> None:
    from PIL import Image

    from .utils import atomic_path

    path = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}.get(
        path.suffix.lower(), "PNG")  # the format the name says
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format=fmt)


def sample_grid(store, out: str | os.PathLike, n: int = 64, split: str = "all", seed: int = 0,
                tile: int = 64) -> None:
    idx = store.indices(split)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(idx, size=min(n, len(idx)), replace=False))
    tiles = [label_tile(store.images[i], store.charset[int(store.labels[i])], tile) for i in pick]
    save_png(tile_grid(tiles, cols=int(np.ceil(np.sqrt(len(tiles))))), out)
