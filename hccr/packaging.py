"""Turning a training run into a shippable model (fp16 safetensors + JSON, ONNX), its provenance,
calibration temperature and model card. The training side: needs torch (and onnx to export)."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import HccrError
from .zoo import DEFAULT_MODEL, SHIPPED, shipped_files


def divide_out_prior(model, counts, power: float = 1.0, undo: bool = False) -> int:
    """Fold the training class prior out of the classifier (post-hoc logit adjustment): the bias
    moves by ``-power * log prior``, so the model answers ``p / prior**power`` (normalised); at
    ``power`` 1 as if every class had been seen equally often. For runs on unbalanced data, e.g.
    real images of a few characters mixed into synthetic ones, which otherwise pull other
    characters towards those few; a power below 1 keeps part of that pull, for users whose
    characters are the ones with real images. ``undo``: put a prior divided out with the same counts and
    power back (a packaged model's bias as training left it, e.g. to average it with a run's). Returns the
    number of classes whose bias moved."""
    import numpy as np
    import torch

    counts = np.asarray(counts, np.float64)
    from .finetune import classifier_layers

    heads = classifier_layers(model, len(counts))
    if not heads or heads[-1].bias is None:
        raise HccrError(f"the model has no classifier layer with a bias and {len(counts)} outputs")
    if counts.sum() <= 0:
        raise HccrError("the training store holds no samples: no class prior to divide out")
    if not 0.0 < power <= 2.0:
        raise HccrError(f"the prior power must be in (0, 2], not {power}")
    prior = counts / counts.sum()
    shift = -power * np.log(np.maximum(prior, prior[prior > 0].min()))  # unseen classes count as the rarest
    shift -= np.median(shift)  # a constant shift changes nothing; keep the common classes where they were
    with torch.no_grad():
        heads[-1].bias += torch.as_tensor(-shift if undo else shift, dtype=heads[-1].bias.dtype,
                                          device=heads[-1].bias.device)
    return int((np.abs(shift) > 1e-6).sum())


def store_class_counts(run: str | os.PathLike) -> tuple[list[int], str]:
    """A run's training store: samples per class in the model's class order (a class the store lacks, e.g. one
    kept from the source by ``--keep-classes``, counts 0) and the store's name."""
    from .checkpoint import read_meta
    from .zoo import shipped_name

    if shipped_name(run):
        raise HccrError(f"--divide-prior: {run} is a shipped model, packaged with its prior already divided out; "
                        "package the run folder of a model you trained")
    folder, recorded = run_config(run)
    store = Path(recorded["store"]) if isinstance(recorded, dict) and recorded.get("store") else None
    if store is None:  # a lone checkpoint (an average, a copy) has no run folder that names its store
        raise HccrError(f"{run}: no config.json beside it names its training store, which --divide-prior needs; "
                        "package the run folder it was trained in (or leave --divide-prior out)")
    if not (store / "manifest.json").exists():
        raise HccrError(f"{folder}: its training store ({store}) is needed to divide out the class prior; run this "
                        "where the store is")
    per_char = counts_per_char(store)
    return [per_char.get(c, 0) for c in read_meta(run)["charset"]], store.name


def run_config(run: str | os.PathLike) -> tuple[Path, dict | None]:
    """A run's folder and the config.json training wrote there (None beside a lone checkpoint: a copy, an
    average, a packaged model)."""
    from .utils import read_json

    folder = Path(run) if Path(run).is_dir() else Path(run).parent
    cfg = folder / "config.json"
    return folder, (read_json(cfg, "run configuration") if cfg.exists() else None)


def init_prior_note(run: str | os.PathLike) -> str | None:
    """A warning for ``package --divide-prior`` when the run started from a model whose classifier bias
    already had a class prior divided out (a packaged model): dividing again raises the rare classes twice."""
    init = (run_config(run)[1] or {}).get("init") or {}
    if "prior_power" not in init:
        return None
    return (f"note: {run} started from {init['init']}, whose bias already had its class prior divided "
            f"out (power {init['prior_power']:g}); --divide-prior divides again, so the rare classes are "
            "raised twice. To divide once, start the run from a checkpoint with its prior put back "
            "(hccr.packaging.divide_out_prior, undo=True)")


