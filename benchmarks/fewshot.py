"""Few-shot: fine-tuning a shipped model vs training from scratch on k real images per class.

    python -m benchmarks fewshot --split val --shots 10 --seeds 0 --ft-lr 0.001   # choose settings
    python -m benchmarks fewshot --split test                                     # report, once
    python -m benchmarks fewshot --init gb2312 --keep-classes --shots 20 --seeds 0 --methods finetune
    python -m benchmarks fewshot --init gb2312 --keep-classes --shots 20 --seeds 0 --methods finetune --olhwdb-chars 50

casia-hwdb-22's training images, the last 10% of each class by file number held out as validation
(common.tail_store); per seed, k images per class ("all" = every one) are drawn from the rest. Both
methods use fast-1's recipe and step budget; fine-tuning adds ``--init`` (default gb2312-synth, which
saw no real image of these characters); ``--methods resnet`` is the lean ResNet from scratch.
``--split val`` scores the tail, ``--split test`` the 2,674 test images, five crops; ``--size 96``
converts at 96 px and fine-tunes there (``init_keep_size``). ``--keep-classes`` is a user teaching
the model their own images of a few characters and keeping the rest: each run is also scored on the
OLHWDB validation writers' samples of every other level-1 character, beside the ``--init`` model.
``--soup`` also scores the average of the seeds' fine-tuned weights (``hccr average`` of their best checkpoints:
one model, one basin, as they all start from ``--init``).
``--refit`` (with ``--shots all``) is the last step of choosing on the tail: the chosen recipe trains on every
training image, the tail too, and its last checkpoint is scored (there is nothing left to choose a best one on).
``--olhwdb-extra`` adds the OLHWDB training writers' trajectories of casia-hwdb-22's characters to its training
images (the tail stays the validation). ``--olhwdb-chars N`` teaches N level-1 characters drawn at random (seed 0) from OLHWDB instead: k samples
per character from its first 40 training writers, validation writers 1-5 as the tail, 6-10 as the test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from common import ARCHIVE, OUT, REAL, convert_once, olhwdb_writers, real_stores, save, tail_store

from hccr.config import apply_overrides, get_preset
from hccr.data.store import Store, store_view
from hccr.evaluate import topk_accuracy
from hccr.predict import Recognizer, predict_inputs
from hccr.train import fit
from hccr.utils import use_all_cores


def casia_stores(work: Path, size: int = 64) -> tuple[Path, Path]:
    """(training images with the held-out-writer tail as validation, test images) at ``size`` px."""
    train, test = real_stores(OUT / f"casia22-{size}" / "train", OUT / f"casia22-{size}" / "test", size)
    return tail_store(train, work / ("real-tail" if size == 64 else f"real-tail-{size}")), test


def olhwdb_stores(work: Path, n: int) -> tuple[Path, Path]:
    """(n random level-1 characters of OLHWDB's training writers, validation writers 1-5 as validation;
    the same characters by validation writers 6-10) as stores, converted once."""
    from hccr.data.charset import gb2312_chars
    from hccr.data.store import ConvertOptions

    train, val = olhwdb_writers() or sys.exit(1)  # prints why when the archive is absent
    chars = "".join(np.random.default_rng(0).choice(list(gb2312_chars(level1_only=True)), n, replace=False))
    opts = ConvertOptions(size=64, charset=chars, val_writers=tuple(p.stem for p in val[:5]))
    return convert_once(train[:40] + val[:5], work / "tail", opts), convert_once(val[5:], work / "test", opts)


def subset(tail: Path, dst: Path, shots: int | None, seed: int) -> Path:
    """``tail`` with only ``shots`` random training images per class kept (split code 2 = left out)."""
    if (dst / "split.npy").exists():
        return dst
    st = Store(tail)
    split = np.asarray(st.split).copy()
    if shots is not None:
        rng = np.random.default_rng(seed)
        for c in range(len(st.charset)):
            idx = np.flatnonzero((st.labels == c) & (split == 0))
            split[np.setdiff1d(idx, rng.choice(idx, min(shots, len(idx)), replace=False))] = 2
    return store_view(tail, dst, split)


def with_olhwdb(tail: Path, work: Path) -> Path:
    """``tail`` (casia-hwdb-22's training scans, its held-out-writer tail as validation) plus the OLHWDB training
    writers' trajectories of the same characters (drawn by hccr's pen), in training only; the validation split is
    exactly ``tail``'s. The OLHWDB validation writers are never in it."""
    from hccr.data.store import ConvertOptions

    dst = work / "real-tail-olhwdb"
    if (dst / "split.npy").exists():
        return dst
    found = olhwdb_writers(ARCHIVE, OUT)
    if not found:
        sys.exit("--olhwdb-extra needs the OLHWDB archive")
    base = Store(tail)
    mixed = convert_once([REAL / "CASIA-HWDB_Train" / "Train", *found[0]], work / "casia22-olhwdb",
                         ConvertOptions(size=base.size, charset="".join(base.charset)))
    held = {i for i, s in zip(base.sample_ids(), base.split, strict=True) if s == 1}
    ids = Store(mixed).sample_ids()
    split = np.array([i in held for i in ids], np.uint8)
    if split.sum() != len(held):
        sys.exit(f"{mixed}: {split.sum()} of the tail's {len(held)} validation images found; convert it again")
    print(f"{mixed}: {sum('.pot#' in i for i in ids)} OLHWDB trajectories added to {len(base)} scans")
    return store_view(mixed, dst, split)


