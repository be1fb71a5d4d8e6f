"""Label audit: find likely label faults in a store (``hccr audit STORE``).

Two kinds of fault, two signals:

* **A sample labelled as the wrong character**: a model that never saw the sample (out-of-fold:
  the store is split into ``folds``, one model trained per fold on the others) assigns it
  confidently to another class.
* **A class that holds two characters** (an export that merged two folders, such as a 宀 folder
  that also held 宇): the class's samples form two well-separated groups in the feature space of
  a model that never saw these labels (the shipped ``gb2312-synth``, trained on synthetic handwriting
  only; out-of-fold models trained
  on the merged label learn to map both characters to one place and hide the split). Each class is split in two
  by k-means on those features; the separation
  (distance between the halves over their spread) is compared with the median class's, and
  classes at 4x or more are flagged. A class that is one character varies continuously and
  splits about as weakly as any other.

With ``--model`` the given model supplies answers and features instead of the folds: much faster,
but a model trained on these very labels has learnt their faults, so only a model trained
elsewhere (e.g. the shipped gb2312-synth for GB2312 characters) can vouch for the samples.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import HccrError


def two_means(f: np.ndarray, seed: int = 0, restarts: int = 4, iters: int = 30) -> np.ndarray:
    """Split rows of ``f`` into two groups (0/1) by k-means, best of a few farthest-point starts."""
    rng = np.random.default_rng(seed)
    best, best_cost = np.zeros(len(f), np.int64), np.inf
    for _ in range(restarts):
        a = f[rng.integers(len(f))]
        b = f[np.argmax(((f - a) ** 2).sum(1))]  # the point farthest from a random one
        centres = np.stack([a, b])
        for _ in range(iters):
            d = ((f[:, None, :] - centres[None]) ** 2).sum(-1)
            assign = d.argmin(1)
            if assign.min() == assign.max():
                break
            new = np.stack([f[assign == k].mean(0) for k in (0, 1)])
            if np.allclose(new, centres):
                break
            centres = new
        cost = ((f - centres[assign]) ** 2).sum()
        if cost < best_cost and assign.min() != assign.max():
            best, best_cost = assign, cost
    return best


def separation(f: np.ndarray, assign: np.ndarray) -> float:
    """How far apart two groups are: squared distance of their means along the line joining them,
    over the pooled variance of the samples projected on that line (a 1-D Fisher ratio)."""
    m0, m1 = f[assign == 0].mean(0), f[assign == 1].mean(0)
    axis = (m1 - m0) / max(float(np.linalg.norm(m1 - m0)), 1e-12)
    p = f @ axis
    var = (p[assign == 0].var() * (assign == 0).sum() + p[assign == 1].var() * (assign == 1).sum()) / len(p)
    return float((p[assign == 1].mean() - p[assign == 0].mean()) ** 2 / max(var, 1e-12))


def class_splits(features: np.ndarray, labels: np.ndarray, num_classes: int, min_share: float = 0.1, seed: int = 0,
                 dims: int = 16, ratio: float = 4.0) -> list[dict]:
    """For every class: its 2-means split and the split's separation, compared with the median
    class's (``ratio``). One character split in two gives about the same separation whatever the
    character (a unimodal cloud cut by k-means); two characters give several times more. Features
    of one model; fewer than 10 samples: skipped."""
    g = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)  # unit length,
    g = g - g.mean(0)
    _, _, vt = np.linalg.svd(g[:: max(1, len(g) // 20000)], full_matrices=False)
    f = g @ vt[: min(dims, features.shape[1])].T  # then few principal components: a split of dozens cannot overfit
    rows = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 10:
            continue
        assign = two_means(f[idx], seed + c)
        share = float(min(assign.mean(), 1 - assign.mean()))
        rows.append({"class": c, "count": len(idx), "separation": separation(f[idx], assign) if share > 0 else 0.0,
                     "minor_share": share, "groups": [idx[assign == 0], idx[assign == 1]]})
    if rows:
        med = float(np.median([r["separation"] for r in rows]))
        for r in rows:
            r["ratio"] = r["separation"] / max(med, 1e-12)
            r["suspect"] = bool(r["ratio"] >= ratio and r["minor_share"] >= min_share)
    return rows


def out_of_fold(store, out: Path, folds: int, epochs: int, preset: str, seed: int, progress: bool) -> np.ndarray:
    """Probabilities for every sample, from a model that did not train on it."""
    from .config import apply_overrides, get_preset
    from .data.store import store_view
    from .train import fit

    n = len(store)
    writers = np.asarray(store.writers)
    rng = np.random.default_rng(seed)
    uw = np.unique(writers)
    if len(uw) >= 2 * folds:  # whole writers per fold: a writer's style never leaks across
        wfold = np.empty(len(uw), np.int64)
        wfold[rng.permutation(len(uw))] = np.arange(len(uw)) % folds
        fold = wfold[np.searchsorted(uw, writers)]
    else:  # no writer ids (PNG exports): stratified random folds
        fold = np.zeros(n, np.int64)
        for c in np.unique(store.labels):
            idx = rng.permutation(np.flatnonzero(store.labels == c))
            fold[idx] = np.arange(len(idx)) % folds
    probs = np.zeros((n, len(store.charset)), np.float32)
    for k in range(folds):
        view = store_view(store.path, out / "folds" / f"store-{k}", np.where(fold == k, 1, 0))
        run = out / "folds" / f"model-{k}"
        cfg = apply_overrides(get_preset(preset), [f"epochs={epochs}", f"seed={seed + k}", "val_fraction=0",
                                                   f"image_size={min(get_preset(preset).image_size, store.size)}"])
        if not (run / "done").exists():
            fit(cfg, view, run, resume=(run / "last.state.pt").exists(), progress=progress)
            (run / "done").write_text("1\n")
        idx = np.flatnonzero(fold == k)
        probs[idx] = predict_with_features(run / "last.json", store, idx)[0]
    return probs


def predict_with_features(model_ref, store, idx: np.ndarray, batch: int = 256
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whole-image probabilities in the store's charset, pooled features, for ``store[idx]``, and for each of the
    store's characters whether the model knows it."""
    import torch

    from .checkpoint import load_checkpoint
    from .finetune import resolve_init
    from .predict import multicrop, to_model_input
    from .preprocess import InputSpec

    model, meta = load_checkpoint(resolve_init(model_ref), heads=False)
    spec = InputSpec.from_meta(meta["preprocessing"], crops=1)
    index = {c: i for i, c in enumerate(meta["charset"])}
    lut = np.array([index.get(c, -1) for c in store.charset])
    if (lut < 0).all():
        raise HccrError(f"{model_ref}: knows none of the characters of {store.path}")
    probs, feats = [], []
    with torch.inference_mode():
        for i in range(0, len(idx), batch):
            b = idx[i : i + batch]
            x = torch.from_numpy(np.ascontiguousarray(store.images[b])).unsqueeze(1).float().div_(255)
            v = to_model_input(multicrop(x, spec.size, 1), spec.ink)
            f = model.forward_features(v)
            z = model.forward_head(f).float()
            p = torch.softmax(z, -1).numpy()[:, np.maximum(lut, 0)] * (lut >= 0)
            probs.append(p / np.maximum(p.sum(1, keepdims=True), 1e-12))
            feats.append(f.float().numpy())
    return np.concatenate(probs), np.concatenate(feats), lut >= 0