def counts_per_char(store: str | os.PathLike) -> dict[str, int]:
    """Samples per character of a store."""
    import numpy as np

    from .data.store import Store

    st = Store(store)
    counts = np.bincount(np.asarray(st.labels), minlength=len(st.charset)).tolist()
    return dict(zip(st.charset, counts, strict=True))


def package(run: str | os.PathLike, out_stem: str | os.PathLike, provenance: dict | None = None,
            crops: int = 1, class_counts: list[int] | None = None, prior_power: float = 1.0
            ) -> tuple[Path, Path]:
    """A training run -> a shippable model: fp16 safetensors + JSON (training-only parts and
    absolute paths dropped, provenance added) and an ONNX file with fp16-stored weights.
    ``class_counts`` (the training store's samples per class) folds the class prior out of the
    classifier (:func:`divide_out_prior`, to the power ``prior_power``)."""
    import torch

    from .checkpoint import load_checkpoint, model_stem, save_checkpoint, staged_model
    from .export import export_onnx, store_weights_fp16
    from .preprocess import InputSpec

    model, meta = load_checkpoint(run, heads=False)  # deep supervision serves training only: not shipped
    InputSpec.from_meta(meta["preprocessing"], crops)  # a bad --crops fails here, before any file is written
    if class_counts is not None:
        if len(class_counts) != meta["model_args"]["num_classes"]:
            raise HccrError(f"{run}: {len(class_counts)} class counts for {meta['model_args']['num_classes']} classes")
        shifted = divide_out_prior(model, class_counts, prior_power)
        meta["prior_correction"] = {"classes_shifted": shifted, "min_count": int(min(class_counts)),
                                    "max_count": int(max(class_counts)), "power": prior_power,
                                    "what": "training class prior (to this power) divided out of the classifier bias"}
    out_stem = model_stem(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    keep = {k: v for k, v in meta.items() if k not in ("format", "hccr_version", "created", "store", "averaged_from")}
    keep["store"] = Path(meta.get("store", "")).name  # no absolute path in shipped metadata
    keep["config"] = portable_config(meta.get("config", {}))
    keep["provenance"] = provenance or {}
    keep["weights_dtype"] = "float16"
    keep["preprocessing"] = {**meta["preprocessing"], "crops": crops}  # the .json predicts as the .onnx does
    model = model.to(torch.float16)
    with staged_model(out_stem) as part:  # no half model is left, nor a half-replaced one
        save_checkpoint(part, model, keep)
        export_onnx([f"{part}.json"], f"{part}.onnx", crops=crops, member_names=[out_stem.name])
        store_weights_fp16(f"{part}.onnx")
    return Path(f"{out_stem}.json"), Path(f"{out_stem}.onnx")


def portable_config(config: dict) -> dict:
    """A training config without absolute paths: an ``init`` file keeps its folder and name
    (``run/last.json``), a run folder its name."""
    init = Path(str(config.get("init") or ""))
    if init.is_absolute():
        return {**config, "init": "/".join(init.parts[-2:] if init.suffix else init.parts[-1:])}
    return dict(config)


def record_evaluations(ckpt: str | os.PathLike, entries: list[dict], replaces: str | None = None) -> None:
    """Add measured figures to a checkpoint's ``evaluations`` (the model card lists them): an entry
    replaces the ones made by the same command (or, with ``replaces``, by any command starting with
    it: one benchmark run with other options), the others stay."""
    from .utils import read_json, write_json

    meta = read_json(ckpt)
    commands = {e.get("command") for e in entries}
    old = (lambda c: c.startswith(replaces)) if replaces else (lambda c: c in commands)
    meta["evaluations"] = [e for e in meta.get("evaluations", []) if not old(e.get("command") or "")] + entries
    write_json(ckpt, meta)


def _style_name(style: str | None) -> str | None:
    """``hccr synth --style`` without the folders of its file: ``components:/runs/x/bank.npz`` -> ``components:bank.npz``."""
    if not style:
        return None
    kind, _, path = str(style).rpartition(":")
    return f"{kind}:{Path(path).name}" if kind else Path(path).name


def run_provenance(run: str | os.PathLike, recipe: str = "") -> dict:
    """What made a run: recipe, data (synthetic writers, fonts by file name), steps, samples, time."""
    import json

    from .checkpoint import read_meta
    from .utils import read_json

    run = Path(run)
    meta = read_meta(run)
    sources = meta.get("averaged_from")
    if sources:  # `hccr average`: the parts' provenance, and the totals of what went in
        return averaged_provenance([run_provenance(s) for s in sources], recipe)  # each part's own checkpoint
    folder, c = run_config(run)
    recorded = meta.get("provenance")
    if recorded and c is None:  # a packaged model (the shipped one): what it recorded
        return {**recorded, "recipe": recipe or recorded.get("recipe", "")}
    prov: dict = {"recipe": recipe}
    if c is not None:
        prov.update(train_samples=c.get("train"), val_samples=c.get("val"), device=c.get("device"),
                    world_size=c.get("world_size"), total_steps=c.get("total_steps"),
                    batch_size=c["config"].get("batch_size"), lr=c["config"].get("lr"))
        if c["config"].get("init"):  # a further round: what the starting model was (as recorded when it began)
            prov["continued_from"] = c.get("init_provenance") or init_provenance(c["config"]["init"])
        store = Path(c.get("store", ""))
        if (store / "manifest.json").exists():
            m = read_json(store / "manifest.json")
            held = (m.get("options") or {}).get("val_writers") or []
            if held:
                prov["validation"] = (f"{m.get('val')} samples of {len(held)} writers held out whole (never trained "
                                      f"on; validation and calibration): {', '.join(held)}")
        from .data.synth import settings_records

        syn = [_synth_provenance(read_json(r)) for d in _synth_folders(store) for r in settings_records(d)]
        if syn:  # the first folder's writers; a second generator's (L2=components+builtin) in synthetic_more
            prov["synthetic"] = syn[0]
            if len(syn) > 1:
                prov["synthetic_more"] = syn[1:]
    if (folder / "metrics.jsonl").exists():
        rows = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines() if x.strip()]
        if rows:
            secs = sum(r.get("train_seconds", 0.0) for r in rows)
            prov.update(epochs=len(rows), steps=rows[-1].get("step"), train_seconds=round(secs, 1),
                        train_img_per_s=round(sum(r.get("train_img_per_s", 0) * r.get("train_seconds", 0)
                                                  for r in rows) / max(secs, 1e-9), 1),
                        val_acc_curve=[round(r.get("val_acc", float("nan")), 4) for r in rows])
    return prov


