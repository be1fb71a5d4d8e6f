import sys, numpy as np
sys.path.insert(0, "benchmarks")
from pathlib import Path
from common import ARCHIVE, OUT, olhwdb_writers
from hccr.data.pot import read_pot
found = olhwdb_writers(ARCHIVE, OUT)
train, val = found
def stats(path):
    r = read_pot(path)
    segs, npts = [], []
    for s in r.samples[:400]:
        pts = np.concatenate(s.strokes); ext = max(np.ptp(pts[:,0]), np.ptp(pts[:,1]), 1)
        for st in s.strokes:
            if len(st) > 1:
                segs.append(np.median(np.hypot(*np.diff(st, axis=0).T)) / ext)
            npts.append(len(st))
    return r.writer, np.median(segs)*64, np.median(npts)
for p in val: print("val", *stats(p))
for p in train[::20]: print("train", *stats(p))
