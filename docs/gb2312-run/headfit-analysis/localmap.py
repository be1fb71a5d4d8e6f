"""The mean-map head with its neighbours' residuals (notebook/unseen-characters.md, twenty-eighth session).

    python docs/gb2312-run/headfit-analysis/localmap.py ../hccr-runs/protocol "components&builtin+mix+40wA"

Features are taken as benchmarks/protocol.py's ``mean_map`` takes them (same picks, same seed) and cached in
WORK/feats-localmap-NAME.npz. The map's residuals of the k A characters nearest in synthetic mean correct each
placed character; k and the ridge strength are chosen together by 5-fold cross-validation on A's real training
samples; the chosen pair (and, as the control, k = 0 at its own chosen strength) is read on the validation writers.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from hccr.data.store import Store
from hccr.headfit import LAMBDAS, SHRINK, apply_map, class_means, lda_rows, ridge_map, shared_precision

KS = (0, 3, 10, 30)


def features(work: Path, name: str) -> dict:
    cache = work / f"feats-localmap-{name}.npz"
    if cache.exists():
        return dict(np.load(cache))
    from hccr.checkpoint import load_checkpoint
    from hccr.headfit import store_features
    from hccr.preprocess import InputSpec

    t = time.perf_counter()
    run, train, val = work / f"run-{name}", work / f"train-{name.split('+dann')[0]}", work / "real-val"
    net, meta = load_checkpoint(run / "last.json")
    spec = InputSpec.from_meta(meta["preprocessing"], 1)
    split = json.loads((work / "split.json").read_text())
    st, vs, rng = Store(train), Store(val), np.random.default_rng(0)
    assert "".join(st.charset) == "".join(vs.charset) == meta["charset"]
    n_real = int(np.isin(Store(work / "real-train").labels,
                         [Store(work / "real-train").charset.index[c] for c in split["A"]]).sum())

    def pick(rows: np.ndarray) -> np.ndarray:  # as protocol.mean_map: up to 100 of each class among rows
        lab = st.labels[rows]
        return np.sort(np.concatenate([rng.permutation(rows[lab == c])[:100] for c in np.unique(lab)]))

    real, syn = pick(np.arange(n_real)), pick(np.arange(n_real, len(st.labels)))
    out = {"fr": store_features(net, spec, st.images[real]), "lr": st.labels[real].astype(np.int64),
           "fs": store_features(net, spec, st.images[syn]), "ls": st.labels[syn].astype(np.int64),
           "fv": store_features(net, spec, vs.images[:]), "lv": vs.labels[:].astype(np.int64),
           "in_b": np.isin(vs.labels[:], [vs.charset.index[c] for c in split["B"]])}
    np.savez(cache, **out)
    print(f"features in {time.perf_counter() - t:.0f} s -> {cache}")
    return out


def place(syn_means: np.ndarray, real_means: np.ndarray, known: np.ndarray, targets: np.ndarray, lam: float,
          k: int) -> np.ndarray:
    """Means of ``targets`` from their synthetic means: the ridge map fitted on ``known`` plus the mean residual of
    their k nearest known classes (by synthetic mean)."""
    m = ridge_map(syn_means[known], real_means[known], lam)
    placed = apply_map(m, syn_means[targets])
    if k:
        resid = real_means[known] - apply_map(m, syn_means[known])
        d = ((syn_means[targets, None, :] - syn_means[None, known, :]) ** 2).sum(-1)
        nn = np.argpartition(d, k, axis=1)[:, :k]
        placed = placed + resid[nn].mean(1)
    return placed


def main() -> None:
    work, name = Path(sys.argv[1]), sys.argv[2]
    f = features(work, name)
    n = int(max(f["lr"].max(), f["ls"].max(), f["lv"].max())) + 1
    real_means, real_n = class_means(f["fr"], f["lr"], n)
    syn_means, _ = class_means(f["fs"], f["ls"], n)
    seen = real_n > 0
    precision = shared_precision(f["fr"], f["lr"], real_means, SHRINK)
    seen_ids, unseen_ids = np.flatnonzero(seen), np.flatnonzero(~seen)
    parts = np.array_split(np.random.default_rng(0).permutation(seen_ids), 5)  # as fit_mean_map_head
    t = time.perf_counter()
    cv = {}
    for k in KS:
        for lam in LAMBDAS:
            right = 0
            for part in parts:
                rest = np.setdiff1d(seen_ids, part)
                means = real_means.copy()
                means[part] = place(syn_means, real_means, rest, part, lam, k)
                means[~seen] = place(syn_means, real_means, rest, unseen_ids, lam, k)
                w, b = lda_rows(means, precision)
                rows = np.isin(f["lr"], part)
                right += int(((f["fr"][rows] @ w.T + b).argmax(1) == f["lr"][rows]).sum())
            cv[(k, lam)] = right / len(f["lr"])
    print(f"cross-validation in {time.perf_counter() - t:.0f} s:")
    for k in KS:
        print(f"  k {k:>2}: " + "  ".join(f"{lam:g} {cv[(k, lam)]:.4f}" for lam in LAMBDAS))
    chosen = max(cv, key=lambda kl: (cv[kl], -kl[0], -kl[1]))
    control = max((kl for kl in cv if kl[0] == 0), key=lambda kl: (cv[kl], -kl[1]))
    rows = {}
    for label, (k, lam) in (("k = 0 (the committed head; control)", control), ("chosen", chosen)):
        means = real_means.copy()
        means[~seen] = place(syn_means, real_means, seen_ids, unseen_ids, lam, k)
        w, b = lda_rows(means, precision)
        ok = (f["fv"] @ w.T + b).argmax(1) == f["lv"]
        rows[label] = {"k": k, "lambda": lam, "cv": round(cv[(k, lam)], 4),
                       "A": round(float(ok[~f["in_b"]].mean()), 4), "B": round(float(ok[f["in_b"]].mean()), 4)}
        print(f"{label}: {rows[label]}")
    (work / f"localmap-{name}.json").write_text(json.dumps({"cv": {f"{k},{lam}": v for (k, lam), v in cv.items()},
                                                            "read": rows}, indent=1))


if __name__ == "__main__":
    main()
