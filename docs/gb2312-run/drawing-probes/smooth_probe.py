"""Probe: 11b on the validation writers, own pens, trajectories drawn as they are vs smoothed (centripetal
Catmull-Rom through the sampled points, each segment cut into M pieces). Analysis on validation writers only."""
import sys, time, numpy as np
sys.path.insert(0, "benchmarks")
from common import ARCHIVE, OUT, olhwdb_writers
from hccr.data.pot import read_pot
from hccr.data.render import render_framed
from hccr.data.sources import pot_pen
from hccr.runtime import load_recognizer, resize_batch

def catmull(p, m, alpha=0.5):
    if len(p) < 3 or m <= 1:
        return p
    q = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])  # ghost ends
    P0, P1, P2, P3 = q[:-3], q[1:-2], q[2:-1], q[3:]
    def dt(a, b): return np.maximum(np.hypot(*(b - a).T) ** alpha, 1e-6)[:, None]
    t0 = np.zeros((len(P1), 1)); t1 = t0 + dt(P0, P1); t2 = t1 + dt(P1, P2); t3 = t2 + dt(P2, P3)
    u = np.arange(m) / m
    t = t1 + (t2 - t1) * u[None, :]  # (S, m)
    t = t[..., None]
    t0, t1, t2, t3 = (x[:, None, :] for x in (t0, t1, t2, t3))
    P0, P1, P2, P3 = (x[:, None, :] for x in (P0, P1, P2, P3))
    A1 = (t1 - t) / (t1 - t0) * P0 + (t - t0) / (t1 - t0) * P1
    A2 = (t2 - t) / (t2 - t1) * P1 + (t - t1) / (t2 - t1) * P2
    A3 = (t3 - t) / (t3 - t2) * P2 + (t - t2) / (t3 - t2) * P3
    B1 = (t2 - t) / (t2 - t0) * A1 + (t - t0) / (t2 - t0) * A2
    B2 = (t3 - t) / (t3 - t1) * A2 + (t - t1) / (t3 - t1) * A3
    C = (t2 - t) / (t2 - t1) * B1 + (t - t1) / (t2 - t1) * B2
    return np.concatenate([C.reshape(-1, 2), p[-1:]])

def dedup(s):
    s = np.asarray(s, np.float64)
    if len(s) < 2: return s
    keep = np.concatenate([[True], np.hypot(*np.diff(s, axis=0).T) > 1e-9])
    return s[keep]

rec = load_recognizer(sys.argv[1] if len(sys.argv) > 1 else "gb2312")
ms = [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "1,4").split(",")]
pen = pot_pen()
_, val = olhwdb_writers(ARCHIVE, OUT)
tot = {m: 0 for m in ms}; n = 0; per = {}
t0 = time.time()
for path in val:
    r = read_pot(path)
    drawn = pen.draw([len(s.strokes) for s in r.samples], r.writer)
    labels = np.array([rec.charset.index[s.char] for s in r.samples])
    row = {}
    for m in ms:
        imgs = np.stack([255 - render_framed([catmull(dedup(st), m) for st in s.strokes], 64, pen, d)
                         for s, d in zip(r.samples, drawn, strict=True)])
        top = np.concatenate([rec.probabilities(resize_batch(imgs[i:i + 512], rec.spec.side(1)), 1).argmax(1)
                              for i in range(0, len(imgs), 512)])
        row[m] = int((top == labels).sum()); tot[m] += row[m]
    n += len(labels)
    print(r.writer, len(labels), row, f"{time.time()-t0:.0f}s", flush=True)
print("all", n, {m: round(tot[m] / n * 100, 2) for m in ms})
