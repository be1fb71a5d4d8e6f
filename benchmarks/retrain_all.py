"""The system chosen on validation, retrained on every training writer and scored on test once.

    python benchmarks/retrain_all.py [--epochs 20]
    python benchmarks/retrain_all.py --system "scratch-s1 + scratch-s2 + scratch-s3" --size 96

benchmarks/best_system.py chooses an ensemble (members, recipes, weights) on the held-out-writer
tail of casia-hwdb-22's training images; its members never saw the writers of that tail. Once the
choice is made, the usual last step is to train the chosen recipe again on all the training data:
here each member of the chosen system (read from .bench/best-system.json) is trained again with
its own recipe and seed on the store of benchmarks/casia22.py (every training writer; a random 10%
of images kept for picking the best epoch), and the members and their mean (the chosen weights) are
scored on the 2,674 test images (22-way, five crops). Nothing here is chosen on test.
``--system`` names other members (kind-sSEED, equal weights) and ``--size`` another input size,
with both stores converted at that size (as benchmarks/paper_recipe.py chose it on validation).
``--student-seeds 1,2`` also distils one student per seed from the retrained system, as
benchmarks/best_system.py does from the 90% members (``hccr distill``, started from the shipped
model, teachers' five crops, the system's weights), on the same store, and scores it from one crop. ``--teacher-crops 1``
has each teacher predict one crop per view (the teachers label about 6x faster); ``--speed`` times the first
student against the system and the paper's (benchmarks/latency.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, real_stores, save, table  # noqa: E402
from latency import student_speed  # noqa: E402

from hccr.config import apply_overrides, get_preset  # noqa: E402
from hccr.evaluate import topk_accuracy  # noqa: E402
from hccr.predict import Recognizer, predict_inputs  # noqa: E402
from hccr.train import fit  # noqa: E402
from hccr.utils import use_all_cores  # noqa: E402

# The recipes behind best_system.py's member kinds (benchmarks/fewshot.py, "all" points).
RECIPES = {"ft": ["init=gb2312-synth", "lr=0.003", "freeze_epochs=0"], "scratch": [], "resnet": ["model=resnet-lean"],
           "rnft": ["init=gb2312-synth", "lr=0.001", "freeze_epochs=0"],
           "s2r": [f"init={OUT / 'sim2real' / 'p2-s123' / 'model'}", "lr=0.001", "freeze_epochs=0"],
           "rnwd": ["init=gb2312-synth", "lr=0.001", "freeze_epochs=0", "weight_decay=0.05"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20, help="as the members were chosen (fewshot.py --epochs-all)")
    ap.add_argument("--system", default=None, help='members "kind-sSEED + ..." (default: the chosen system)')
    ap.add_argument("--size", type=int, default=64, help="input size; stores converted at it")
    ap.add_argument("--work", default=str(OUT / "retrain-all"))
    ap.add_argument("--student-seeds", default="", help="distil one student per seed from the system, e.g. 1,2")
    ap.add_argument("--distill-epochs", type=int, default=10, help="as benchmarks/best_system.py")
    ap.add_argument("--speed", action="store_true", help="also time the first student, the system and the paper's")
    ap.add_argument("--budget", type=float, default=8.0, help="seconds per speed measurement")
    ap.add_argument("--teacher-crops", type=int, default=5, help="crops per teacher per view (1: the teachers label about 6x faster)")
    args = ap.parse_args()
    use_all_cores()
    work = Path(args.work)
    if args.size == 64:
        store, test = OUT / "casia22" / "train", OUT / "casia22" / "test"
        if not (store / "manifest.json").exists():
            sys.exit(f"{store} not found: run benchmarks/casia22.py first")
    else:  # the same 10% random split (same seed), images converted at the input size
        store, test = real_stores(work / f"train{args.size}", work / f"test{args.size}", args.size, 0.1)
    best = json.loads((OUT / "best-system.json").read_text())
    chosen = args.system or best["chosen"]  # e.g. "ft-s0 + ft-s2 + scratch-s1"
    weights = np.array(next((c["weights"] for c in best["candidates"] if c["system"] == chosen),
                            [1.0] * len(chosen.split(" + "))), np.float64)
    tag = "" if args.size == 64 else f"-{args.size}px"
    rows, probs, students = [], [], []
    labels = None
    for member in chosen.split(" + "):
        kind, seed = member.rsplit("-s", 1)
        out = work / f"{member}{tag}"
        if not (out / "done").exists():
            cfg = apply_overrides(get_preset("fast-1"), [f"seed={seed}", f"epochs={args.epochs}", "steps=0",
                                                          f"image_size={args.size}", *RECIPES[kind]])
            if cfg.init and args.size != 64:  # the source model's network at this input size
                cfg.init_keep_size = True
            t = time.perf_counter()
            fit(cfg, store, out, resume=(out / "last.state.pt").exists(), progress=False)
            (out / "done").write_text(f"{time.perf_counter() - t:.1f}\n")
        pred = predict_inputs(Recognizer.from_checkpoint(out), [str(test)], crops=5, progress=False)
        labels = pred.labels
        probs.append(pred.probs)
        acc = topk_accuracy(pred.probs, pred.labels)
        rows.append({"system": member, "test_top1": acc["top1"], "test_top5": acc["top5"],
                     "train_seconds": float((out / "done").read_text())})
    acc = topk_accuracy(np.tensordot(weights / weights.sum(), np.stack(probs), 1), labels)
    rows.append({"system": f"{chosen} (weights {', '.join(f'{w:g}' for w in weights)})", "test_top1": acc["top1"], "test_top5": acc["top5"]})
    for seed in filter(None, args.student_seeds.split(",")):
        tc = "" if args.teacher_crops == 5 else f"-tc{args.teacher_crops}"
        out = work / f"student-e{args.distill_epochs}-s{seed}{tc}{tag}"
        cmd = [sys.executable, "-m", "hccr.cli", "distill", "--data", str(store), "--out", str(out),
               "--epochs", str(args.distill_epochs), "--teacher-crops", str(args.teacher_crops), "--weights",
               ",".join(f"{w:g}" for w in weights), "--set", "init=gb2312-synth", "--set", f"seed={seed}",
               "--set", f"image_size={args.size}"]
        for member in chosen.split(" + "):
            cmd += ["--teacher", str(work / f"{member}{tag}")]
        if not (out / "done").exists():
            t = time.perf_counter()
            subprocess.run(cmd + (["--resume"] if (out / "last.state.pt").exists() else []), check=True)
            (out / "done").write_text(f"{time.perf_counter() - t:.1f}\n")
        students.append(out)
        pred = predict_inputs(Recognizer.from_checkpoint(out), [str(test)], crops=1, progress=False)
        acc = topk_accuracy(pred.probs, pred.labels)
        rows.append({"system": f"student seed {seed}, teachers {args.teacher_crops} crops (1 crop)", "test_top1": acc["top1"], "test_top5": acc["top5"],
                     "train_seconds": float((out / "done").read_text()), "cmd": " ".join(cmd[1:])})
    print(table(rows, ["system", "test_top1", "test_top5", "train_seconds"]))
    speed = student_speed(students[0], [work / f"{m}{tag}" for m in chosen.split(" + ")], chosen, work,
                          args.budget) if args.speed and students else []
    save(f"retrain-all{tag}", {"speed": speed, "chosen": chosen, "weights": weights.tolist(), "epochs": args.epochs, "size": args.size, "rows": rows, "test_images": int(len(labels))})


if __name__ == "__main__":
    main()
