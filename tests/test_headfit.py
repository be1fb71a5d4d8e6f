"""The mean-map head: classes only a simulation drew are read as well as the map from simulation to real allows."""

import numpy as np
import pytest

from hccr.errors import HccrError
from hccr.headfit import fit_mean_map_head


def toy(seed: int = 0, n: int = 80, unseen: int = 20, dim: int = 12, per_class: int = 30):
    """Real features around class centres; synthetic ones around a known affine distortion of them
    (a stretch, a rotation and a shift): the simulation draws every class, real writers only the seen."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.0, (n, dim))
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    distort = q @ np.diag(rng.uniform(0.6, 1.5, dim))
    shift = rng.normal(0, 1.0, dim)
    labels = np.repeat(np.arange(n), per_class)

    def draw(means):
        return means[labels] + rng.normal(0, 0.35, (len(labels), dim))

    real, synth = draw(centres), draw(centres @ distort + shift)
    seen = labels < n - unseen
    test = draw(centres)  # real samples of every class, by writers the fit never saw
    return real[seen], labels[seen], synth, labels, test, labels, n, unseen


def test_the_map_places_unseen_classes_where_real_samples_fall():
    real, rl, synth, sl, test, tl, n, unseen = toy()
    head = fit_mean_map_head(real, rl, synth, sl, n)
    control = fit_mean_map_head(real, rl, synth, sl, n, mapped=False)
    is_unseen = tl >= n - unseen
    mapped_ok = (head.logits(test).argmax(1) == tl)[is_unseen].mean()
    control_ok = (control.logits(test).argmax(1) == tl)[is_unseen].mean()
    assert mapped_ok > 0.9, mapped_ok  # the distortion is affine: the map undoes it
    assert control_ok < 0.5, control_ok  # without it the unseen classes sit where the simulation put them
    seen_ok = (head.logits(test).argmax(1) == tl)[~is_unseen].mean()
    assert seen_ok > 0.9, seen_ok  # and the seen classes, placed by their real means, still read
    assert head.seen.sum() == n - unseen and head.lam in head.cv


def test_the_head_uses_the_strength_its_cross_validation_chose():
    real, rl, synth, sl, test, tl, n, _ = toy(seed=1)
    head = fit_mean_map_head(real, rl, synth, sl, n, lambdas=(0.3, 3.0, 1000.0))
    assert head.cv[head.lam] == max(head.cv.values())
    assert head.cv[1000.0] < head.cv[0.3]  # a map shrunk to a constant places every fold at one point
    alone = fit_mean_map_head(real, rl, synth, sl, n, lambdas=(head.lam,))
    np.testing.assert_allclose(head.weight, alone.weight)


def test_every_class_needs_synthetic_samples():
    real, rl, synth, sl, *_ , n, _ = toy()
    keep = sl != 3
    with pytest.raises(HccrError, match="1 classes have no synthetic samples"):
        fit_mean_map_head(real, rl, synth[keep], sl[keep], n)