def audit(store_path: str | os.PathLike, out: str | os.PathLike, model: str | None = None, folds: int = 2,
          epochs: int = 10, threshold: float = 0.9, preset: str = "fast-1", seed: int = 0,
          progress: bool = True) -> dict:
    """Audit a store's labels; writes ``audit.json``, ``audit.md`` and tile sheets to ``out``."""
    from .data.store import Store
    from .utils import write_json

    store, out = Store(store_path), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if folds < 2:
        raise HccrError(f"--folds must be at least 2, got {folds}")
    if model is not None:
        probs, feats, known = predict_with_features(model, store, np.arange(len(store)))
        source = f"model {model}"
    else:
        # Models trained on a merged class learn to map both of its characters to one place, so
        # the two-character check uses features of a model that never saw these labels: the
        # shipped gb2312-synth's (synthetic handwriting only, no real label ever; generic strokes and
        # shapes). Not the default gb2312, which learnt from real images of casia-hwdb-22's characters.
        # Read first: a store of characters it does not know fails here, before the folds train.
        _, feats, _ = predict_with_features("gb2312-synth", store, np.arange(len(store)))
        probs = out_of_fold(store, out, folds, epochs, preset, seed, progress)
        known = np.ones(len(store.charset), bool)  # the folds learn every character of the store
        source = (f"{folds}-fold out-of-fold {preset}, {epochs} epochs; class features from the shipped "
                  "gb2312-synth model")
    labels = np.asarray(store.labels)
    # a character the model cannot answer is not a label fault: counted apart
    unknown_chars = "".join(c for c, k in zip(store.charset, known, strict=True) if not k)
    unknown = ~known[labels]
    pred, conf = probs.argmax(1), probs.max(1)
    wrong = np.flatnonzero((pred != labels) & (conf >= threshold) & ~unknown)
    wrong = wrong[np.argsort(-conf[wrong])]
    chars = store.charset
    ids = store.sample_ids()  # where each sample came from, so a user can mend the source
    samples = [{"index": int(i), "label": chars[int(labels[i])], "predicted": chars[int(pred[i])],
                "confidence": float(conf[i]), **({"source": ids[i]} if ids else {})} for i in wrong]
    splits = class_splits(feats, labels, len(chars), seed=seed)
    suspects = sorted((r for r in splits if r["suspect"]), key=lambda r: -r["ratio"])
    for r in suspects:
        _class_sheet(store, r, out / f"class-{chars[r['class']]}.png")
    if samples:
        _sample_sheet(store, samples[:64], out / "samples.png")
    accuracy = float((pred == labels)[~unknown].mean()) if (~unknown).any() else float("nan")
    classes = [{"char": chars[r["class"]], "count": r["count"], "separation": round(r["separation"], 3),
                "ratio": round(r["ratio"], 2), "groups": [len(g) for g in r["groups"]], "suspect": r["suspect"]}
               for r in sorted(splits, key=lambda r: -r["ratio"])]
    result = {"store": str(store.path), "source": source, "samples": len(store), "accuracy": accuracy,
              "unknown_to_model": {"samples": int(unknown.sum()), "characters": unknown_chars},
              "threshold": threshold, "mislabelled": samples, "two_character_classes": [c for c in classes if c["suspect"]],
              "classes": classes}
    write_json(out / "audit.json", result)
    (out / "audit.md").write_text(_markdown(result), encoding="utf-8")
    return result


