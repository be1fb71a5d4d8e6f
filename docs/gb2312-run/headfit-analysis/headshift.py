"""Analysis: can B's classifier rows be moved from where synthetic samples put them toward where real
samples would? Protocol run's features; class means; methods scored on the validation writers."""
import json, sys, time
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, "benchmarks")
from hccr.data.store import Store
from hccr.predict import Recognizer
from hccr.runtime import resize_batch

work = Path(sys.argv[1]); name = sys.argv[2]
rec = Recognizer.from_checkpoint(work / f"run-{name}" / "last.json")
torch.set_num_threads(2)
from hccr.checkpoint import load_checkpoint
net, _ = load_checkpoint(work / f"run-{name}" / "last.json")
from hccr.predict import multicrop, to_model_input


@torch.inference_mode()
def features(store, idx, bs=512):
    out = []
    idx = np.sort(idx)
    for i in range(0, len(idx), bs):
        x = torch.as_tensor(resize_batch(store.images[idx[i:i+bs]], rec.spec.side(1)))
        v = to_model_input(multicrop(x, rec.spec.size, 1), rec.spec.ink)
        out.append(net.forward_features(v).float().numpy())
    return np.concatenate(out)

split = json.loads((work / "split.json").read_text())
A, B = set(split["A"]), set(split["B"])
cs = rec.charset; C = len(cs)
isB = np.array([c in B for c in cs])
cache = work / f"feats-{name}.npz"
if cache.exists():
    z = np.load(cache); fr, lr_, fs, ls, fv, lv = (z[k] for k in ["fr", "lr", "fs", "ls", "fv", "lv"])
else:
    t = time.time()
    tr = Store(work / f"train-{name}")
    rs = Store(work / "real-train")
    n_real = int(np.isin(rs.labels, [rs.charset.index[c] for c in A]).sum())
    labels = tr.labels
    rng = np.random.default_rng(0)
    ridx = np.concatenate([rng.permutation(np.flatnonzero(labels[:n_real] == c))[:60] for c in range(C)])
    sidx = np.arange(n_real, len(labels))
    ridx.sort(); fr, lr_ = features(tr, ridx), labels[ridx]
    fs, ls = features(tr, sidx), labels[sidx]
    va = Store(work / "real-val"); vi = np.arange(len(va.labels))
    remap = np.array([cs.index[c] for c in va.charset])
    fv, lv = features(va, vi), remap[va.labels]
    np.savez(cache, fr=fr, lr=lr_, fs=fs, ls=ls, fv=fv, lv=lv)
    print(f"features in {time.time()-t:.0f} s: real {len(fr)}, synth {len(fs)}, val {len(fv)}", flush=True)

def means(f, l):
    m = np.zeros((C, f.shape[1])); n = np.bincount(l, minlength=C)
    np.add.at(m, l, f); return m / np.maximum(n, 1)[:, None], n
mr, nr = means(fr, lr_); ms, ns = means(fs, ls)
vB = isB[lv]
def score(logits, tag):
    ok = logits.argmax(1) == lv
    print(f"{tag:48s} A {ok[~vB].mean():.4f}  B {ok[vB].mean():.4f}", flush=True)
    return ok
# the trained head (as trained)
sd = dict(net.named_parameters()); W = sd['head.1.weight'].detach().numpy(); b = sd['head.1.bias'].detach().numpy()
score(fv @ W.T + b, "trained head")
# within-class covariance of real A (shrunk), LDA rows
Ai = ~isB
d = fr - mr[lr_]
S = d.T @ d / len(d)
for shrink in [0.1, 0.3]:
    Sr = (1 - shrink) * S + shrink * np.trace(S) / len(S) * np.eye(len(S))
    P = np.linalg.inv(Sr)
    def lda(M):
        Wl = M @ P; return fv @ Wl.T - 0.5 * np.einsum("ij,ij->i", Wl, M)
    M0 = np.where(isB[:, None], ms, mr)
    score(lda(M0), f"LDA real A, synth B (shrink {shrink})")
    delta = (mr[Ai] - ms[Ai]).mean(0)
    score(lda(np.where(isB[:, None], ms + delta, mr)), f"LDA real A, synth B + mean shift ({shrink})")
    for lam in [1.0, 10.0, 100.0]:
        X = np.c_[ms[Ai], np.ones(Ai.sum())]; Y = mr[Ai]
        Wm = np.linalg.solve(X.T @ X + lam * np.eye(X.shape[1]), X.T @ Y)
        pred = np.c_[ms, np.ones(C)] @ Wm
        score(lda(np.where(isB[:, None], pred, mr)), f"LDA real A, ridge map B (lam {lam}, shrink {shrink})")
    score(lda(np.where(isB[:, None], ms, ms)), f"LDA all synth means ({shrink})")

# Hybrid: trained rows for A; B's columns from LDA rows with predicted means, put on the trained head's scale by
# an affine map fitted on A's columns over the *training* real features (no validation sample used).
print("--- hybrid (trained A rows, LDA B rows on the trained scale)")
ftr = fr[:: max(1, len(fr) // 8000)]
for shrink in [0.1, 0.3]:
    Sr = (1 - shrink) * S + shrink * np.trace(S) / len(S) * np.eye(len(S))
    P = np.linalg.inv(Sr)
    for tag, MB in [("synth B", ms), ("mean shift", ms + (mr[Ai] - ms[Ai]).mean(0))] + [
            (f"ridge {lam}", np.c_[ms, np.ones(C)] @ np.linalg.solve(
                np.c_[ms[Ai], np.ones(Ai.sum())].T @ np.c_[ms[Ai], np.ones(Ai.sum())] + lam * np.eye(ms.shape[1] + 1),
                np.c_[ms[Ai], np.ones(Ai.sum())].T @ mr[Ai])) for lam in [1.0, 10.0]]:
        M = np.where(isB[:, None], MB, mr)
        Wl = M @ P; bl = -0.5 * np.einsum("ij,ij->i", Wl, M)
        x = (ftr @ Wl[Ai].T + bl[Ai]).ravel(); y = (ftr @ W[Ai].T + b[Ai]).ravel()
        a1, b1 = np.polyfit(x, y, 1)
        for off in [0.0]:
            lg = fv @ W.T + b
            lg[:, isB] = a1 * (fv @ Wl[isB].T + bl[isB]) + b1 + off
            score(lg, f"hybrid {tag} (shrink {shrink}, a {a1:.3f})")
