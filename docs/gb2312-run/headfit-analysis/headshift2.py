import json, sys
from pathlib import Path
import numpy as np
work = Path(sys.argv[1]); name = sys.argv[2]
z = np.load(work / f"feats-{name}.npz"); fr, lr_, fs, ls, fv, lv = (z[k] for k in ["fr", "lr", "fs", "ls", "fv", "lv"])
split = json.loads((work / "split.json").read_text()); B = set(split["B"])
from hccr.data.charset import Charset
cs = sorted(split["A"] + split["B"]); C = len(cs)
isB = np.array([c in B for c in cs]); Ai = ~isB; vB = isB[lv]
def means(f, l):
    m = np.zeros((C, f.shape[1])); n = np.bincount(l, minlength=C); np.add.at(m, l, f); return m / np.maximum(n, 1)[:, None]
mr, ms = means(fr, lr_), means(fs, ls)
d = fr - mr[lr_]; S = d.T @ d / len(d); D = S.shape[0]
P = np.linalg.inv(0.9 * S + 0.1 * np.trace(S) / D * np.eye(D))
def lda_scores(M, f):
    Wl = M @ P; return f @ Wl.T - 0.5 * np.einsum("ij,ij->i", Wl, M)
def ridge(X, Y, lam, toward_identity):
    X1 = np.c_[X, np.ones(len(X))]; R = lam * np.eye(X1.shape[1]); R[-1, -1] = 0
    if toward_identity:
        W = np.linalg.solve(X1.T @ X1 + R, X1.T @ (Y - X))
        return lambda Z: Z + np.c_[Z, np.ones(len(Z))] @ W
    W = np.linalg.solve(X1.T @ X1 + R, X1.T @ Y)
    return lambda Z: np.c_[Z, np.ones(len(Z))] @ W
rng = np.random.default_rng(0); Aidx = np.flatnonzero(Ai); folds = np.array_split(rng.permutation(Aidx), 5)
for ti in [False, True]:
    for lam in [0.3, 1, 3, 10, 30, 100, 1000]:
        # pseudo-B: each fold of A's classes treated as unseen (training features only)
        okc = []
        for fold in folds:
            keep = np.setdiff1d(Aidx, fold)
            f = ridge(ms[keep], mr[keep], lam, ti)
            M = mr.copy(); M[fold] = f(ms[fold]); M[isB] = f(ms[isB])
            sel = np.isin(lr_, fold)
            okc.append(lda_scores(M, fr[sel]).argmax(1) == lr_[sel])
        cv = np.concatenate(okc).mean()
        f = ridge(ms[Ai], mr[Ai], lam, ti)
        M = np.where(isB[:, None], f(ms), mr)
        ok = lda_scores(M, fv).argmax(1) == lv
        print(f"{'toward identity' if ti else 'toward zero':16s} lam {lam:7.1f}  pseudo-B (train) {cv:.4f}   val A {ok[~vB].mean():.4f} B {ok[vB].mean():.4f}", flush=True)
