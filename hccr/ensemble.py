"""Weighted ensembles of probability files, and fitting the weights on validation predictions."""

from __future__ import annotations

import itertools
import os

import numpy as np

from .errors import HccrError
from .runtime import Predictions

PAPER_WEIGHTS = (0.3, 0.2, 0.5)


def check_compatible(preds: list[Predictions], names: list[str] | None = None) -> None:
    names = names or [f"member {i + 1}" for i in range(len(preds))]
    ref = preds[0]
    for p, name in zip(preds[1:], names[1:], strict=True):
        if p.charset != ref.charset:
            raise HccrError(f"{name}: its charset ({len(p.charset)} classes) differs from {names[0]}'s "
                            f"({len(ref.charset)}); ensemble members must share one character list")
        if len(p.ids) != len(ref.ids) or not np.array_equal(p.ids, ref.ids):
            raise HccrError(f"{name}: its samples ({len(p.ids)}) are not the same, in the same order, as "
                            f"{names[0]}'s ({len(ref.ids)}); predict every member on the same input")


def normalize_weights(weights: list[float] | tuple[float, ...] | None, n: int) -> np.ndarray:
    """``weights`` summing to 1; None: the paper's 0.3/0.2/0.5 for three members, else equal weights."""
    if weights is None:
        weights = PAPER_WEIGHTS if n == 3 else [1.0] * n
    w = np.asarray(weights, dtype=np.float64)
    if len(w) != n:
        raise HccrError(f"{len(w)} weights for {n} members")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise HccrError(f"weights must be finite and non-negative with a positive sum, got {list(weights)}")
    return w / w.sum()


def combine(preds: list[Predictions], weights: list[float] | tuple[float, ...] | None = None,
            names: list[str] | None = None) -> Predictions:
    """``p = sum_k w_k p_k`` with weights normalised to sum 1 (default: the paper's 0.3/0.2/0.5 for three)."""
    if not preds:
        raise HccrError("no ensemble members given")
    check_compatible(preds, names)
    w = normalize_weights(weights, len(preds))
    half = any(p.probs.dtype == np.float16 for p in preds)  # members too big for float32 stay half
    probs = np.zeros(preds[0].probs.shape, np.float16 if half else np.float32)
    for i in range(0, len(probs), 4096):  # in chunks of rows: no N x C float64 temporary
        probs[i : i + 4096] = sum(wk * p.probs[i : i + 4096].astype(np.float64) for wk, p in zip(w, preds, strict=True))
    ms = sum(p.meta.get("ms_per_char", 0.0) for p in preds)
    crops = [p.meta.get("crops") for p in preds]
    meta = {"kind": "ensemble", "weights": w.tolist(), "members": [p.meta.get("model") for p in preds],
            "crops": crops[0] if len(set(crops)) == 1 else "/".join(map(str, crops)), "ms_per_char": ms}
    return Predictions(probs, preds[0].charset, preds[0].labels, preds[0].ids, preds[0].source, meta)


def fit_weights(val_preds: list[Predictions], step: float = 0.05) -> np.ndarray:
    """Weights minimising validation log-loss: a grid over the simplex (step ``step``) for up to four
    members, exponentiated-gradient descent beyond that."""
    check_compatible(val_preds)
    labels = val_preds[0].labels
    if (labels < 0).all():
        raise HccrError("--fit needs validation predictions with known labels")
    ok = labels >= 0
    # p_true[k, i]: member k's probability of sample i's true class.
    p_true = np.stack([p.probs[ok, labels[ok]].astype(np.float64) for p in val_preds])
    m = len(val_preds)
    if m <= 4:
        n = round(1 / step)
        best_loss, best_w = np.inf, np.full(m, 1 / m)
        for combo in itertools.product(range(n + 1), repeat=m - 1):
            if sum(combo) > n:
                continue
            w = np.array([*combo, n - sum(combo)], dtype=np.float64) / n
            loss = -np.log(np.clip(w @ p_true, 1e-12, None)).mean()
            if loss < best_loss - 1e-12:
                best_loss, best_w = loss, w
        return best_w
    w = np.full(m, 1 / m)
    for _ in range(500):
        mix = np.clip(w @ p_true, 1e-12, None)
        grad = -(p_true / mix).mean(1)
        w = w * np.exp(-0.5 * grad)
        w /= w.sum()
    return w


def load_all(paths: list[str | os.PathLike]) -> list[Predictions]:
    return [Predictions.load(p) for p in paths]