def averaged_provenance(parts: list[dict], recipe: str = "") -> dict:
    """The provenance of a weight average (`hccr average`) from its parts': the totals of steps and
    time, each folder of synthetic writers once (parts that trained on one store share theirs), and
    what every part agrees on (validation writers, device, batch)."""
    prov: dict = {"recipe": recipe, "averaged": parts}
    for key in ("steps", "epochs", "train_seconds", "train_samples"):
        if all(isinstance(p.get(key), (int, float)) for p in parts):
            prov[key] = round(sum(p[key] for p in parts), 1)
    syn: list[dict] = []
    for p in parts:
        for s in (p.get("synthetic"), *p.get("synthetic_more", [])):
            if s and s not in syn:
                syn.append(s)
    if syn:
        prov["synthetic"] = syn[0]
        if len(syn) > 1:
            prov["synthetic_more"] = syn[1:]
    for key in ("validation", "val_samples", "device", "world_size", "batch_size"):  # where the parts agree
        if key in parts[-1] and all(p.get(key) == parts[-1][key] for p in parts):
            prov[key] = parts[-1][key]
    if "device" in prov and all(p.get("train_seconds") and p.get("train_img_per_s") for p in parts):
        prov["train_img_per_s"] = round(sum(p["train_img_per_s"] * p["train_seconds"] for p in parts)
                                        / sum(p["train_seconds"] for p in parts), 1)
    return prov


def _synth_folders(store: Path) -> list[Path]:
    """The folders of synthetic writers a store was converted from (each records the settings it was drawn with)."""
    from .data.synth import settings_records
    from .utils import read_json

    m = read_json(store / "manifest.json") if (store / "manifest.json").exists() else {}
    folders = sorted({p if p.is_dir() else p.parent for p in map(Path, m.get("sources") or [])})
    return [d for d in folders if settings_records(d)]


