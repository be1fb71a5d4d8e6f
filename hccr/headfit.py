"""Classifier rows for characters only simulated writers wrote, placed where real writers' samples would be.

A network trained on real handwriting of some characters ("seen") and on synthetic handwriting alone of
others ("unseen", e.g. GB2312 level 2) reads the unseen ones worse: their rows were learnt from how the
simulation draws them. The seen characters were drawn both ways, so in the network's feature space they
show where a character's synthetic class mean sits relative to its real one. A ridge map fitted on them
(synthetic mean -> real mean, affine) moves every unseen character's synthetic mean to where real samples
of it would likely fall. The head becomes a shared-covariance Gaussian classifier (linear discriminant)
over those means: rows ``W = M P`` and biases ``-1/2 m P m``, with ``P`` the inverse of the within-class
covariance of the seen characters' real features (shrunk towards its mean variance). It is a plain linear
layer, so it replaces the network's last layer and exports as before.

The ridge strength is chosen by cross-validation over the seen characters: each fold in turn is treated
as unseen (its real mean replaced by the map's prediction, fitted on the other folds) and its real
training features are classified. No validation sample takes part. ``mapped=False`` is the control: the
unseen characters keep their synthetic means.

numpy only; :func:`store_features` (the network's pooled features of a store's images) imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import HccrError

LAMBDAS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # ridge strengths tried by the cross-validation
SHRINK = 0.1  # covariance shrinkage towards its mean variance (0.1 and 0.3 read within 0.5 pt in the protocol)


@dataclass
class MeanMapHead:
    weight: np.ndarray  # (classes, features)
    bias: np.ndarray  # (classes,)
    seen: np.ndarray  # (classes,) bool: the class had real samples
    lam: float | None  # the chosen ridge strength (None: mapped=False)
    cv: dict = field(default_factory=dict)  # ridge strength -> accuracy on the seen folds treated as unseen

    def logits(self, features: np.ndarray) -> np.ndarray:
        return features @ self.weight.T + self.bias


def class_means(features: np.ndarray, labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, D) mean feature per class (zero where a class has no sample) and (n,) counts."""
    counts = np.bincount(labels, minlength=n)
    sums = np.zeros((n, features.shape[1]))
    np.add.at(sums, labels, features)
    return sums / np.maximum(counts, 1)[:, None], counts


def ridge_map(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """The affine map ``[x, 1] @ W ~ y`` by ridge regression (the intercept not penalised): (D + 1, D)."""
    x1 = np.c_[x, np.ones(len(x))]
    reg = lam * np.eye(x1.shape[1])
    reg[-1, -1] = 0.0
    return np.linalg.solve(x1.T @ x1 + reg, x1.T @ y)


def apply_map(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.c_[x, np.ones(len(x))] @ w


def lda_rows(means: np.ndarray, precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear-discriminant rows and biases of classes with these means and a shared precision matrix."""
    w = means @ precision
    return w, -0.5 * np.einsum("ij,ij->i", w, means)


def shared_precision(features: np.ndarray, labels: np.ndarray, means: np.ndarray, shrink: float) -> np.ndarray:
    d = features - means[labels]
    cov = d.T @ d / len(d)
    dim = cov.shape[0]
    return np.linalg.inv((1 - shrink) * cov + shrink * np.trace(cov) / dim * np.eye(dim))


def fit_mean_map_head(real: np.ndarray, real_labels: np.ndarray, synth: np.ndarray, synth_labels: np.ndarray,
                      n: int, mapped: bool = True, lambdas: tuple[float, ...] = LAMBDAS, shrink: float = SHRINK,
                      folds: int = 5, seed: int = 0) -> MeanMapHead:
    """The head over ``n`` classes from real features of the seen classes and synthetic features of all
    (see the module's docstring). Every class needs synthetic samples; classes with real ones are seen."""
    real_means, real_n = class_means(real, real_labels, n)
    syn_means, syn_n = class_means(synth, synth_labels, n)
    seen = real_n > 0
    if (syn_n == 0).any():
        raise HccrError(f"{int((syn_n == 0).sum())} classes have no synthetic samples: every class needs them "
                        "(they place the classes that have no real ones)")
    if seen.sum() < max(2 * folds, real.shape[1] // 4):
        raise HccrError(f"only {int(seen.sum())} classes have real samples: too few to fit the map "
                        f"(need at least {max(2 * folds, real.shape[1] // 4)})")
    precision = shared_precision(real, real_labels, real_means, shrink)
    if not mapped:
        w, b = lda_rows(np.where(seen[:, None], real_means, syn_means), precision)
        return MeanMapHead(w, b, seen, None)
    seen_ids = np.flatnonzero(seen)
    parts = np.array_split(np.random.default_rng(seed).permutation(seen_ids), folds)
    cv = {}
    for lam in lambdas:  # each fold of the seen classes plays the unseen ones; the true unseen stay distractors
        right = 0
        for part in parts:
            rest = np.setdiff1d(seen_ids, part)
            m = ridge_map(syn_means[rest], real_means[rest], lam)
            means = real_means.copy()
            means[part] = apply_map(m, syn_means[part])
            means[~seen] = apply_map(m, syn_means[~seen])
            w, b = lda_rows(means, precision)
            rows = np.isin(real_labels, part)
            right += int(((real[rows] @ w.T + b).argmax(1) == real_labels[rows]).sum())
        cv[lam] = right / len(real_labels)
    lam = max(cv, key=lambda k: (cv[k], -k))  # a tie goes to the smaller lambda
    m = ridge_map(syn_means[seen], real_means[seen], lam)
    w, b = lda_rows(np.where(seen[:, None], real_means, apply_map(m, syn_means)), precision)
    return MeanMapHead(w, b, seen, lam, cv)


def store_features(model, spec, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """The network's pooled features (the last layer's input) of a store's normalised uint8 images, one crop."""
    import torch

    from .predict import multicrop, to_model_input
    from .runtime import resize_batch

    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = torch.as_tensor(resize_batch(images[i : i + batch_size], spec.side(1)))
            out.append(model.forward_features(to_model_input(multicrop(x, spec.size, 1), spec.ink)).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
