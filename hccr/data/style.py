"""How handwriting looks, measured: the features that tell real writing from simulated writing,
a domain classifier, and calibration of the simulated writers' style to real samples.

    measure(images, sizes)        per-sample features of packed-store images (ink high, 64 px)
    compare(real, synthetic)      feature table (median, IQR) + domain-classifier accuracy
    calibrate(real, chars)        a StyleProfile whose writers match the real feature distributions

Features (on the normalised images the models see, except the two taken from the original size):

- ``stroke_width``: mean over ink pixels of twice the 4-neighbour distance to the background
  (iterated erosion), in pixels at 64 px;
- ``ink``: mean ink intensity over ink pixels (1 = black on white, lower = paler pen);
- ``coverage``: ink pixels / area of the character's box;
- ``aspect``: original width / height; ``size``: original longer side in pixels;
- ``slant``: -cov(x, y) / var(y) of the ink (positive = leaning right).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from ..errors import HccrError

FEATURES = ("stroke_width", "ink", "coverage", "aspect", "size", "slant")
INK_THRESHOLD = 0.25


def _erode(m: np.ndarray) -> np.ndarray:
    out = np.zeros_like(m)
    out[:, 1:-1, 1:-1] = (m[:, 1:-1, 1:-1] & m[:, :-2, 1:-1] & m[:, 2:, 1:-1] & m[:, 1:-1, :-2] & m[:, 1:-1, 2:])
    return out


def measure(images: np.ndarray, sizes: np.ndarray, chunk: int = 2048) -> dict[str, np.ndarray]:
    """Features of (N, S, S) uint8 ink-high images with their original (height, width) sizes."""
    out: dict[str, list[np.ndarray]] = {k: [] for k in FEATURES}
    for i in range(0, len(images), chunk):
        x = np.asarray(images[i : i + chunk], dtype=np.float32) / 255
        sz = np.asarray(sizes[i : i + chunk], dtype=np.float64)
        m = x > INK_THRESHOLD
        n = np.maximum(m.sum((1, 2)), 1)
        depth = np.zeros(len(x), np.float64)
        e = m
        for _ in range(12):  # sum of survivors of k erosions = sum of distances to the background
            depth += e.sum((1, 2))
            e = _erode(e)
            if not e.any():
                break
        out["stroke_width"].append(2 * depth / n - 1)
        out["ink"].append((x * m).sum((1, 2)) / n)
        side = x.shape[1]
        h, w = np.maximum(sz[:, 0], 1), np.maximum(sz[:, 1], 1)
        box = side * side * np.minimum(h, w) / np.maximum(h, w)
        out["coverage"].append(n / box)
        out["aspect"].append(w / h)
        out["size"].append(np.maximum(h, w))
        yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
        wgt = m / n[:, None, None]
        my, mx = (wgt * yy).sum((1, 2)), (wgt * xx).sum((1, 2))
        cov = (wgt * (xx - mx[:, None, None]) * (yy - my[:, None, None])).sum((1, 2))
        var = (wgt * (yy - my[:, None, None]) ** 2).sum((1, 2))
        out["slant"].append(-cov / np.maximum(var, 1e-6))
    return {k: np.concatenate(v) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# The writer-style distribution, as a file users can calibrate and share

@dataclass
class StyleProfile:
    """Parameters of the distribution simulated writers are drawn from (see ``WriterStyle.sample``)."""

    size_mean: float = 64.0  # longer side of a character, px (log-normal around it)
    size_sigma: float = 0.12
    aspect_mu: float = -0.18  # log width/height scale
    aspect_sigma: float = 0.12
    slant_mu: float = 0.0
    slant_sigma: float = 0.10
    pen_scale: float = 1.0  # median pen width = 50 * pen_scale stroke units (log-normal)
    pen_sigma: float = 0.32  # spread of log pen width across writers (0.32 ~ the old 28-85 range)
    ink_base: float = 0.0  # darkest ink gray = ink_base + ink_scale * 90 * beta(1.2, 3), 0 = black
    ink_scale: float = 1.0
    speed_a: float = 2.0  # beta(a, b): speed -> smoother corners, joins, tapering
    speed_b: float = 2.5
    distortion: float = 1.0  # scales the writers' shape variation (stroke displacement, wobble, warps)
    proportion: float = 1.0  # scales, on top of distortion, the spread of part proportions (monotone x/y warps)
    simplify: float = 0.0  # 0..1: short strokes shrink towards dots (reduced, fast writing); 0 = off
    source: str = "built-in"

    def validate(self, where: str = "style profile") -> StyleProfile:
        checks = {"size_mean": (4, 1024), "size_sigma": (0, 2), "aspect_sigma": (0, 2), "slant_sigma": (0, 2),
                  "pen_scale": (0.05, 20), "pen_sigma": (0, 2), "ink_scale": (0, 3), "ink_base": (0, 200), "speed_a": (0.05, 100), "speed_b": (0.05, 100), "distortion": (0, 5),
                  "proportion": (0, 5), "simplify": (0, 1),
                  "aspect_mu": (-3, 3), "slant_mu": (-3, 3)}
        for k, (lo, hi) in checks.items():
            v = getattr(self, k)
            if not isinstance(v, (int, float)) or not (lo <= v <= hi) or v != v:
                raise HccrError(f"{where}: {k} = {v!r} is out of range [{lo}, {hi}]")
        return self

    def save(self, path: str | os.PathLike) -> Path:
        from ..utils import write_json

        write_json(path, {"format": "hccr-style/1", **asdict(self)})
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> StyleProfile:
        import json

        p = Path(path)
        if not p.is_file():
            raise HccrError(f"{p}: no such style profile")
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise HccrError(f"{p}: not a JSON style profile ({e})") from None
        if not isinstance(d, dict) or d.get("format") != "hccr-style/1":
            raise HccrError(f"{p}: not an hccr style profile (expected \"format\": \"hccr-style/1\"; "
                            "make one with hccr synth --calibrate)")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known - {"format", "fit"})
        if unknown:
            raise HccrError(f"{p}: unknown style field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        try:
            prof = cls(**{k: (float(v) if k != "source" else str(v)) for k, v in d.items() if k in known})
        except (TypeError, ValueError) as e:
            raise HccrError(f"{p}: a style field is not a number ({e})") from None
        return prof.validate(str(p))


DEFAULT_PROFILE = Path(__file__).resolve().parents[1] / "assets" / "style-default.json"


def default_profile() -> StyleProfile:
    """The shipped calibrated profile (``hccr/assets/style-default.json``), else the built-in one."""
    return StyleProfile.load(DEFAULT_PROFILE) if DEFAULT_PROFILE.exists() else StyleProfile()


# ---------------------------------------------------------------------------------------------
# Synthetic samples as a store would hold them, comparison and calibration

def synthetic_features(chars: list[str], profile: StyleProfile, writers: int = 24, seed: int = 31337,
                       size: int = 64, margin: float = 0.0, extra: dict | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Fresh synthetic samples of ``chars`` from ``profile``, normalised as ``hccr convert`` does:
    (N, size, size) ink-high images and their original sizes."""
    from ..preprocess import normalize
    from .synth import SynthConfig, writer_samples

    cfg = SynthConfig(chars="".join(chars), writers=writers, seed=seed)
    imgs, sizes = [], []
    for w in range(writers):
        for img, _ in writer_samples(chars, w, cfg, extra, profile=profile):
            imgs.append(normalize(img, size, margin))
            sizes.append(img.shape)
    return np.stack(imgs), np.asarray(sizes)