def _synth_provenance(s: dict) -> dict:
    return {"writers": s.get("writers"), "seed": s.get("seed"), "characters": s.get("characters"),
            "fonts": [Path(f).name for f in s.get("fonts", [])], "font_fraction": s.get("font_fraction"),
            "style": _style_name(s.get("style"))}


def _count(p: dict, key: str, what: str = "") -> str:
    """``"1,234 training "`` where the provenance records the count, ``"the "`` where it does not."""
    return f"{p[key]:,} {what}" if isinstance(p.get(key), int) else "the "


def _synthetic_text(syn: dict) -> str:
    """One folder of synthetic writers, as the model card names it."""
    who = ("writers drawn from real writers' components (hccr.data.components: each character's stroke medians cut "
           "into components that level-1 characters share, each drawn with one real writer's strokes of it; the "
           "bank holds the training writers' level-1 samples only)"
           if str(syn.get("style") or "").startswith("components:") else "simulated writers")
    fonts = (f"; fonts as extra shape sources for {syn.get('font_fraction')} of samples: " + ", ".join(syn["fonts"])
             if syn.get("fonts") else "; no fonts")
    return (f"{syn.get('writers', '?')} {who} x {syn.get('characters', '?')} characters (seed {syn.get('seed', '?')}), "
            f"stroke medians of hanzi-writer-data{fonts}")


def init_provenance(ref: str, meta: dict | None = None) -> dict:
    """The name, recipe, steps and training time of the model a run started from (``--init``;
    ``meta``: its metadata, when the caller has read it already)."""
    from .checkpoint import read_meta
    from .finetune import resolve_init

    try:
        path = resolve_init(ref)
        p = (read_meta(path) if meta is None else meta).get("provenance") or run_provenance(path)  # packaged, or a run
    except HccrError:  # the starting model is gone: keep its name
        p = {}
    name = str(ref) if "/" not in str(ref) else "/".join(Path(ref).parts[-2:])  # no home folders in a shipped file
    return {"model": name, **{k: p[k] for k in ("recipe", "steps", "train_seconds", "lr", "continued_from", "averaged")
                              if k in p}}


def lineage(init: dict) -> str:
    """The chain of rounds a model continued: `gb2312-r3/run` (itself ...; continued from `gb2312` (itself ...))."""
    recipe = f"itself `{init['recipe']}`: " if init.get("recipe") else ""
    lr = f" at lr {init['lr']}" if init.get("lr") is not None else ""  # an average has no one rate
    text = f"`{init['model']}` ({recipe}{init.get('steps', '?')} steps{lr}, {init.get('train_seconds', '?')} s of training-loop time"
    return text + (f"; continued from {lineage(init['continued_from'])})" if init.get("continued_from") else ")")


def parts_lines(parts: list[dict], indent: str = "") -> list[str]:
    """The model card's lines for the runs of an average: the round each continued, and a run that is itself an
    average (e.g. an earlier shipped soup averaged with its continuation) with its own runs beneath it."""
    lines = []
    for k, q in enumerate(parts, 1):
        if q.get("averaged"):
            lines.append(f"{indent}- run {k} is itself an average of {len(q['averaged'])} runs"
                         + (f" (`{q['recipe']}`)" if q.get("recipe") else "") + ":")
            lines += parts_lines(q["averaged"], indent + "  ")
        elif q.get("continued_from"):
            lines.append(f"{indent}- run {k} continued from {lineage(q['continued_from'])}")
    return lines


def parts_lr(parts: list[dict]) -> str:
    """The learning rates of an average's runs, in order; a run that is itself an average in brackets."""
    return " then ".join(f"({parts_lr(q['averaged'])})" if q.get("averaged") else str(q.get("lr", "?")) for q in parts)