def _class_sheet(store, r: dict, path: Path, per_group: int = 24) -> None:
    from .report import save_png, tile_grid

    rows = []
    for g in r["groups"]:
        pick = np.sort(np.random.default_rng(0).choice(g, min(per_group, len(g)), replace=False))
        tiles = [255 - np.asarray(store.images[i]) for i in pick]
        tiles += [np.full_like(tiles[0], 255)] * (per_group - len(tiles))
        rows.append(tile_grid(tiles, per_group // 2))
    gap = np.full((8, rows[0].shape[1]), 128, np.uint8)  # a gray bar between the two groups
    save_png(np.concatenate([rows[0], gap, rows[1]]), path)


def _sample_sheet(store, samples: list[dict], path: Path) -> None:
    from .report import label_tile, save_png, tile_grid

    tiles = [label_tile(store.images[s["index"]], s["label"], 64, f"{s['confidence']:.2f}", s["predicted"])
             for s in samples]
    save_png(tile_grid(tiles, 8), path)


def _markdown(r: dict) -> str:
    lines = [f"# Label audit of {r['store']}", "",
             f"{r['samples']} samples; answers and features from {r['source']} (accuracy {r['accuracy']:.4f})."
             + (f" {r['unknown_to_model']['samples']} samples of characters the model does not know "
                f"({r['unknown_to_model']['characters'][:40]}) are left out: it cannot read them, so it cannot judge "
                "their labels." if r.get("unknown_to_model", {}).get("samples") else ""), "",
             "## Classes that look like two characters", ""]
    if r["two_character_classes"]:
        lines += ["| class | samples | groups | separation | x median |", "|---|---|---|---|---|"]
        lines += [f"| {c['char']} | {c['count']} | {c['groups'][0]} / {c['groups'][1]} | {c['separation']} | "
                  f"{c['ratio']} |" for c in r["two_character_classes"]]
        lines += ["", "Tile sheets: `class-<char>.png` (one group above the gray bar, the other below)."]
    else:
        lines.append("none flagged (no class splits far more cleanly than the others)")
    lines += ["", f"## Samples a model that never saw them reads as another class (confidence >= {r['threshold']})", ""]
    if r["mislabelled"]:
        lines += ["| sample | label | read as | confidence | source |", "|---|---|---|---|---|"]
        lines += [f"| {s['index']} | {s['label']} | {s['predicted']} | {s['confidence']:.3f} | "
                  f"{s.get('source', '(store made before sources were kept)')} |" for s in r["mislabelled"][:200]]
        lines += ["", "Tile sheet: `samples.png` (label > reading, confidence)."]
    else:
        lines.append("none")
    lines += ["", "## Every class, most suspect first", "", "| class | separation | x median |", "|---|---|---|"]
    lines += [f"| {c['char']} | {c['separation']} | {c['ratio']} |" for c in r["classes"][:30]]
    return "\n".join(lines) + "\n"