def calibration_chars(store_chars: list[str], limit: int = 60, seed: int = 0) -> list[str]:
    """Characters to simulate when matching a store: its own where the stroke data has them, else
    a sample of GB2312 (style, not shape, is being matched)."""
    from .charset import gb2312_chars
    from .strokes import has_strokes

    own = [c for c in store_chars if has_strokes(c)]
    if len(own) >= max(1, len(store_chars) // 2):
        pool = own
    else:
        pool = [c for c in gb2312_chars(level1_only=True) if has_strokes(c)]
    rng = np.random.default_rng(seed)
    return [pool[i] for i in np.sort(rng.choice(len(pool), min(limit, len(pool)), replace=False))]


def real_features(store, indices: np.ndarray | None = None, limit: int = 6000, seed: int = 0) -> dict:
    idx = np.arange(len(store)) if indices is None else np.asarray(indices)
    if len(idx) > limit:
        idx = np.sort(np.random.default_rng(seed).choice(idx, limit, replace=False))
    return measure(store.images[idx], store.sizes[idx])


def calibrate(real: dict[str, np.ndarray], chars: list[str], start: StyleProfile | None = None,
              iterations: int = 6, writers: int = 30, progress: bool = True) -> tuple[StyleProfile, list[dict]]:
    """Moment matching: simulate, measure, move each style parameter by the gap in its feature.

    Size, aspect and slant map directly onto writer parameters; stroke width onto the pen width
    (after size, since downscaling thins strokes); ink darkness onto the ink gray. Returns the
    profile and, per iteration, the synthetic medians it was measured at."""
    from dataclasses import replace

    p = replace(start or StyleProfile())
    r = {k: np.asarray(v, np.float64) for k, v in real.items()}
    history = []
    visited: list[StyleProfile] = []
    for it in range(iterations + 1):
        imgs, sizes = synthetic_features(chars, p, writers=writers, seed=1000 + it)
        s = measure(imgs, sizes)
        med = {k: float(np.median(v)) for k, v in s.items()}
        history.append({"iteration": it, "synthetic_median": med})
        if progress:
            print(f"calibrate {it}/{iterations}: " + "  ".join(f"{k} {med[k]:.3g} (real {np.median(r[k]):.3g})"
                                                              for k in FEATURES), flush=True)
        if it == iterations:
            break
        visited.append(p)

        def ratio(a: np.ndarray, b: np.ndarray) -> float:
            return float(np.clip(np.std(a) / max(np.std(b), 1e-6), 0.5, 2.0))

        d = 0.7  # damping: features interact (downscaling a bigger character thins its strokes)
        ls_r, ls_s = np.log(r["size"]), np.log(s["size"])
        la_r, la_s = np.log(r["aspect"]), np.log(s["aspect"])
        p = replace(
            p,
            size_mean=float(p.size_mean * np.exp(d * (np.median(ls_r) - np.median(ls_s)))),
            size_sigma=float(np.clip(p.size_sigma * ratio(ls_r, ls_s), 0.02, 0.6)),
            aspect_mu=float(p.aspect_mu + d * (np.median(la_r) - np.median(la_s))),
            aspect_sigma=float(np.clip(p.aspect_sigma * ratio(la_r, la_s), 0.02, 0.6)),
            slant_mu=float(p.slant_mu + d * (np.median(r["slant"]) - np.median(s["slant"]))),
            slant_sigma=float(np.clip(p.slant_sigma * ratio(r["slant"], s["slant"]), 0.02, 0.5)),
            pen_scale=float(np.clip(p.pen_scale * (np.median(r["stroke_width"]) / med["stroke_width"]) ** (1.3 * d),
                                    0.05, 20)),
            pen_sigma=float(np.clip(p.pen_sigma * ratio(np.log(r["stroke_width"].clip(0.3)),
                                                        np.log(s["stroke_width"].clip(0.3))) ** d, 0.02, 1.0)),
            ink_base=float(np.clip(p.ink_base + d * 255 * 1.2 * (med["ink"] - np.median(r["ink"])), 0, 200)),
        )
    # The measurements are noisy (a few hundred samples per iteration): average the last updates.
    tail = [*visited[-2:], p]
    mean = {f.name: float(np.mean([getattr(q, f.name) for q in tail])) for f in fields(StyleProfile)
            if f.name != "source"}
    return replace(p, **mean), history


DOMAIN_MIN = 100  # images a side the domain classifier needs before its held-out figure means anything


def domain_classifier(real: np.ndarray, synthetic: np.ndarray, steps: int = 1500, seed: int = 0,
                      size: int = 48) -> float:
    """Held-out accuracy of a small CNN trained to tell real from synthetic images (balanced;
    0.5 = indistinguishable). Images are (N, S, S) uint8 ink high, seen at ``size`` px (48: at 32
    a pen 1.5x heavier is already hard to see); 80/20 split per domain."""
    import torch
    from torch import nn

    n = min(len(real), len(synthetic))
    if n < DOMAIN_MIN:  # 20% of a side held out: fewer images would score a handful, after a minute of training
        raise HccrError(f"the domain classifier needs at least {DOMAIN_MIN} images on each side, got {n}: compare "
                        "a larger store (or more --writers)")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    a = real[rng.choice(len(real), n, replace=False)]
    b = synthetic[rng.choice(len(synthetic), n, replace=False)]
    x = torch.from_numpy(np.concatenate([a, b])).float().div_(255).unsqueeze(1)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="area")
    y = torch.cat([torch.ones(n), torch.zeros(n)])
    perm = torch.from_numpy(rng.permutation(2 * n))
    cut = int(0.8 * 2 * n)
    tr, te = perm[:cut], perm[cut:]
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1))
    opt = torch.optim.AdamW(net.parameters(), 2e-3)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(steps):
        bi = tr[torch.randint(len(tr), (64,), generator=gen)]
        loss = nn.functional.binary_cross_entropy_with_logits(net(x[bi]).squeeze(1), y[bi])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(x[te[i : i + 512]]).squeeze(1) for i in range(0, len(te), 512)]) > 0
    return float((pred == y[te].bool()).float().mean())