def lineage_totals(p: dict, seen: set | None = None) -> tuple[int, float]:
    """Optimizer steps and training-loop seconds of a model's own runs and of every round they descend
    from, each round counted once (the runs of an average may share their ancestors; a run that is itself an
    average counts its own runs)."""
    seen = set() if seen is None else seen
    steps, seconds = 0, 0.0
    parts = sorted(p.get("averaged") or [p], key=lambda q: not q.get("averaged"))  # averages first: a run continued
    for node in [*parts, p.get("continued_from")]:  # from one may record it without its parts
        while node:
            n = node.get("steps", node.get("total_steps"))
            key = (node.get("recipe"), n, node.get("train_seconds"), node.get("lr"))
            if key in seen:  # this round and all before it are counted already
                break
            seen.add(key)
            s, t = lineage_totals(node, seen) if node.get("averaged") else (int(n or 0), float(node.get("train_seconds") or 0))
            steps, seconds = steps + s, seconds + t
            node = node.get("continued_from")
    return steps, seconds


LICENCE = """The weights were learned from synthetic handwriting drawn from the stroke data of
hanzi-writer-data (derived from Make Me a Hanzi, which took it from fonts by Arphic Technology),
distributed under the Arphic Public License (hccr/assets/ARPHICPL.TXT); where fonts were used as
extra shape sources they are named under Training data, each under its own licence. hccr's code is
Apache-2.0."""
NO_REAL = " No CASIA-HWDB image was used to train this model."
REAL_LICENCE = """

Real handwriting was mixed into its training ({real}). CASIA's databases (CASIA-HWDB, CASIA-OLHWDB) are released by the
Institute of Automation, Chinese Academy of Sciences, free for academic research; check their terms
before any other use of this model. `gb2312-synth` (`--model gb2312-synth`) was trained on
synthetic handwriting alone and owes nothing to CASIA's data."""


