"""Analysis (docs/notebook/inputs.md): the several-characters flag on single real scans (casia-hwdb-22 train) and on
pairs made from them. Run from the repository root: python docs/notebook/several_flag.py [PART]."""

import sys
from pathlib import Path

import numpy as np

from hccr.data.images import load_gray, scan_image_folder
from hccr.preprocess import looks_like_several, prepare

ROOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "casia-hwdb-22" / "CASIA-HWDB_Train" / "Train"
PART = float(sys.argv[1]) if len(sys.argv) > 1 else 0.6


def centred(x: np.ndarray, side: int, axis: int) -> np.ndarray:
    """``x`` padded with paper to ``side`` along ``axis``, centred."""
    extra = side - x.shape[axis]
    pad = [(0, 0), (0, 0)]
    pad[axis] = (extra // 2, extra - extra // 2)
    return np.pad(x, pad, constant_values=255)


def pair(a: np.ndarray, b: np.ndarray, vertical: bool, gap: float) -> np.ndarray:
    """Two characters one above the other (or side by side) with a blank gap of ``gap`` times a character."""
    across = 1 if vertical else 0  # the axis both share
    side = max(a.shape[across], b.shape[across])
    blank = np.full((int(gap * side), side) if vertical else (side, int(gap * side)), 255, np.uint8)
    return np.concatenate([centred(a, side, across), blank, centred(b, side, across)], 0 if vertical else 1)


def both_parts_long(img: np.ndarray, threshold: int = 48) -> bool:
    """The tried rule: as looks_like_several, and both parts at least PART of the short side long."""
    h, w = img.shape
    if max(h, w) < 1.6 * min(h, w) or min(h, w) < 4:
        return False
    ink = (img < 255 - threshold).sum(axis=0 if w > h else 1).astype(np.float64)
    if ink.sum() == 0:
        return False
    before = np.cumsum(ink) / ink.sum()
    gaps = (ink == 0) & (before >= 0.25) & (before <= 0.75)
    if gaps.sum() < max(1, round(0.08 * min(h, w))):
        return False
    cut = int(np.flatnonzero(gaps).mean())
    on = np.flatnonzero(ink > 0)
    first, second = on[on < cut], on[on > cut]
    return min(first[-1] - first[0] + 1, second[-1] - second[0] + 1) >= PART * min(h, w)


def shape(img: np.ndarray, threshold: int = 48) -> tuple[float, float]:
    """(long side / short side, blank band in the middle half of the ink / short side)."""
    h, w = img.shape
    ink = (img < 255 - threshold).sum(axis=0 if w > h else 1).astype(np.float64)
    before = np.cumsum(ink) / ink.sum()
    gaps = (ink == 0) & (before >= 0.25) & (before <= 0.75)
    return round(max(h, w) / min(h, w), 2), round(float(gaps.sum() / min(h, w)), 3)


items = scan_image_folder(ROOT)
rng = np.random.default_rng(0)
singles = [prepare(load_gray(items[i].path)) for i in rng.choice(len(items), 3000, replace=False)]
pairs = [prepare(pair(singles[rng.integers(3000)], singles[rng.integers(3000)], rng.random() < 0.5,
                      rng.uniform(0.02, 0.3))) for _ in range(1000)]
for name, rule in (("looks_like_several", looks_like_several), (f"both parts >= {PART}", both_parts_long)):
    print(f"{name}: singles flagged {sum(map(rule, singles))}/3000, pairs flagged {sum(map(rule, pairs))}/1000")
print("flagged singles (aspect, gap):", [shape(s) for s in singles if looks_like_several(s)])
flagged = np.array([shape(p) for p in pairs if looks_like_several(p)])
print("flagged pairs, 5/10/25/50% quantiles: aspect", np.quantile(flagged[:, 0], [0.05, 0.1, 0.25, 0.5]),
      "gap", np.quantile(flagged[:, 1], [0.05, 0.1, 0.25, 0.5]))
