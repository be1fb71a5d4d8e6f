"""Characters never seen in real form: how well each handwriting generator teaches them.

    python -m benchmarks protocol [--generators builtin calibrated learned learned-zero components] [--steps 1200]

The cross-character protocol, on a fixed subset: 1,000 level-1 characters drawn with seed 33, of
which B = 300 (drawn with the same seed, before any generator was tried) have no real training data.

- A (700 characters): real trajectories of CASIA-OLHWDB1.1's 210 training writers, drawn by hccr's pen;
- B (300 characters): synthetic only, 100 writers (seed 4000) of the generator under test (``a&b``: of
  both); the learned writer model and the component bank (``components``) are made from the training
  writers' samples of A only: B's real samples are never seen, by the generator or the recognizer;
- the same recipe and budget per generator: lean ResNet from scratch, ``--steps`` steps of 256 (gb2312's);
- scored on the 10 validation writers' real samples of all 1,000 characters, 1,000-way: A and B apart, as
  trained and with the training class prior divided out (``_prior``: B's characters have fewer samples), as
  the shipped models are packaged. The gap B - A is the figure a generator moves;
- and with the network's last layer replaced by the mean-map head (``_meanmap``, hccr.headfit: B's synthetic
  class means moved to where real samples would put them, by a map fitted on A's real and synthetic means;
  ``_lda``: the same head without the map, the control).

``--mix``: the synthetic writers draw A's characters too (100 writers x 1,000 characters), so that
looking synthetic is no clue to being in B; results are named ``GENERATOR+mix`` (``+50w``: ``--writers 50``).
``--a-writers N`` (with ``--mix``): only the first N synthetic writers of each generator draw A's characters,
as the shipped ``gb2312`` has fewer simulated writers of its real-taught level 1 than of level 2 (``+40wA``).
``--steps N`` other than 1,200 trains the same data longer or shorter (``+Ns``).
``--domain-loss W`` trains with hccr's domain-adversarial loss (``+dannW``); ``--stroke-jitter A`` draws the
generators that write trajectories with each stroke moved on its own (``hccr convert --stroke-jitter``; ``+jitA``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from common import OUT, ROOT, convert_once, machine, olhwdb_writers, save, store_is_current

from hccr.config import apply_overrides, get_preset
from hccr.data.charset import Charset, gb2312_chars
from hccr.data.store import ConvertOptions, Store
from hccr.data.synth import SynthConfig, synth
from hccr.packaging import record_evaluations
from hccr.predict import Recognizer
from hccr.runtime import predict_inputs
from hccr.train import fit
from hccr.utils import read_json, use_all_cores

GENERATORS = {  # name -> hccr synth --style
    "builtin": str(ROOT / "hccr" / "assets" / "style-builtin.json"),  # the generator gb2312-synth learnt from
    "calibrated": None,  # hccr's default profile, calibrated on casia-hwdb-22's scans
    "learned": "learned:{model}",
    "learned-zero": "learned-zero:{model}",
    "components": "components:{bank}",  # real writers' components of A's characters (hccr.data.components)
}
POWERS = {"": 0.0, "_prior0.5": 0.5, "_prior": 1.0}  # result key suffix -> power of the class prior divided out


def split(seed: int = 33, n: int = 1000, b: int = 300) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    level1 = np.array(gb2312_chars(True))
    chars = rng.choice(level1, n, replace=False)
    b_chars = set(rng.permutation(chars)[:b].tolist())
    return [c for c in chars if c not in b_chars], sorted(b_chars)


def merge(parts: list[tuple[Path, np.ndarray]], charset: Charset, out: Path) -> Path:
    """One training store from (store, sample indices) parts, labels mapped onto ``charset`` (replaces
    what ``out`` held)."""
    from hccr.data.render import RENDER_VERSION

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    stores = [(Store(p), idx) for p, idx in parts]
    n = sum(len(i) for _, i in stores)
    images = np.lib.format.open_memmap(out / "images.npy", mode="w+", dtype=np.uint8, shape=(n, 64, 64))
    labels, sizes, writers, names, pos = [], [], [], [], 0
    for st, idx in stores:
        rows = np.sort(idx)
        images[pos : pos + len(idx)] = st.images[rows]
        remap = np.array([charset.index[c] for c in st.charset])
        labels.append(remap[st.labels[rows]])
        sizes.append(st.sizes[rows])
        w = st.writers[rows]  # writer names kept (real ones numbered, synthetic ones PREFIX0000)
        writers.append(np.where(w >= 0, w + len(names), -1))
        names += st.writer_names
        pos += len(idx)
    images.flush()
    np.save(out / "labels.npy", np.concatenate(labels).astype(np.int32))
    np.save(out / "sizes.npy", np.concatenate(sizes))
    np.save(out / "writers.npy", np.concatenate(writers).astype(np.int32))
    np.save(out / "split.npy", np.zeros(n, np.uint8))
    charset.save(out / "charset.txt")
    (out / "writers.txt").write_text("".join(f"{w}\n" for w in names), encoding="utf-8")
    (out / "manifest.json").write_text(json.dumps({"format": "hccr-store/1", "count": n, "train": n, "val": 0,
                                                   "classes": len(charset), "normalization": {"margin": 0.0},
                                                   "render_version": RENDER_VERSION}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--generators", nargs="*", default=list(GENERATORS))
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--writers", type=int, default=100, help="synthetic writers of the B characters")
    ap.add_argument("--mix", action="store_true", help="synthetic writers draw A's characters too")
    ap.add_argument("--a-writers", type=int, help="with --mix: synthetic writers of A's characters (default --writers)")
    ap.add_argument("--work", type=Path, default=OUT / "protocol")
    ap.add_argument("--domain-loss", type=float, default=0.0, help="train with hccr's domain-adversarial loss at this "
                    "weight (--set domain_loss; results named +dannW)")
    ap.add_argument("--stroke-jitter", type=float, default=0.0, help="draw the synthetic writers' trajectories (.pot: "
                    "the components and learned generators; the built-in one writes images) with each stroke moved on "
                    "its own by this much (hccr convert --stroke-jitter; results named +jitA)")
    ap.add_argument("--prepare", action="store_true", help="make the data only (no training: e.g. beside a long run)")
    ap.add_argument("--record", metavar="CKPT", help="CKPT's expected level-2 accuracy: its generator's B figure")
    ap.add_argument("--record-note", default="", help="with --record: how CKPT's own training differs from the run's")
    args = ap.parse_args()
    use_all_cores()
    found = olhwdb_writers()
    if found is None:
        return
    train_pots, val_pots = found
    a_chars, b_chars = split()
    charset = Charset(sorted(a_chars + b_chars))
    (work := args.work).mkdir(parents=True, exist_ok=True)
    (work / "split.json").write_text(json.dumps({"seed": 33, "A": "".join(a_chars), "B": "".join(b_chars)},
                                                ensure_ascii=False))
    opts = ConvertOptions(size=64, charset="".join(charset))
    real, val = convert_once(train_pots, work / "real-train", opts), convert_once(val_pots, work / "real-val", opts)
    rs = Store(real)
    a_ids = [rs.charset.index[c] for c in a_chars]
    real_a = np.flatnonzero(np.isin(rs.labels, a_ids))  # B's real samples are left out
    model = work / "writers-A.json"
    if any("learned" in g for g in args.generators) and not model.exists():
        from hccr.data.writers import fit_files

        t = time.perf_counter()
        wm, col = fit_files([str(p) for p in train_pots], "".join(a_chars), progress=False)
        wm.save(model)
        print(f"writer model fitted on A's samples of {len(train_pots)} writers in {time.perf_counter() - t:.0f} s "
              f"({col.samples} samples; stroke count equal to the medians' in {col.equal_count / col.samples:.1%}; "
              f"{ {k: round(v / col.samples, 3) for k, v in col.status.items()} })")
    bank = work / "bank-A.npz"
    if any("components" in g for g in args.generators) and not bank.exists():
        from hccr.data.components import build_bank

        t = time.perf_counter()
        cb = build_bank([str(p) for p in train_pots], "".join(a_chars), progress=False)
        cb.save(bank)
        print(f"component bank of A's samples of {len(train_pots)} writers in {time.perf_counter() - t:.0f} s: "
              f"{len(cb)} cleanly aligned samples")
    results = {}
    if (work / "results.json").exists():
        results = json.loads((work / "results.json").read_text())
    a_writers = args.writers if args.a_writers is None or not args.mix else args.a_writers
    drawn = max(args.writers, a_writers, 100)  # fewer: the first N of the 100 drawn (--writers 50: a count control)
    for gen in args.generators:
        data_name, name = names(gen, args, a_writers)
        train = work / f"train-{data_name}"
        run = work / f"run-{name}"
        current = store_is_current(train)  # False: never made, or drawn by an older renderer
        if args.domain_loss and current and not (train / "writers.txt").stat().st_size:
            current = False  # merged by an older protocol without writer names, which --domain-loss needs
        if current and all(f"B{key}" in results.get(name, {}) for key in [*POWERS, "_meanmap"]):
            print(f"{name}: {results[name]} (done before)")
            continue
        t, parts = time.perf_counter(), [(real, real_a)]
        for one in gen.split("&"):  # "components&builtin": both generators' writers
            style, part = GENERATORS[one], one + ("+mix" if args.mix else "")
            synth(work / f"synth-{part}", SynthConfig(chars="".join(charset if args.mix else b_chars), seed=4000,
                                                      writers=drawn, style=style and style.format(
                                                          model=model, bank=bank)), progress=False)
            # --stroke-jitter moves trajectories: a generator that writes images (.gnt, the built-in) is drawn as before
            moved = args.stroke_jitter if any((work / f"synth-{part}").glob("*.pot")) else 0.0
            store = f"synth-{part}-store{'' if drawn == 100 else f'-{drawn}w'}{f'-jit{moved:g}' if moved else ''}"
            syn = convert_once([work / f"synth-{part}"], work / store, replace(opts, stroke_jitter=moved))
            st = Store(syn)  # writer ids follow file order: the first N writers of each part
            in_b = np.isin(st.labels, [st.charset.index[c] for c in b_chars])
            parts.append((syn, np.flatnonzero(st.writers < np.where(in_b, args.writers, a_writers))))
        if not current:  # new training data: an earlier run and its figures are stale
            shutil.rmtree(run, ignore_errors=True)
            results.pop(name, None)
            merge(parts, charset, train)
        data_s = time.perf_counter() - t
        if args.prepare:
            print(f"{name}: data ready in {data_s:.0f} s")
            continue
        cfg = apply_overrides(get_preset("gb2312"), ["init=", "ema=0", f"steps={args.steps}", "val_fraction=0",
                                                     "checkpoint_minutes=0", f"domain_loss={args.domain_loss}"])
        done = name in results and (run / "last.json").exists()  # trained before: scored again only
        m = {} if done else fit(cfg, train, run, resume=(run / "last.state.pt").exists(), progress=False)
        rec = Recognizer.from_checkpoint(run / "last.json")
        pred = predict_inputs(rec, [str(val)], crops=1, progress=False)
        in_b = np.isin(pred.labels, [rec.charset.index[c] for c in b_chars])
        # "_prior": the training class prior divided out, as the shipped models do (hccr package --divide-prior)
        counts = np.bincount(Store(train).labels, minlength=len(charset))
        raw = np.log(pred.probs + 1e-30)
        res = dict(results.get(name, {}), images_A=int((~in_b).sum()), images_B=int(in_b.sum()))
        for key, power in POWERS.items():
            ok = (raw - power * np.log(np.maximum(counts / counts.sum(), 1e-12))).argmax(1) == pred.labels
            res[f"A{key}"], res[f"B{key}"] = round(float(ok[~in_b].mean()), 4), round(float(ok[in_b].mean()), 4)
            res[f"B_minus_A{key}"] = round(res[f"B{key}"] - res[f"A{key}"], 4)
        res.update(mean_map(run, rec.spec, train, real_a.size, val, pred.labels, in_b, len(charset)))
        if m:
            res.update(train_img_per_s=round(m.get("train_img_per_s", 0)), data_seconds=round(data_s))
        results[name] = res
        (work / "results.json").write_text(json.dumps(results, indent=1))
        print(f"{name}: {res}", flush=True)
    if args.record:
        (gen,) = args.generators  # one generator: the one the model's level-2 learnt from
        record(Path(args.record), gen, names(gen, args, a_writers)[1], results, args, a_writers)
    save("protocol", {"split_seed": 33, "characters": len(charset), "B": len(b_chars), "steps": args.steps,
                      "synthetic_writers": args.writers, "synthetic_writers_A": a_writers, "results": results,
                      "machine": machine()})


def names(gen: str, args: argparse.Namespace, a_writers: int) -> tuple[str, str]:
    """(training data's name, run's name) of a generator under these options: ``components&builtin+mix+40wA``, and
    the run's name adds what changes training only (``+dann0.5``, ``+4800s``)."""
    data = (gen + ("+mix" if args.mix else "") + (f"+{args.writers}w" if args.writers != 100 else "")
            + (f"+{a_writers}wA" if a_writers != args.writers else "")
            + (f"+jit{args.stroke_jitter:g}" if args.stroke_jitter else ""))
    return data, data + (f"+dann{args.domain_loss:g}" if args.domain_loss else "") + (
        f"+{args.steps}s" if args.steps != 1200 else "")