def write_model_card(model: str | None, out: str | os.PathLike) -> Path:
    """Render a model card (Markdown) from a checkpoint's metadata."""
    from .checkpoint import read_meta
    from .utils import atomic_path

    path = shipped_files(model or DEFAULT_MODEL)[0] if (model is None or model in SHIPPED) else Path(model)
    if path.suffix == ".onnx":  # a packaged model's training metadata is in the checkpoint JSON beside it
        if not path.with_suffix(".json").exists():
            raise HccrError(f"{path}: an ONNX file carries no training metadata; give the checkpoint it was "
                            "exported from (its .json)")
        path = path.with_suffix(".json")
    meta = read_meta(path)
    p = meta.get("provenance", {})
    syn = p.get("synthetic", {})
    cfg = meta.get("config", {})
    n = meta["model_args"]["num_classes"]
    name = model or DEFAULT_MODEL
    real = p.get("real")
    parts = p.get("averaged", [])  # `hccr average`: each run's provenance
    init = p.get("continued_from")  # a further round: the model it started from
    lr = parts_lr(parts) if parts else cfg.get("lr")
    total_steps, total_seconds = lineage_totals(p)
    lines = [f"# Model card: `{name}`", "",
             "_Generated by `hccr model-card` from the model's metadata; do not edit by hand._", "",
             "## What it recognises", "",
             f"Single handwritten characters, one per image: {n:,} classes"
             + (" (all of GB2312: 3,755 level-1 and 3,008 level-2 hanzi)." if n == 6763 else "."),
             "Input: an image of one character (gray or colour, any size). hccr flattens the paper, inverts "
             "light-on-dark images, crops to the ink and pads to a square (aspect kept) before resizing, so a "
             "character anywhere on a blank page is found. It does not read words or lines (it warns when an "
             "image looks like several characters), or characters outside its list.", "",
             "## Model", "",
             f"- architecture: `{meta['arch']}` {json_inline(meta['model_args'])}",
             f"- input: {meta['preprocessing']['image_size']} px, ink {meta['preprocessing']['ink']}, "
             f"{meta['preprocessing'].get('crops', 5)} crop(s); "
             f"{meta.get('weights_dtype', 'float32')} weights",
             f"- files: `hccr/assets/{name}.safetensors` + `.json` (PyTorch, `--init`), `{name}.onnx` "
             "(ONNX Runtime; fp16-stored weights, fp32 compute)" if name in SHIPPED else "", "",
             "## Training data", "",
             f"- real handwriting: {real}" if real else None,
             f"- class prior: {meta['prior_correction']['what']} (samples per class "
             f"{meta['prior_correction']['min_count']}-{meta['prior_correction']['max_count']}), so the classes with "
             "real images do not pull other characters towards them" if meta.get("prior_correction") else None,
             f"- synthetic handwriting{'' if real else ' only'}: {_synthetic_text(syn)}" if syn else
             None if real else f"- {_count(p, 'train_samples', 'training ')}samples of its store "
             "(no synthetic writers or real-data note recorded: `hccr package --real-data` names the data)",
             *(f"- and: {_synthetic_text(more)}" for more in p.get("synthetic_more", [])),
             f"- writer simulation: {p['generator']}" if p.get("generator") else None,
             f"- validation: {p['validation']}" if p.get("validation") else
             f"- validation: {p.get('val_samples', '?')} samples of writers held out whole (unseen synthetic writers)"
             if syn and not real else f"- validation: {_count(p, 'val_samples')}samples of its store's validation "
             "split" + ("" if parts or meta.get("averaged_from") else "; the checkpoint that read them best is the one "
                        "packaged"),
             "", "## Recipe", "",
             f"- `{p['recipe']}`" if p.get("recipe") else None,
             f"- weights: the average of {len(parts)} runs' (`hccr average`): "
             + "; ".join(f"an average of {len(q['averaged'])} runs ({q.get('steps', '?')} steps in all; below)"
                         if q.get("averaged") else
                         f"{q.get('steps', '?')} steps on {q.get('train_samples', '?')} samples "
                         f"(writers seed {q.get('synthetic', {}).get('seed', '?')}, on {q.get('device', '?')})"
                         for q in parts)
             if parts else None,
             *parts_lines(parts),
             f"- continued from {lineage(init)}; this round:" if init else None,
             f"- loss {cfg.get('loss')} (label smoothing {cfg.get('label_smoothing')}), {cfg.get('optimizer')} "
             f"lr {lr}, batch {cfg.get('batch_size')}, {cfg.get('schedule')} schedule, "
             + (f"{p.get('steps', '?')} steps in the averaged runs" if parts else
                f"{p.get('steps', '?')} steps ({p.get('epochs', '?')} epochs over {p.get('train_samples', '?')} samples)"),
             f"- {'the averaged runs ' if parts else ''}trained on {p.get('device', '?')} in "
             f"{p.get('train_seconds', '?')} s of training-loop time ({p.get('train_img_per_s', '?')} img/s)"
             + (f"; {total_steps:,} steps and {total_seconds:,.0f} s with every earlier round (above)"
                if total_steps > (p.get("steps") or 0) else "") if p.get("device") or not parts else
             f"- trained in {p.get('train_seconds', '?')} s of training-loop time, summed over runs on different "
             "devices (above)", "",
             "## Measured", "",
             f"- {'unseen synthetic writers' if syn and not real else 'its validation samples'}, {n:,}-way: top-1 "
             f"{meta['metrics']['val_acc']:.4f}"
             + (" (before the class prior was divided out)" if meta.get("prior_correction") else "")
             if meta.get("metrics", {}).get("val_acc") is not None else None]
    for ev in meta.get("evaluations", []):
        lines.append(f"- {ev['what']}: " + ", ".join(f"{k} {v}" for k, v in ev["result"].items())
                     + (f" ({ev['command']})" if ev.get("command") else ""))
    cal = meta.get("calibration")
    if cal:
        lines.append(f"- confidence calibration: softmax temperature {cal['temperature']:.3f} fitted with `hccr calibrate` "
                     f"on {cal.get('images', '?')} real images ({cal.get('data', '?')}, {cal.get('split', '')}), ECE "
                     f"{cal.get('ece_before', '?')} -> {cal.get('ece_after', '?')} there"
                     + (f" ({cal['note']})" if cal.get("note") else "") + "; applied by every recognizer (an .onnx file run without hccr answers uncalibrated: docs/onnx.md)")
    online = bool(real and p.get("validation"))  # real writers in training, some held out whole
    limits = [
        "- level-2 characters were learnt from synthetic handwriting (no real writer in the training data wrote "
        "them, but for the few among casia-hwdb-22's characters): expect them to read worse than level-1 ones "
        "(see Measured: the expected accuracy on level-2; synthetic writers' figures read higher); fine-tune on "
        "your own images for them;",
        "- real writers' trajectories (online) are drawn by hccr's pen, fitted to scans; scans of other pens, "
        "paper and resolutions may read differently (see the casia-hwdb-22 figures);",
        "- probabilities are calibrated on the validation writers (see Measured); check calibration on your own "
        "data (`hccr calibrate`) before thresholding."] if online else [
        ("- trained mostly on synthetic handwriting (real images of a few characters only): "
         if real else "- trained on synthetic handwriting: ")
        + "real handwriting of a style far from the simulation reads worse (see Measured); fine-tune on your "
        "own images for your domain;" if syn else
        "- it reads what its store taught it: handwriting unlike those samples may read worse; measure it on your "
        "own (`hccr evaluate`) before relying on it;",
        f"- probabilities are calibrated on {cal.get('images', '?')} real images ({cal.get('data', '?')}; see Measured); "
        "check calibration on your own data (`hccr calibrate`) before thresholding." if cal else
        "- probabilities are not calibrated: fit a temperature with `hccr calibrate` on labelled images it did not "
        "train on before thresholding them."]
    lines += ["", "Full figures, commands and machines: docs/results.md.", "",
              "## Limits", "",
              "- one character per image; GB2312 only (no traditional-only or extension characters);", *limits, "",
              "## Licence", "", LICENCE + (REAL_LICENCE.format(real=real) if real else NO_REAL), ""]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(line for line in lines if line is not None) + "\n", encoding="utf-8")
    return out