def compare(real: dict[str, np.ndarray], synthetic: dict[str, np.ndarray]) -> list[dict]:
    """One row per feature: real and synthetic median and IQR."""
    rows = []
    for k in FEATURES:
        a, b = real[k], synthetic[k]
        rows.append({"feature": k, "real_median": float(np.median(a)),
                     "real_iqr": f"{np.percentile(a, 25):.3g}-{np.percentile(a, 75):.3g}",
                     "synthetic_median": float(np.median(b)),
                     "synthetic_iqr": f"{np.percentile(b, 25):.3g}-{np.percentile(b, 75):.3g}"})
    return rows


def plot_histograms(real: dict[str, np.ndarray], synthetic: dict[str, np.ndarray], path: str | os.PathLike,
                    labels: tuple[str, str] = ("real", "synthetic")) -> Path:
    """Side-by-side histograms of every feature (matplotlib; no images, only distributions)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..utils import atomic_path

    fig, axes = plt.subplots(2, 3, figsize=(11, 6))
    for ax, k in zip(axes.flat, FEATURES, strict=True):
        lo, hi = np.percentile(np.concatenate([real[k], synthetic[k]]), [1, 99])
        bins = np.linspace(lo, hi, 40)
        ax.hist(real[k], bins, alpha=0.55, density=True, label=labels[0])
        ax.hist(synthetic[k], bins, alpha=0.55, density=True, label=labels[1])
        ax.set_title(k)
    axes.flat[0].legend()
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return path


def compare_store(real_store: str | os.PathLike, profile: StyleProfile, writers: int = 100,
                  classifier: bool = True, seed: int = 0) -> dict:
    """Real store vs fresh synthetic samples of the same (or stand-in) characters: the feature
    table, the domain classifier's held-out accuracy, and both feature sets (for plots)."""
    from .store import Store

    st = Store(real_store)
    chars = calibration_chars(list(st.charset), seed=seed)
    real = real_features(st, seed=seed)
    imgs, sizes = synthetic_features(chars, profile, writers=max(1, writers), seed=seed + 77,
                                     size=st.size, margin=float(st.manifest["normalization"]["margin"]))
    syn = measure(imgs, sizes)
    out = {"rows": compare(real, syn), "real": real, "synthetic": syn, "real_count": len(real["size"]),
           "synthetic_count": len(imgs), "chars": "".join(chars)}
    if classifier:
        idx = np.sort(np.random.default_rng(seed).choice(len(st), min(len(st), len(imgs)), replace=False))
        out["domain_accuracy"] = domain_classifier(st.images[idx], imgs, seed=seed) if len(idx) >= DOMAIN_MIN else None
    return out


