# The record of an analysis run on machine A (its paths are that machine's): round 11b on the validation writers.
"""Analysis: would thinning thick ink before the shipped model help? (validation writers, stored images)"""
import numpy as np

from hccr import load
from hccr.data.store import Store
from hccr.runtime import resize_batch

rec = load("gb2312")
st = Store(".bench/olhwdb-val")
imgs = np.asarray(st.images)  # ink bright
labels = st.labels
idx = rec.charset.index
lab = np.array([idx[st.charset[int(c)]] for c in labels])

def width(b):  # 2 * area / perimeter of ink (> 96), per image
    ink = b > 96
    pad = np.pad(ink, ((0, 0), (1, 1), (1, 1)))
    inner = pad[:, :-2, 1:-1] & pad[:, 2:, 1:-1] & pad[:, 1:-1, :-2] & pad[:, 1:-1, 2:]
    per = (ink & ~inner).sum((1, 2))
    return 2 * ink.sum((1, 2)) / np.maximum(per, 1)

def erode(b):  # 3x3 min filter on ink-bright images (thins strokes by ~2 px)
    p = np.pad(b, ((0, 0), (1, 1), (1, 1)), constant_values=0)
    out = b.copy()
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            out = np.minimum(out, p[:, dy:dy + b.shape[1], dx:dx + b.shape[2]])
    return out

def cross(b):  # plus-shaped min filter: gentler (~1 px less per side along axes)
    p = np.pad(b, ((0, 0), (1, 1), (1, 1)), constant_values=0)
    out = b.copy()
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        out = np.minimum(out, p[:, dy:dy + b.shape[1], dx:dx + b.shape[2]])
    return np.maximum(out, (b.astype(np.int16) // 2).astype(np.uint8))

def read(x):
    return np.concatenate([rec.probabilities(resize_batch(x[i:i + 512], rec.spec.side(1)), 1).argmax(1) for i in range(0, len(x), 512)])

w = width(imgs)
for name in st.writer_names:
    m = st.writers == st.writer_names.index(name)
    print(name, "median est. width", round(float(np.median(w[m])), 2))
base = read(imgs) == lab
print("base", base.mean().round(4))
for thr in (4.0, 5.0):
    for f, fn in (("cross", cross), ("erode3", erode)):
        x = imgs.copy()
        sel = w > thr
        x[sel] = fn(imgs[sel])
        ok = read(x) == lab
        per = {n: round(float(ok[st.writers == i].mean()), 4) for i, n in enumerate(st.writer_names)}
        print(f"{f} if width>{thr}: {sel.mean():.3f} thinned, top1 {ok.mean():.4f}", per)