def json_inline(d: dict) -> str:
    import json

    return "`" + json.dumps({k: v for k, v in d.items() if k not in ("num_classes",)}, ensure_ascii=False) + "`"


def _is_twin(onnx_path: Path) -> bool:
    """Whether the ``.json`` beside an ``.onnx`` file is an hccr checkpoint of the same characters (a package's two
    files), read before either is written; any other JSON there (an app's config) is left alone."""
    from .checkpoint import read_meta

    twin = onnx_path.with_suffix(".json")
    if not twin.exists():
        return False
    try:
        charset = read_meta(twin)["charset"]
    except HccrError:
        return False
    import onnx

    meta = {e.key: e.value for e in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    return meta.get("charset") == charset


def _with_temperature(path: Path, temperature: float, info: dict) -> bytes:
    """The bytes of a checkpoint's JSON (``calibration``) or an ``.onnx`` file (metadata ``temperature``; sealed if
    it was not) recording ``temperature``."""
    from .checkpoint import read_meta
    from .utils import json_text

    if path.suffix == ".json":
        return json_text({**read_meta(path), "calibration": {"temperature": temperature, **info}}).encode("utf-8")
    import onnx

    m = onnx.load(str(path))
    kept = [e for e in m.metadata_props if e.key != "temperature"]
    del m.metadata_props[:]
    m.metadata_props.extend(kept)
    entry = m.metadata_props.add()
    entry.key, entry.value = "temperature", repr(float(temperature))
    if not any(e.key == "graph_sha256" for e in m.metadata_props):
        from .export import seal

        seal(m)
    return m.SerializeToString()


def write_temperature(model: str | os.PathLike, temperature: float, info: dict) -> list[Path]:
    """Record a fitted temperature in a model: a checkpoint's JSON (``calibration``), an ``.onnx``
    file's metadata (``temperature``), or both files of a shipped or packaged model (a checkpoint JSON
    with an ``.onnx`` of the same stem beside it). Returns the files written."""
    from .checkpoint import resolve
    from .integrity import Checker
    from .utils import write_together

    Checker(model).temperature(temperature, "temperature")  # never record a temperature no loader accepts
    paths: list[Path] = []
    if str(model) in SHIPPED:
        ckpt, onnx_path = shipped_files(str(model))
        paths = [ckpt, onnx_path]
    elif str(model).endswith(".onnx"):  # a packaged model's checkpoint twin answers the same (--init reads it)
        paths = [Path(model)] + ([Path(model).with_suffix(".json")] if _is_twin(Path(model)) else [])
    else:
        paths = [resolve(model)]
        if paths[0].with_suffix(".onnx").exists():  # a packaged model's ONNX twin answers the same
            paths.append(paths[0].with_suffix(".onnx"))
    write_together([(p, _with_temperature(p, temperature, info)) for p in paths])  # all read and changed first
    return paths
