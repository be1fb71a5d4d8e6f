# The record of an analysis run on machine C (2026-12-05): the protocol's baseline and its domain_loss=0.5 rerun
# (the critic on its own seed) read the same validation samples; per scoring, A and B apart, the exact McNemar test.
"""Usage: python docs/gb2312-run/domain-analysis/paired.py WORK"""

import json
import sys
from pathlib import Path

import numpy as np

from hccr.data.store import Store
from hccr.evaluate import paired_test
from hccr.predict import Recognizer
from hccr.runtime import predict_inputs

work = Path(sys.argv[1])
train, val = work / "train-components&builtin+mix+40wA", work / "real-val"
b_chars = set(json.loads((work / "split.json").read_text())["B"])
counts = None
right = {}
for name in ("components&builtin+mix+40wA", "components&builtin+mix+40wA+dann0.5"):
    rec = Recognizer.from_checkpoint(work / f"run-{name}" / "last.json")
    pred = predict_inputs(rec, [str(val)], crops=1, progress=False)
    in_b = np.isin(pred.labels, [rec.charset.index[c] for c in b_chars])
    counts = np.bincount(Store(train).labels, minlength=len(rec.charset))
    raw = np.log(pred.probs + 1e-30)
    for power in (0.0, 0.5, 1.0):
        ok = (raw - power * np.log(np.maximum(counts / counts.sum(), 1e-12))).argmax(1) == pred.labels
        right[name, power] = ok, in_b
for power in (0.0, 0.5, 1.0):
    (a, in_b), (b, _) = right["components&builtin+mix+40wA", power], right["components&builtin+mix+40wA+dann0.5", power]
    for part, m in (("A", ~in_b), ("B", in_b)):
        t = paired_test(a[m], b[m])
        print(f"prior power {power}: {part} baseline {a[m].mean():.4f}, domain_loss 0.5 {b[m].mean():.4f}; read right by "
              f"the baseline alone {t['only_a']}, by domain_loss alone {t['only_b']}, McNemar p = {t['p']}", flush=True)