def compare_stores(first: str | os.PathLike, second: str | os.PathLike, limit: int = 4000, seed: int = 0) -> dict:
    """Two stores (e.g. real scans and real trajectories drawn by hccr's pen), on the characters they
    share: the feature table, the domain classifier's held-out accuracy (0.5: indistinguishable) and both feature
    sets (for plots: ``real`` is the first store's, ``synthetic`` the second's)."""
    from .store import Store

    a, b = Store(first), Store(second)
    shared = sorted(set(a.charset) & set(b.charset))
    if not shared:
        raise HccrError(f"{first} and {second} share no character: nothing to compare like with like")
    rng = np.random.default_rng(seed)

    def pick(st) -> np.ndarray:
        ids = [st.charset.index[c] for c in shared]
        idx = np.flatnonzero(np.isin(np.asarray(st.labels), ids))
        return np.sort(rng.choice(idx, min(limit, len(idx)), replace=False))

    ia, ib = pick(a), pick(b)
    fa, fb = measure(a.images[ia], a.sizes[ia]), measure(b.images[ib], b.sizes[ib])
    domain = domain_classifier(a.images[ia], b.images[ib], seed=seed) if min(len(ia), len(ib)) >= DOMAIN_MIN else None
    return {"rows": compare(fa, fb), "real": fa, "synthetic": fb, "real_count": len(ia), "other_count": len(ib),
            "characters": len(shared), "domain_accuracy": domain}


def calibrate_store(real_store: str | os.PathLike, start: StyleProfile | None = None, progress: bool = True,
                    classes: str | None = None) -> StyleProfile:
    """A profile calibrated on a store's images (``classes``: only these characters' images)."""
    from dataclasses import replace

    from .store import Store

    st = Store(real_store)
    chars = list(st.charset)
    idx = None
    if classes:
        keep = [i for i, c in enumerate(chars) if c in set(classes)]
        if not keep:
            raise HccrError(f"{real_store}: none of {classes!r} is among its characters")
        idx = np.flatnonzero(np.isin(np.asarray(st.labels), keep))
        chars = [chars[i] for i in keep]
    real = real_features(st, idx)
    prof, _ = calibrate(real, calibration_chars(chars), start, progress=progress)
    return replace(prof, source=f"hccr synth --calibrate on {Path(real_store).name} "
                                f"({len(real['size'])} images of {len(chars)} characters)")
