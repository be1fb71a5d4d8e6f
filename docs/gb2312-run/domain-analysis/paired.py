# The record of an analysis run on machine C (2026-12-05): the protocol's baseline and its domain_loss=0.5 rerun
# (the critic on its own seed) read the same validation samples; per scoring, A and B apart, the exact McNemar test.
# The twenty-third session added OTHER (default the domain_loss rerun), e.g. +jit0.04: each run's prior from its own store.
"""Usage: python docs/gb2312-run/domain-analysis/paired.py WORK [OTHER]"""

import json
import re
import sys
from pathlib import Path

import numpy as np

from hccr.data.store import Store
from hccr.evaluate import paired_test
from hccr.predict import Recognizer
from hccr.runtime import predict_inputs

work = Path(sys.argv[1])
base = "components&builtin+mix+40wA"
other = base + "+" + (sys.argv[2] if len(sys.argv) > 2 else "dann0.5").lstrip("+")
val = work / "real-val"
b_chars = set(json.loads((work / "split.json").read_text())["B"])
counts = None
right = {}
for name in (base, other):
    train = work / f"train-{re.sub(r'[+]dann[^+]*$', '', name)}"  # the domain loss trains on its baseline's store
    rec = Recognizer.from_checkpoint(work / f"run-{name}" / "last.json")
    pred = predict_inputs(rec, [str(val)], crops=1, progress=False)
    in_b = np.isin(pred.labels, [rec.charset.index[c] for c in b_chars])
    counts = np.bincount(Store(train).labels, minlength=len(rec.charset))
    raw = np.log(pred.probs + 1e-30)
    for power in (0.0, 0.5, 1.0):
        ok = (raw - power * np.log(np.maximum(counts / counts.sum(), 1e-12))).argmax(1) == pred.labels
        right[name, power] = ok, in_b
for power in (0.0, 0.5, 1.0):
    (a, in_b), (b, _) = right[base, power], right[other, power]
    for part, m in (("A", ~in_b), ("B", in_b)):
        t = paired_test(a[m], b[m])
        print(f"prior power {power}: {part} baseline {a[m].mean():.4f}, {other[len(base):]} {b[m].mean():.4f}; read right by "
              f"the baseline alone {t['only_a']}, by {other[len(base):]} alone {t['only_b']}, McNemar p = {t['p']}", flush=True)
