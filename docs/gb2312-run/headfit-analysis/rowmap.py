"""Analysis: unseen rows placed on the trained layer's scale: a ridge fit of trained row from discriminant row on
the seen characters, applied to the unseen characters' mapped discriminant rows (replace), or to the change the
map made (add)."""
import json
from pathlib import Path
import numpy as np
from hccr.checkpoint import load_checkpoint
from hccr.headfit import fit_mean_map_head, ridge_map, apply_map
def trained(ckpt):
    net, _ = load_checkpoint(ckpt); sd = dict(net.named_parameters())
    return sd["head.1.weight"].detach().float().numpy(), sd["head.1.bias"].detach().float().numpy()
def run(fr, lr, fs, ls, fv, lv, W, b, unseen, C, tag, prior=None):
    hm = fit_mean_map_head(fr, lr, fs, ls, C); hc = fit_mean_map_head(fr, lr, fs, ls, C, mapped=False)
    vu = unseen[lv]
    Xm, Xc, Y = np.c_[hm.weight, hm.bias], np.c_[hc.weight, hc.bias], np.c_[W, b]
    zt = fv @ W.T + b - (0 if prior is None else 0.5 * np.log(prior))
    def show(z, name):
        p = z.argmax(1); ok = p == lv
        print(f"{tag} {name:34s} seen {ok[~vu].mean():.4f} unseen {ok[vu].mean() if vu.any() else float('nan'):.4f}  seen->unseen {(~ok & unseen[p])[~vu].sum()}", flush=True)
    show(zt, "trained" + ("" if prior is None else " (prior 0.5)"))
    for lam in [1e-2, 1.0, 100.0]:
        s = Xm[~unseen].std(0) + 1e-9
        R = ridge_map(Xm[~unseen] / s, Y[~unseen], lam)
        fit = apply_map(R, Xm / s)
        for mode in ["replace", "add"]:
            Wn, bn = W.copy(), b.copy()
            if mode == "replace":
                Wn[unseen], bn[unseen] = fit[unseen, :-1], fit[unseen, -1]
            else:
                d = apply_map(R, Xm / s) - apply_map(R, Xc / s)
                Wn[unseen] += d[unseen, :-1]; bn[unseen] += d[unseen, -1]
            z = fv @ Wn.T + bn - (0 if prior is None else 0.5 * np.log(prior))
            show(z, f"{mode} lam {lam:g}")
w = Path("../hccr-runs/protocol"); name = "components&builtin+mix+40wA"
z = np.load(w / f"feats-{name}.npz"); fr, lr, fs, ls, fv, lv = (z[k] for k in "fr lr fs ls fv lv".split())
split = json.loads((w / "split.json").read_text()); cs = sorted(split["A"] + split["B"]); C = len(cs)
unseen = np.array([c in set(split["B"]) for c in cs])
from hccr.data.store import Store
counts = np.bincount(Store(w / f"train-{name}").labels, minlength=C)
W, b = trained(w / f"run-{name}" / "last.json")
run(fr, lr, fs, ls, fv, lv, W, b, unseen, C, "protocol", counts / counts.sum())
z = np.load("../hccr-runs/shipped-headfit/feats.npz"); fr, lr, fs, ls, fv, lv = (z[k] for k in "fr lr fs ls fv lv".split())
from hccr.predict import Recognizer
from hccr.data.charset import gb2312_chars
cs = Recognizer.from_checkpoint("hccr/assets/gb2312.json").charset; C = len(cs)
l1 = set(gb2312_chars(True)); unseen = np.array([c not in l1 for c in cs])
W, b = trained("hccr/assets/gb2312.json")
run(fr, lr, fs, ls, fv, lv, W, b, unseen, C, "shipped")
