# The record of an analysis run on machine C (its paths are that machine's): how well a fresh critic tells
# real from synthetic samples in a protocol network's pooled features.
"""Usage: python docs/gb2312-run/domain-analysis/critic.py WORK RUN_NAME [RUN_NAME ...]

For each protocol run: the pooled features of up to 20 real and 20 synthetic training samples of each of A's
700 characters (the characters both kinds wrote); a logistic regression (a fresh critic, fitted on the samples
of half of the characters, read on the other half's) tells real from synthetic. Chance: 0.5 (the sample is
balanced per character)."""

import sys
from pathlib import Path

import numpy as np
import torch

from hccr.checkpoint import load_checkpoint
from hccr.data.store import Store
from hccr.domain import REAL, SYNTHETIC, sample_domains
from hccr.headfit import store_features
from hccr.predict import Recognizer

work = Path(sys.argv[1])
train = work / "train-components&builtin+mix+40wA"
st = Store(train)
dom = sample_domains(st.writers, st.writer_names, st.labels, np.arange(len(st.labels)), "[0-9]*")
rng = np.random.default_rng(0)
rows = []
for c in np.unique(st.labels[dom >= 0]):
    for kind in (REAL, SYNTHETIC):
        r = np.flatnonzero((st.labels == c) & (dom == kind))
        rows.append(rng.permutation(r)[:20])
rows = np.sort(np.concatenate(rows))
y, cls = (dom[rows] == REAL).astype(np.float32), st.labels[rows]
chars = np.unique(cls)
fit_half = np.isin(cls, rng.permutation(chars)[: len(chars) // 2])
for name in sys.argv[2:]:
    run = work / f"run-{name}"
    net, _ = load_checkpoint(run / "last.json")
    spec = Recognizer.from_checkpoint(run / "last.json").spec
    f = torch.tensor(store_features(net.eval(), spec, st.images[rows]))
    f = (f - f[fit_half].mean(0)) / (f[fit_half].std(0) + 1e-6)
    w = torch.zeros(f.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200)
    t = torch.tensor(y)

    def closure():
        opt.zero_grad()
        z = f[fit_half] @ w + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, t[fit_half]) + 1e-3 * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        acc = float((((f[~fit_half] @ w + b) > 0).float() == t[~fit_half]).float().mean())
    print(f"{name}: a fresh critic tells real from synthetic in {acc:.3f} of held-out characters' samples "
          f"({int((~fit_half).sum())} samples; chance 0.5)", flush=True)