def mean_map(run: Path, spec, train: Path, n_real: int, val: Path, labels: np.ndarray, in_b: np.ndarray, n: int,
             per_class: int = 100) -> dict:
    """A and B read by the trained network with its last layer replaced by the mean-map head (hccr.headfit):
    B's synthetic class means mapped to where real samples would put them (``_meanmap``), and the control
    with B's synthetic means left as they are (``_lda``). Up to ``per_class`` training samples per class
    and source (real: the first ``n_real`` of the merged store; synthetic: the rest); ``spec``: the run's input spec."""
    from hccr.checkpoint import load_checkpoint
    from hccr.headfit import fit_mean_map_head, store_features

    t = time.perf_counter()
    net, _ = load_checkpoint(run / "last.json")  # unfused: its pooled features are reachable
    st, rng = Store(train), np.random.default_rng(0)

    def pick(rows: np.ndarray) -> np.ndarray:  # up to per_class of each class among rows
        lab = st.labels[rows]
        return np.sort(np.concatenate([rng.permutation(rows[lab == c])[:per_class] for c in np.unique(lab)]))

    real, syn = pick(np.arange(n_real)), pick(np.arange(n_real, len(st.labels)))
    fr, fs = store_features(net, spec, st.images[real]), store_features(net, spec, st.images[syn])
    fv = store_features(net, spec, Store(val).images[:])  # predict_inputs' order: the whole store, as stored
    res = {}
    for key, mapped in (("_meanmap", True), ("_lda", False)):
        head = fit_mean_map_head(fr, st.labels[real], fs, st.labels[syn], n, mapped=mapped)
        ok = head.logits(fv).argmax(1) == labels
        res[f"A{key}"], res[f"B{key}"] = round(float(ok[~in_b].mean()), 4), round(float(ok[in_b].mean()), 4)
        res[f"B_minus_A{key}"] = round(res[f"B{key}"] - res[f"A{key}"], 4)
        if mapped:
            res["meanmap_lambda"], res["meanmap_cv"] = head.lam, {str(k): round(v, 4) for k, v in head.cv.items()}
    res["meanmap_seconds"] = round(time.perf_counter() - t)
    return res


