"""Analysis (no choice; docs/notebook/real-writers.md): the shipped 11b and round 16 (prior power 0.25) averaged on the
online validation writers, 6,763-way, one crop. Run from the repository root after `python -m benchmarks shipped`
(which makes .bench/olhwdb-val); the round-16 file is outside the repository."""

import sys

import numpy as np

from hccr.data.charset import gb2312_chars
from hccr.runtime import load_recognizer, predict_inputs
from hccr.utils import use_all_cores

use_all_cores()
store = ".bench/olhwdb-val"
other = sys.argv[1] if len(sys.argv) > 1 else "../hccr-runs/gb2312-r16/B/gb2312-p025.onnx"
a = predict_inputs(load_recognizer("gb2312"), [store], crops=1, progress=False)
b = predict_inputs(load_recognizer(other), [store], crops=1, progress=False)
level1 = set(gb2312_chars(True))
is1 = np.array([c in level1 for c in load_recognizer("gb2312").charset.chars])
for w in (0.0, 0.3, 0.5, 0.7, 1.0):
    p = w * a.probs.astype(np.float32) + (1 - w) * b.probs.astype(np.float32)
    print(f"weight of 11b {w}: top-1 {np.mean(p.argmax(1) == a.labels):.4f}, "
          f"among level 1 alone {np.mean(np.where(is1, p, -1).argmax(1) == a.labels):.4f}")
