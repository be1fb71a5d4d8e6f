"""Analysis (no choice rides on it): the shipped gb2312's last layer replaced by the mean-map head. What does
level 1 read on the online validation writers, 6,763-way, against the trained layer?"""
import sys, time
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, "benchmarks")
from common import ARCHIVE, OUT, convert_once, olhwdb_writers
from shipped import olhwdb_validation
from hccr.checkpoint import load_checkpoint
from hccr.data.charset import gb2312_chars
from hccr.data.store import ConvertOptions, Store
from hccr.data.synth import SynthConfig, synth
from hccr.headfit import fit_mean_map_head, store_features
from hccr.predict import Recognizer

torch.set_num_threads(2)
work = Path("../hccr-runs/shipped-headfit"); work.mkdir(parents=True, exist_ok=True)
ckpt = "hccr/assets/gb2312.json"
net, meta = load_checkpoint(ckpt); net.float()
rec = Recognizer.from_checkpoint(ckpt); spec = rec.spec; cs = rec.charset; C = len(cs)
t = time.time()
train_pots, _ = olhwdb_writers()
val = olhwdb_validation(ARCHIVE, OUT)
real = convert_once(train_pots[::4], work / "real-sub", ConvertOptions(size=64, charset="gb2312"))
synth(work / "synth-builtin", SynthConfig(chars="".join(gb2312_chars(False)), seed=4100, writers=12,
                                          style="hccr/assets/style-builtin.json"), progress=False)
syn = convert_once([work / "synth-builtin"], work / "synth-builtin-store", ConvertOptions(size=64, charset="gb2312"))
print(f"data {time.time() - t:.0f} s", flush=True)
def load(store, per_class=None):
    st = Store(store); lab = np.array([cs.index[c] for c in st.charset])[st.labels]
    idx = np.arange(len(lab))
    if per_class:
        rng = np.random.default_rng(0)
        idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(lab == c))[:per_class] for c in np.unique(lab)]))
    t = time.time(); f = store_features(net, spec, st.images[idx])
    print(f"{store.name}: {len(idx)} features in {time.time() - t:.0f} s", flush=True)
    return f, lab[idx]
cache = work / "feats.npz"
if cache.exists():
    z = np.load(cache); fr, lr, fs, ls, fv, lv = (z[k] for k in "fr lr fs ls fv lv".split())
else:
    fr, lr = load(real, 30); fs, ls = load(syn); fv, lv = load(val)
    np.savez(cache, fr=fr, lr=lr, fs=fs, ls=ls, fv=fv, lv=lv)
sd = dict(net.named_parameters()); W = sd["head.1.weight"].detach().float().numpy(); b = sd["head.1.bias"].detach().float().numpy()
level2 = np.zeros(C, bool); level2[[cs.index[c] for c in gb2312_chars(False) if c not in set(gb2312_chars(True))]] = True
def report(logits, tag):
    p = logits.argmax(1); ok = p == lv
    print(f"{tag:44s} level 1 top-1 {ok.mean():.4f}  errors read as level 2 {(~ok & level2[p]).sum()}", flush=True)
report(fv @ W.T + b, "trained last layer (prior 0.5 in its bias)")
for mapped in (False, True):
    t = time.time()
    h = fit_mean_map_head(fr, lr, fs, ls, C, mapped=mapped)
    report(h.logits(fv), f"mean-map head{'' if mapped else ', level 2 at synthetic means'} ({time.time() - t:.0f} s)")
    if mapped:
        print("lambda", h.lam, {k: round(v, 4) for k, v in h.cv.items()})