def record(ckpt: Path, gen: str, name: str, results: dict, args: argparse.Namespace, a_writers: int) -> None:
    """The model card's expected level-2 accuracy: run ``name``'s B at the model's prior power (replaces the one an
    earlier protocol run wrote)."""
    r, cmd = results[name], "python -m benchmarks protocol"
    power = (read_json(ckpt).get("prior_correction") or {}).get("power", 0.0)
    if (key := {p: k for k, p in POWERS.items()}.get(power)) is None:
        raise SystemExit(f"{ckpt}: prior power {power} is not scored (powers: {sorted(POWERS.values())})")
    options = (" --mix" if args.mix else "") + (f" --writers {args.writers}" if args.writers != 100 else "") + (
        f" --a-writers {a_writers}" if a_writers != args.writers else "") + (
        f" --steps {args.steps}" if args.steps != 1200 else "")
    each = f" (from each of its {len(gen.split('&'))} generators)" if "&" in gen else ""
    record_evaluations(ckpt, [{
        "what": "expected accuracy on real handwriting of level-2 characters (no real writer in its training data "
                f"wrote them): the cross-character protocol's B figure for the generator its level-2 learnt from "
                f"({gen}), with the class prior divided out as in this model (to the power {power:g}; 300 level-1 "
                f"characters trained on that generator only, {args.writers} synthetic writers of each and "
                f"{a_writers} of each of the 700 others beside their real writers{each}, {args.steps:,} steps of 256, real "
                "samples of 10 validation writers, 1,000-way; 6,763-way reads lower; the same network reads A at "
                f"{r[f'A{key}']:.1%}; without the prior correction B reads {r['B']:.1%}, fully divided out "
                f"{r['B_prior']:.1%}{'; ' + args.record_note if args.record_note else ''})",
        "result": {"top1": r[f"B{key}"], "images": r["images_B"]},
        "command": f"{cmd}{options} --generators {gen} --record {ckpt.name}"}], replaces=cmd)


if __name__ == "__main__":
    main()