def run_one(method: str, shots: int | None, seed: int, store: Path, out: Path, args) -> None:
    """Train one point of the curve (resumes an unfinished run, reuses a finished one)."""
    if (out / "done").exists():
        return
    sets = [f"seed={seed}"]
    if shots is None:  # every training image: the preset's batch, whole epochs
        sets += [f"epochs={args.epochs_all}", "steps=0"]
        if args.refit:  # the tail is training data now: no validation split, none carved out
            sets += ["val_fraction=0"]
    else:  # a handful of images: a fixed step budget, smaller batches
        sets += ["batch_size=64", f"steps={args.steps}", "epochs=1000000", "warmup_epochs=0"]
    if method == "finetune":
        sets += [f"init={args.init}", f"lr={args.ft_lr}", f"freeze_epochs={args.freeze_epochs}"]
        if args.size != 64:  # the source model's network at this run's input size
            sets += ["init_keep_size=true"]
        if args.keep_classes:
            sets += ["init_keep_classes=true"]
    elif method == "resnet":  # the lean ResNet, from scratch with the same recipe
        sets += ["model=resnet-lean"]
    cfg = apply_overrides(get_preset("fast-1"), sets + args.set)
    if shots is not None:  # warm up over the first 5% of steps, whatever the epoch length
        steps_per_epoch = max(1, (len(Store(store).indices("train")) + 63) // 64)
        cfg.warmup_epochs = 0.05 * args.steps / steps_per_epoch
    t = time.perf_counter()
    fit(cfg, store, out, resume=(out / "last.state.pt").exists(), progress=False)
    (out / "done").write_text(f"{time.perf_counter() - t:.1f}\n")


def scores(rec: Recognizer, val_store: Path, test: Path, split: str) -> dict:
    """Top-1 / top-5 on the held-out tail (``val``) or the test images, five crops."""
    pred = predict_inputs(rec, [str(val_store)], crops=5, split="val", progress=False) if split == "val" else \
        predict_inputs(rec, [str(test)], crops=5, progress=False)
    return topk_accuracy(pred.probs, pred.labels)


def other_characters(rec: Recognizer, store: Path, mine: set[str]) -> float:
    """Top-1 on ``store``'s samples of characters not in ``mine``, one crop (the forgetting measure)."""
    pred = predict_inputs(rec, [str(store)], crops=1, progress=False)
    keep = ~np.isin(pred.labels, [rec.charset.index[c] for c in mine if c in rec.charset.index])
    return round(float((pred.probs.argmax(1) == pred.labels)[keep].mean()), 4)


def soup_row(runs: list[Path], out: Path, shots_s: str, seeds: str, test: Path, store: Path, split: str) -> dict:
    """The weight average of the seeds' fine-tunes ``runs`` (their best checkpoints, what each run's row scores),
    written to ``out`` and scored like one run (the held-out tail is the same in every seed's subset)."""
    from hccr.checkpoint import average_checkpoints, save_checkpoint

    path = save_checkpoint(out / "best", *average_checkpoints(runs))
    acc = scores(Recognizer.from_checkpoint(path), store, test, split)
    return {"method": "finetune-soup", "shots": shots_s, "seed": seeds, "top1": acc["top1"], "top5": acc["top5"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", choices=["val", "test"], default="val")
    ap.add_argument("--shots", default="5,10,50,all")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default="finetune,scratch", help="finetune, scratch and/or resnet")
    ap.add_argument("--ft-lr", type=float, default=1e-3)
    ap.add_argument("--init", default="gb2312-synth", help="the model fine-tuning starts from")
    ap.add_argument("--freeze-epochs", type=int, default=0)
    ap.add_argument("--steps", type=int, default=400, help="optimizer steps for the k-shot points")
    ap.add_argument("--epochs-all", type=int, default=20)
    ap.add_argument("--name", default="", help="tag of the fine-tuning runs (default: from --ft-lr etc.)")
    ap.add_argument("--set", action="append", default=[], help="extra key=value for every run (as hccr train --set)")
    ap.add_argument("--size", type=int, default=64, help="input size: stores converted at it, and the model")
    ap.add_argument("--keep-classes", action="store_true",
                    help="fine-tune keeping every character of --init; also score the other level-1 characters")
    ap.add_argument("--olhwdb-chars", type=int, default=0, help="teach this many OLHWDB level-1 characters instead")
    ap.add_argument("--olhwdb-extra", action="store_true",
                    help="also train on the OLHWDB training writers' trajectories of the same characters")
    ap.add_argument("--refit", action="store_true",
                    help="with --shots all: train on the tail too and score the last checkpoint (after choosing)")
    ap.add_argument("--soup", action="store_true", help="also score the weight average of the seeds' fine-tunes")
    ap.add_argument("--work", default=str(OUT / "fewshot"))
    args = ap.parse_args()
    use_all_cores()
    work = Path(args.work) / (f"olhwdb-{args.olhwdb_chars}" if args.olhwdb_chars else "")
    tail, test = olhwdb_stores(work, args.olhwdb_chars) if args.olhwdb_chars else casia_stores(work, args.size)
    if args.olhwdb_extra:
        tail = with_olhwdb(tail, work)
    if args.refit:
        if args.shots != "all" or args.split != "test" or args.methods != "finetune" or args.keep_classes or args.soup \
                or args.name:
            sys.exit("--refit is the final run of a fine-tune recipe chosen on the tail: --shots all --split test "
                     "--methods finetune, without --name, --soup or --keep-classes")
        tail = store_view(tail, work / f"refit{'-olhwdb' if args.olhwdb_extra else ''}", np.zeros(len(Store(tail)), np.uint8))
    px = "" if args.size == 64 else f"-{args.size}"
    if args.size != 64:
        args.set = [f"image_size={args.size}", *args.set]
    tag = args.name or f"{args.init}-lr{args.ft_lr:g}-f{args.freeze_epochs}-s{args.steps}-e{args.epochs_all}" + \
        ("-keep" if args.keep_classes else "") + (f"-olhwdb{args.olhwdb_chars}" if args.olhwdb_chars else "") + \
        ("-olhwdb-extra" if args.olhwdb_extra else "") + ("-refit" if args.refit else "")
    rows = []
    others = None
    if args.keep_classes:  # the rest of level 1, by writers nobody trained on; and the starting point's figures
        from shipped import olhwdb_validation

        from hccr.finetune import resolve_init

        others = olhwdb_validation(ARCHIVE, OUT)
        init = Recognizer.from_checkpoint(resolve_init(args.init))
        mine = set(Store(tail).charset)
        before = {"top1": scores(init, tail, test, args.split)["top1"], "others": others and other_characters(init, others, mine)}
        print(json.dumps({"method": "init", **before}), flush=True)
        rows.append({"method": "init", "shots": "-", "seed": -1, **before})
    for shots_s in args.shots.split(","):
        shots = None if shots_s == "all" else int(shots_s)
        tuned = []  # this point's fine-tunes, one a seed (--soup averages them)
        for seed in map(int, args.seeds.split(",")):
            store = subset(tail, work / f"subsets{px}{'-olhwdb' if args.olhwdb_extra else ''}{'-refit' if args.refit else ''}"
                           / f"{shots_s}-s{seed}",
                           shots, seed)
            if args.refit and len(Store(store).indices("val")):
                sys.exit(f"{store}: --refit needs a store without a validation split")
            for method in args.methods.split(","):
                out = work / "runs" / f"{method}-{shots_s}-s{seed}-{tag if method == 'finetune' or args.name else args.steps}"
                run_one(method, shots, seed, store, out, args)
                if method == "finetune":
                    tuned.append(out)
                rec = Recognizer.from_checkpoint(out / "last" if args.refit else out)
                acc = scores(rec, store, test, args.split)
                row = {"method": method, "shots": shots_s, "seed": seed, "top1": acc["top1"], "top5": acc["top5"],
                       "train_images": int(len(Store(store).indices("train"))),
                       "train_seconds": float((out / "done").read_text())}
                if others is not None:
                    row["others"] = other_characters(rec, others, mine)
                rows.append(row)
                print(json.dumps(row), flush=True)
        if args.soup and len(tuned) > 1:
            soup = work / "runs" / f"finetune-{shots_s}-soup{args.seeds.replace(',', '')}-{tag}"
            rows.append(soup_row(tuned, soup, shots_s, args.seeds, test, store, args.split))
            print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for key in (f"{m}-{k}" for m in args.methods.split(",") for k in args.shots.split(",")):
        t1 = [r["top1"] for r in rows if f"{r['method']}-{r['shots']}" == key]
        summary[key] = {"mean": float(np.mean(t1)), "std": float(np.std(t1)), "n": len(t1)}
        print(f"{key:>14s}/class: top-1 {np.mean(t1):.4f} ± {np.std(t1):.4f} ({len(t1)} seeds)")
    save(f"fewshot-{args.split}-{tag}", {"args": vars(args), "rows": rows, "summary": summary})


if __name__ == "__main__":
    main()
