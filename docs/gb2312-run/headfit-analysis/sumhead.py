"""Analysis: trained logits plus beta times the mean-map head's logits (both over every class), with a constant
offset on the unseen rows; reported where the seen characters read as the trained layer does."""
import json, sys
from pathlib import Path
import numpy as np
from hccr.checkpoint import load_checkpoint
from hccr.headfit import fit_mean_map_head
def trained(ckpt):
    net, _ = load_checkpoint(ckpt); sd = dict(net.named_parameters())
    return sd["head.1.weight"].detach().float().numpy(), sd["head.1.bias"].detach().float().numpy()
def at(z, lv, unseen, target):
    vu = unseen[lv]; lo, hi = -50.0, 50.0
    for _ in range(40):
        d = (lo + hi) / 2; p = (z + d * unseen).argmax(1)
        if (p == lv)[~vu].mean() >= target: lo = d
        else: hi = d
    p = (z + lo * unseen).argmax(1); return (p == lv)[~vu].mean(), (p == lv)[vu].mean(), lo
def run(fr, lr_, fs, ls, fv, lv, W, b, unseen, C, tag, lp):
    vu = unseen[lv]
    zt = fv @ W.T + b - lp
    for mapped in (True, False):
        h = fit_mean_map_head(fr, lr_, fs, ls, C, mapped=mapped)
        zm = h.logits(fv)
        for beta in (0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 1e3):
            z = zt + beta * zm if beta < 1e3 else zm
            p = z.argmax(1); s, u = (p == lv)[~vu].mean(), (p == lv)[vu].mean()
            base = (zt.argmax(1) == lv)[~vu].mean()
            s2, u2, d = at(z, lv, unseen, base)
            s3, u3, d3 = at(z, lv, unseen, base - 0.001)
            print(f"{tag} {'map' if mapped else 'ctl'} beta {beta:g}: raw {s:.4f}/{u:.4f}  at seen>={base:.4f}: {s2:.4f}/{u2:.4f} (d {d:.2f})  at -0.1pt: {s3:.4f}/{u3:.4f}", flush=True)
which = sys.argv[1] if len(sys.argv) > 1 else "protocol"
if which == "protocol":
    w = Path("../hccr-runs/protocol"); name = "components&builtin+mix+40wA"
    z = np.load(w / f"feats-{name}.npz"); fr, lr_, fs, ls, fv, lv = (z[k] for k in "fr lr fs ls fv lv".split())
    split = json.loads((w / "split.json").read_text()); cs = sorted(split["A"] + split["B"]); C = len(cs)
    unseen = np.array([c in set(split["B"]) for c in cs])
    from hccr.data.store import Store
    counts = np.bincount(Store(w / f"train-{name}").labels, minlength=C)
    W, b = trained(w / f"run-{name}" / "last.json")
    run(fr, lr_, fs, ls, fv, lv, W, b, unseen, C, "protocol", 0.5 * np.log(counts / counts.sum()))
else:
    z = np.load("../hccr-runs/shipped-headfit/feats.npz"); fr, lr_, fs, ls, fv, lv = (z[k] for k in "fr lr fs ls fv lv".split())
    from hccr.predict import Recognizer
    from hccr.data.charset import gb2312_chars
    cs = Recognizer.from_checkpoint("hccr/assets/gb2312.json").charset; C = len(cs)
    l1 = set(gb2312_chars(True)); unseen = np.array([c not in l1 for c in cs])
    W, b = trained("hccr/assets/gb2312.json")
    run(fr, lr_, fs, ls, fv, lv, W, b, unseen, C, "shipped", 0.0)
