"""Sim2real: train on synthetic handwriting only, test on the real casia-hwdb-22 test images.

    python benchmarks/sim2real.py [--writers 500] [--epochs 40] [--font F.ttf ...] --split val|test

``--split val`` (for choosing settings) scores the held-out-writer tail of the real *training*
images (the last 10% of each class by file number, see tail_split.py); ``--split test`` scores the
real test images and is run once per chosen setting.

宬 is not in the stroke data; it is composed from strokes (the 宀 of 安 over 成), so all 22 real
classes are covered. Also writes WORK/NAME/tiles.png (synthetic samples next to real ones; real
images stay out of the repository).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, REAL, save  # noqa: E402

from hccr.data.store import ConvertOptions, Store, convert  # noqa: E402
from hccr.data.strokes import char_strokes  # noqa: E402
from hccr.data.synth import SynthConfig, compose_top_bottom, synth  # noqa: E402
from hccr.evaluate import topk_accuracy  # noqa: E402
from hccr.predict import Recognizer, predict_inputs  # noqa: E402
from hccr.quickstart import train_member  # noqa: E402
from hccr.report import save_png  # noqa: E402
from hccr.utils import use_all_cores  # noqa: E402


def real_store(root: Path, which: str, size: int) -> Path:
    """casia-hwdb-22's ``train`` or ``test`` images as a store at ``size`` px under ``root``, converted
    once (a 64 px store upsampled for a larger model would lose detail)."""
    store = root / (f"real-{which}" if size == 64 else f"real-{which}-{size}")
    if not (store / "manifest.json").exists():
        folder = REAL / ("CASIA-HWDB_Test/Test" if which == "test" else "CASIA-HWDB_Train/Train")
        convert([str(folder)], store, ConvertOptions(size=size), progress=False)
    return store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writers", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--preset", default="fast-1")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="training config key=value")
    ap.add_argument("--style", default=None, help="style profile JSON (default: hccr's default profile)")
    ap.add_argument("--score-chars", default=None, help="score only the real images of these characters")
    ap.add_argument("--font", action="append", default=[], help="font file(s) as an extra shape source")
    ap.add_argument("--font-fraction", type=float, default=0.3)
    ap.add_argument("--split", choices=["val", "test"], default="val")
    ap.add_argument("--name", default="default")
    ap.add_argument("--size", type=int, default=64, help="input size: store and model")
    ap.add_argument("--seed", type=int, default=123, help="seed of the synthetic writers")
    ap.add_argument("--real-baseline", action="store_true",
                    help="also train the same preset on the real training images (--split test only) and score it")
    ap.add_argument("--work", default=str(OUT / "sim2real"))
    args = ap.parse_args()
    use_all_cores()
    root = Path(args.work)
    work = root / args.name
    if args.real_baseline and args.size != 64:
        sys.exit("--real-baseline trains at 64 px; leave --size at 64 for it")
    real = real_store(root, args.split if args.split == "test" else "train", args.size)
    if args.split == "test":
        real_idx = np.arange(len(Store(real)))
    else:
        labels = np.asarray(Store(real).labels)
        # The store keeps the folder's order: files sorted by number within each class.
        real_idx = np.concatenate([np.flatnonzero(labels == c)[-round((labels == c).sum() * 0.1):]
                                   for c in np.unique(labels)])
    chars = "".join(Store(real).charset)
    extra = {"宬": compose_top_bottom(char_strokes("安")[:3], char_strokes("成"))}

    t = time.perf_counter()
    cfg = SynthConfig(chars=chars, writers=args.writers, seed=args.seed, fonts=tuple(args.font), style=args.style,
                      font_fraction=args.font_fraction if args.font else 0.0)
    files = synth(work / "gnt", cfg, extra=extra)
    gen_s = time.perf_counter() - t
    n_gen = len(chars) * args.writers
    store = work / ("synth-store" if args.size == 64 else f"synth-store-{args.size}")
    if not (store / "manifest.json").exists():
        convert([str(f) for f in files], store, ConvertOptions(size=args.size, charset=chars, val_fraction=0.1,
                                                           split_by_writer=True),
                progress=False)
    train_member(args.preset, args.epochs, args.size, store, work / "model", overrides=tuple(args.overrides))
    rec = Recognizer.from_checkpoint(work / "model")
    pred = predict_inputs(rec, [str(real)], crops=5, progress=False)
    if args.score_chars:  # e.g. the 11 characters whose real images the style was not calibrated on
        keep = np.isin(pred.labels[real_idx], [i for i, c in enumerate(chars) if c in args.score_chars])
        real_idx = real_idx[keep]
    pred.probs, pred.labels = pred.probs[real_idx], pred.labels[real_idx]
    acc = topk_accuracy(pred.probs, pred.labels)
    # Kept for ensembles of runs (benchmarks/sim2real_ensemble.py): same images, same order.
    np.savez_compressed(work / f"pred-{args.split}.npz", probs=pred.probs.astype(np.float32), labels=pred.labels,
                        chars=np.array(list(chars)))
    per_class = {ch: float((pred.probs[pred.labels == i].argmax(1) == i).mean()) for i, ch in enumerate(chars)}
    print(f"synthetic generation: {n_gen} samples in {gen_s:.1f}s = {n_gen / gen_s:,.0f} samples/s "
          "(0 if reused from an earlier run)")
    print(f"sim2real top-1 on {len(real_idx)} real {args.split} images: {acc['top1']:.4f} (top-5 {acc['top5']:.4f})")
    print("per class: " + " ".join(f"{c}{a:.2f}" for c, a in per_class.items()))

    baseline = None
    if args.real_baseline and args.split == "test":
        train_store = real_store(root, "train", args.size)
        train_member(args.preset, args.epochs, args.size, train_store, root / "real-baseline", overrides=tuple(args.overrides))
        bp = predict_inputs(Recognizer.from_checkpoint(root / "real-baseline"), [str(real)], crops=5, progress=False)
        baseline = topk_accuracy(bp.probs[real_idx], bp.labels[real_idx])
        print(f"same preset trained on the real training images: top-1 {baseline['top1']:.4f} "
              f"(top-5 {baseline['top5']:.4f})")

    # Preview: per character, 4 synthetic samples then 4 real ones (both as stored, ink high).
    syn, real = Store(store), Store(real)
    rng = np.random.default_rng(0)
    rows = []
    for ci in range(0, len(chars), 3):
        tiles = []
        for st in (syn, real):
            idx = rng.choice(np.flatnonzero(st.labels == ci), 4, replace=False)
            tiles += [255 - st.images[i] for i in idx]
        rows.append(np.concatenate([np.pad(t, 2, constant_values=255) for t in tiles], 1))
    grid = np.concatenate(rows, 0)
    save_png(grid, work / "tiles.png")
    save(f"sim2real-{args.name}-{args.split}", {"writers": args.writers, "seed": args.seed, "size": args.size, "epochs": args.epochs, "preset": args.preset,
                      "fonts": [Path(f).name for f in args.font], "style": args.style, "score_chars": args.score_chars, "overrides": args.overrides, "font_fraction": cfg.font_fraction, "samples": n_gen,
                      "generation_seconds": gen_s, "generation_samples_per_s": n_gen / gen_s, "split": args.split, "images": len(real_idx),
                      **acc, "per_class": per_class, "real_baseline": baseline})


if __name__ == "__main__":
    main()
