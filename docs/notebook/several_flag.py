"""Analysis: the several-characters flag on single real scans (casia-hwdb-22 train) and on pairs made from them."""
import sys, numpy as np
from pathlib import Path
from PIL import Image
from hccr.data.images import load_gray, scan_image_folder
from hccr.preprocess import prepare, looks_like_several
import hccr.preprocess as P

root = Path("/work/shared/data/casia-hwdb-22/CASIA-HWDB_Train/Train")
items = scan_image_folder(root)
rng = np.random.default_rng(0)
pick = rng.choice(len(items), 3000, replace=False)
singles = [prepare(load_gray(items[i].path)) for i in pick]

def pair(a, b, vertical, gap):
    if vertical:
        w = max(a.shape[1], b.shape[1]); g = int(gap * w)
        pad = lambda x: np.pad(x, ((0, 0), ((w - x.shape[1]) // 2, w - x.shape[1] - (w - x.shape[1]) // 2)), constant_values=255)
        return np.concatenate([pad(a), np.full((g, w), 255, np.uint8), pad(b)], 0)
    h = max(a.shape[0], b.shape[0]); g = int(gap * h)
    pad = lambda x: np.pad(x, (((h - x.shape[0]) // 2, h - x.shape[0] - (h - x.shape[0]) // 2), (0, 0)), constant_values=255)
    return np.concatenate([pad(a), np.full((h, g), 255, np.uint8), pad(b)], 1)

pairs = [prepare(pair(singles[rng.integers(3000)], singles[rng.integers(3000)], rng.random() < 0.5, rng.uniform(0.02, 0.3))) for _ in range(1000)]

def rule_new(img, threshold=48, part=float(sys.argv[1]) if len(sys.argv) > 1 else 0.6):
    h, w = img.shape
    if max(h, w) < 1.6 * min(h, w) or min(h, w) < 4:
        return False
    ink = (img < 255 - threshold).sum(axis=0 if w > h else 1).astype(np.float64)
    total = ink.sum()
    if total == 0:
        return False
    before = np.cumsum(ink) / total
    gaps = (ink == 0) & (before >= 0.25) & (before <= 0.75)
    if gaps.sum() < max(1, round(0.08 * min(h, w))):
        return False
    cut = int(np.flatnonzero(gaps).mean())
    on = np.flatnonzero(ink > 0)
    a = on[on < cut]; b = on[on > cut]
    ext = min(a[-1] - a[0] + 1, b[-1] - b[0] + 1)
    return ext >= part * min(h, w)

for name, f in (("old", looks_like_several), ("new", rule_new)):
    fs = sum(f(s) for s in singles); tp = sum(f(p) for p in pairs)
    print(f"{name}: singles flagged {fs}/3000, pairs flagged {tp}/1000")

def stats(img, threshold=48):
    h, w = img.shape
    ink = (img < 255 - threshold).sum(axis=0 if w > h else 1).astype(np.float64)
    before = np.cumsum(ink) / ink.sum()
    gaps = (ink == 0) & (before >= 0.25) & (before <= 0.75)
    return round(max(h, w) / min(h, w), 2), round(gaps.sum() / min(h, w), 3)
print("flagged singles", [stats(s) for s in singles if looks_like_several(s)])
fl = [stats(p) for p in pairs if looks_like_several(p)]
a = np.array(fl); print("flagged pairs aspect quantiles", np.quantile(a[:, 0], [0.05, 0.1, 0.25, 0.5]), "gap", np.quantile(a[:, 1], [0.05, 0.1, 0.25, 0.5]))
