"""Sim2real: train on synthetic handwriting only, test on the real casia-hwdb-22 test images.

    python benchmarks/sim2real.py [--writers 500] [--epochs 40]

宬 is not in the stroke data; it is composed from strokes (the 宀 of 安 over 成), so all 22 real
classes are covered. Also writes docs/img/sim2real.png: synthetic samples next to real ones.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, REAL, ROOT, save  # noqa: E402

from hccr.data.store import ConvertOptions, Store, convert  # noqa: E402
from hccr.data.strokes import char_strokes  # noqa: E402
from hccr.data.synth import SynthConfig, compose_top_bottom, synth  # noqa: E402
from hccr.evaluate import topk_accuracy  # noqa: E402
from hccr.predict import Recognizer, predict_inputs  # noqa: E402
from hccr.quickstart import train_member  # noqa: E402
from hccr.report import save_png  # noqa: E402
from hccr.utils import use_all_cores  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writers", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--preset", default="fast-1")
    ap.add_argument("--work", default=str(OUT / "sim2real"))
    args = ap.parse_args()
    use_all_cores()
    work = Path(args.work)
    test = work / "real-test"
    if not (test / "manifest.json").exists():
        convert([str(REAL / "CASIA-HWDB_Test" / "Test")], test, progress=False)
    chars = "".join(Store(test).charset)
    extra = {"宬": compose_top_bottom(char_strokes("安")[:3], char_strokes("成"))}

    t = time.perf_counter()
    files = synth(work / "gnt", SynthConfig(chars=chars, writers=args.writers, seed=123), extra=extra)
    gen_s = time.perf_counter() - t
    n_gen = len(chars) * args.writers
    store = work / "synth-store"
    if not (store / "manifest.json").exists():
        convert([str(f) for f in files], store, ConvertOptions(charset=chars, val_fraction=0.1, split_by_writer=True),
                progress=False)
    train_member(args.preset, args.epochs, 64, store, work / "model")
    rec = Recognizer.from_checkpoint(work / "model")
    pred = predict_inputs(rec, [str(test)], crops=5, progress=False)
    acc = topk_accuracy(pred.probs, pred.labels)
    per_class = {ch: float((pred.probs[pred.labels == i].argmax(1) == i).mean()) for i, ch in enumerate(chars)}
    print(f"synthetic generation: {n_gen} samples in {gen_s:.1f}s = {n_gen / gen_s:,.0f} samples/s "
          "(0 if reused from an earlier run)")
    print(f"sim2real top-1 on {len(pred)} real test images: {acc['top1']:.4f} (top-5 {acc['top5']:.4f})")
    print("per class: " + " ".join(f"{c}{a:.2f}" for c, a in per_class.items()))

    # Preview: per character, 4 synthetic samples then 4 real ones (both as stored, ink high).
    syn, real = Store(store), Store(test)
    rng = np.random.default_rng(0)
    rows = []
    for ci in range(0, len(chars), 3):
        tiles = []
        for st in (syn, real):
            idx = rng.choice(np.flatnonzero(st.labels == ci), 4, replace=False)
            tiles += [255 - st.images[i] for i in idx]
        rows.append(np.concatenate([np.pad(t, 2, constant_values=255) for t in tiles], 1))
    grid = np.concatenate(rows, 0)
    (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
    save_png(grid, ROOT / "docs" / "img" / "sim2real.png")
    save("sim2real", {"writers": args.writers, "epochs": args.epochs, "preset": args.preset, "samples": n_gen,
                      "generation_seconds": gen_s, "generation_samples_per_s": n_gen / gen_s, "test": len(pred),
                      **acc, "per_class": per_class})


if __name__ == "__main__":
    main()
