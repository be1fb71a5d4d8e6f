"""Analysis: does the discriminant's level-1 cost on the shipped model shrink with 60-sample real means (two
quarters of the training writers) instead of 30?"""
import sys, time
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, "benchmarks")
from common import convert_once, olhwdb_writers
from hccr.checkpoint import load_checkpoint
from hccr.data.store import ConvertOptions, Store
from hccr.headfit import fit_mean_map_head, store_features
from hccr.predict import Recognizer
from hccr.data.charset import gb2312_chars
torch.set_num_threads(2)
work = Path("../hccr-runs/shipped-headfit")
ckpt = "hccr/assets/gb2312.json"
net, _ = load_checkpoint(ckpt); net.float()
rec = Recognizer.from_checkpoint(ckpt); cs = rec.charset; C = len(cs)
train_pots, _ = olhwdb_writers()
real2 = convert_once(train_pots[1::4], work / "real-sub2", ConvertOptions(size=64, charset="gb2312"))
st = Store(real2); lab = np.array([cs.index[c] for c in st.charset])[st.labels]
rng = np.random.default_rng(1)
idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(lab == c))[:30] for c in np.unique(lab)]))
t = time.time(); f2 = store_features(net, rec.spec, st.images[idx]); print(f"{len(idx)} features in {time.time()-t:.0f} s")
z = np.load(work / "feats.npz"); fr, lr, fs, ls, fv, lv = (z[k] for k in "fr lr fs ls fv lv".split())
l1 = set(gb2312_chars(True)); level2 = np.array([c not in l1 for c in cs])
for tag, (r, l) in {"30 per class": (fr, lr), "60 per class": (np.r_[fr, f2], np.r_[lr, lab[idx]])}.items():
    for mapped in (False, True):
        h = fit_mean_map_head(r, l, fs, ls, C, mapped=mapped); p = h.logits(fv).argmax(1); ok = p == lv
        print(f"{tag}, {'mapped' if mapped else 'control'}: level 1 {ok.mean():.4f}, read as level 2 {(~ok & level2[p]).sum()}", flush=True)
