"""Analysis: the trained layer plus alpha x (mean-map head - its control): B's rows moved in the trained layer as
the map moved them in the discriminant. Protocol run (cached features) and the shipped model."""
import json, sys
from pathlib import Path
import numpy as np
from hccr.checkpoint import load_checkpoint
from hccr.headfit import fit_mean_map_head
def trained(ckpt):
    net, _ = load_checkpoint(ckpt); sd = dict(net.named_parameters())
    return sd["head.1.weight"].detach().float().numpy(), sd["head.1.bias"].detach().float().numpy()
def run(fr, lr, fs, ls, fv, lv, W, b, unseen, C, prior=None, tag=""):
    hm = fit_mean_map_head(fr, lr, fs, ls, C); hc = fit_mean_map_head(fr, lr, fs, ls, C, mapped=False)
    delta = hm.logits(fv) - hc.logits(fv)
    assert np.abs(delta[:, ~unseen]).max() < 1e-6
    zt = fv @ W.T + b
    vu = unseen[lv]
    for name, z0 in [("as trained", zt)] + ([("prior out", zt - np.log(prior))] if prior is not None else []):
        for a in [0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0]:
            p = (z0 + a * delta).argmax(1); ok = p == lv
            print(f"{tag} {name:10s} alpha {a:4.2f}: seen {ok[~vu].mean():.4f} unseen {ok[vu].mean():.4f}  seen read as unseen {(~ok & unseen[p])[~vu].sum()}", flush=True)
# protocol
w = Path("../hccr-runs/protocol"); name = "components&builtin+mix+40wA"
z = np.load(w / f"feats-{name}.npz"); fr, lr, fs, ls, fv, lv = (z[k] for k in "fr lr fs ls fv lv".split())
split = json.loads((w / "split.json").read_text()); cs = sorted(split["A"] + split["B"]); C = len(cs)
unseen = np.array([c in set(split["B"]) for c in cs])
from hccr.data.store import Store
counts = np.bincount(Store(w / f"train-{name}").labels, minlength=C); prior = counts / counts.sum()
W, b = trained(w / f"run-{name}" / "last.json")
run(fr, lr, fs, ls, fv, lv, W, b, unseen, C, prior, "protocol")
# shipped
z = np.load("../hccr-runs/shipped-headfit/feats.npz"); fr, lr, fs, ls, fv, lv = (z[k] for k in "fr lr fs ls fv lv".split())
from hccr.predict import Recognizer
from hccr.data.charset import gb2312_chars
cs = Recognizer.from_checkpoint("hccr/assets/gb2312.json").charset; C = len(cs)
l1 = set(gb2312_chars(True)); unseen = np.array([c not in l1 for c in cs])
W, b = trained("hccr/assets/gb2312.json")
run(fr, lr, fs, ls, fv, lv, W, b, unseen, C, None, "shipped")
