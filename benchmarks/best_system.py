"""The best system on real handwriting: ensembles chosen on validation, one distilled student, speed.

    python benchmarks/best_system.py [--kinds ft,scratch,resnet] [--student-seeds 1,2,3]
    python benchmarks/best_system.py --kinds rnft,s2r --student-seeds ''   # choose only

Members are the "all" runs of benchmarks/fewshot.py (run it first): fast-1 from scratch (scratch),
fast-1 fine-tuned from the shipped GB2312 model (ft) and the lean ResNet from scratch with fast-1's
recipe (resnet, ``--methods resnet``), the lean ResNet fine-tuned from ``gb2312-synth`` at lr 1e-3
(rnft) or from issue 10's 22-character synthetic model (s2r), three seeds each, trained on casia-hwdb-22's training images
minus the held-out-writer tail. Every candidate ensemble is scored on that tail
(validation) and the best is chosen there; the test figures (2,674 images, 22-way, five crops) are
printed next to it, never used to choose. The students (the architecture of the shipped
``gb2312-synth``, today the lean ResNet, started from it, one per seed) learn the best three-member ensemble's soft five-crop
predictions with ``hccr distill`` and predict from one crop. Speed: ms/char, batched and single, with the paper's
CharNet 3 x 5-crop system (random weights, 22 classes, fp32) measured in the same run; batched =
64 characters per call (32 for CharNet at 256 px, whose activations would not fit otherwise).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, save, table  # noqa: E402
from latency import student_speed  # noqa: E402

from hccr.ensemble import combine, fit_weights  # noqa: E402
from hccr.evaluate import topk_accuracy  # noqa: E402
from hccr.predict import Recognizer  # noqa: E402
from hccr.runtime import Predictions, predict_inputs  # noqa: E402
from hccr.utils import use_all_cores  # noqa: E402

FEW = OUT / "fewshot"
RUNS = {"ft": "finetune-all-s{}-lr0.003-f0-s400", "scratch": "scratch-all-s{}-400", "resnet": "resnet-all-s{}-400",
        # the lean ResNet fine-tuned from the ResNet gb2312-synth at lr 1e-3 (fewshot.py --ft-lr 0.001 --name gsynth)
        "rnft": "finetune-all-s{}-gsynth",
        # the same from a 22-class synthetic-only sim2real model (fewshot.py ... --name s2r --set init=...)
        "s2r": "finetune-all-s{}-s2r",
        # rnft with decoupled weight decay 0.05 instead of fast-1's 5e-4 (... --name gsynth-wd05 --set weight_decay=0.05)
        "rnwd": "finetune-all-s{}-gsynth-wd05"}


def predictions(name: str, run: Path, split: str, crops: int, work: Path) -> Predictions:
    """Five-crop (or one-crop) predictions of a run on the validation tail or the test images, cached."""
    path = work / "preds" / f"{name}-{split}-c{crops}.npz"
    if path.exists():
        return Predictions.load(path)
    rec = Recognizer.from_checkpoint(run)
    if split == "val":
        pred = predict_inputs(rec, [str(FEW / "subsets" / "all-s0")], crops=crops, split="val", progress=False)
    else:
        pred = predict_inputs(rec, [str(OUT / "sim2real" / "real-test")], crops=crops, progress=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    pred.save(path)
    return pred


def score(pred: Predictions) -> dict:
    acc = topk_accuracy(pred.probs, pred.labels)
    p = pred.probs[np.arange(len(pred.labels)), pred.labels]
    return {"top1": acc["top1"], "top5": acc["top5"], "logloss": float(-np.log(np.clip(p, 1e-12, None)).mean())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--distill-epochs", type=int, default=10)
    ap.add_argument("--teacher-crops", type=int, default=5)
    ap.add_argument("--budget", type=float, default=8.0, help="seconds per speed measurement")
    ap.add_argument("--work", default=str(OUT / "best"))
    ap.add_argument("--kinds", default="ft,scratch,resnet", help="member kinds, three seeds each")
    ap.add_argument("--student-seeds", default="1,2,3", help="fast-1 seeds are 1..3; empty: choose only")
    ap.add_argument("--seeds", default="0,1,2", help="member seeds per kind")
    args = ap.parse_args()
    use_all_cores()
    work = Path(args.work)
    kinds = args.kinds.split(",")
    MEMBERS = {f"{k}-s{s}": FEW / "runs" / RUNS[k].format(s) for k in kinds for s in map(int, args.seeds.split(","))}
    missing = [str(r) for r in MEMBERS.values() if not (r / "done").exists()]
    if missing:
        sys.exit(f"run benchmarks/fewshot.py --shots all (--methods finetune,scratch,resnet) first; missing: "
                 f"{', '.join(missing)}")
    val = {n: predictions(n, r, "val", 5, work) for n, r in MEMBERS.items()}
    test = {n: predictions(n, r, "test", 5, work) for n, r in MEMBERS.items()}

    # Candidates: every member alone, equal-weight means of groups, weights fitted on validation.
    names = list(MEMBERS)
    groups = {f"{n}": [n] for n in names}
    for k in kinds:
        groups[f"{k} x{len(args.seeds.split(','))}"] = [n for n in names if n.startswith(k + "-")]
    for combo in itertools.combinations(names, 3):
        if len({c.split("-")[0] for c in combo}) >= 2:  # mixed three: at least two kinds of member
            groups[" + ".join(combo)] = list(combo)
    groups[f"all {len(names)}"] = names
    rows = []
    for label, g in groups.items():
        w = [1.0] * len(g)
        rows.append({"system": label, "members": g, "weights": w,
                     **{f"val_{k}": v for k, v in score(combine([val[n] for n in g], w)).items()}})
    fw = fit_weights([val[n] for n in names]).tolist()
    rows.append({"system": f"all {len(names)}, weights fitted on validation", "members": names, "weights": fw,
                 **{f"val_{k}": v for k, v in score(combine([val[n] for n in names], fw)).items()}})
    for r in rows:
        t = score(combine([test[n] for n in r["members"]], r["weights"]))
        r.update({f"test_{k}": v for k, v in t.items()})
    best = max(rows, key=lambda r: (r["val_top1"], -r["val_logloss"]))
    teacher = max((r for r in rows if len(r["members"]) == min(3, len(names))),
                  key=lambda r: (r["val_top1"], -r["val_logloss"]))
    shown = [r for r in rows if len(r["members"]) != 3 or r is teacher or f"{r['system'].split()[0]} x" in r["system"]]
    print(table(shown, ["system", "val_top1", "val_logloss", "test_top1", "test_top5"]))
    print(f"chosen on validation: {best['system']} (test top-1 {best['test_top1']:.4f}); "
          f"distillation teacher: {teacher['system']}")

    if not args.student_seeds:  # the choice only: no students, no speed run
        save("best-system", {"candidates": rows, "chosen": best["system"], "teacher": teacher["system"],
                             "args": vars(args)})
        return

    # The students, one per seed, all taught by the chosen teacher.
    student_rows, students = [], []
    for seed in map(int, args.student_seeds.split(",")):
        student = work / f"student-e{args.distill_epochs}-c{args.teacher_crops}-{'+'.join(teacher['members'])}-s{seed}"
        cmd = [sys.executable, "-m", "hccr.cli", "distill", "--data", str(FEW / "subsets" / "all-s0"), "--out",
               str(student), "--epochs", str(args.distill_epochs), "--teacher-crops", str(args.teacher_crops),
               "--weights", ",".join(str(w) for w in teacher["weights"]), "--set", "init=gb2312-synth", "--set",
               f"seed={seed}"]
        for n in teacher["members"]:
            cmd += ["--teacher", str(MEMBERS[n])]
        t0 = time.perf_counter()
        if not (student / "done").exists():
            subprocess.run(cmd + (["--resume"] if (student / "last.state.pt").exists() else []), check=True)
            (student / "done").write_text(f"{time.perf_counter() - t0:.1f}\n")
        students.append(student)
        for crops in (1, 5):
            v = score(predictions(f"{student.name}", student, "val", crops, work))
            t = score(predictions(f"{student.name}", student, "test", crops, work))
            student_rows.append({"system": f"student seed {seed}, {crops} crop(s)", "seed": seed, "crops": crops,
                                 "train_seconds": float((student / "done").read_text()), "cmd": " ".join(cmd[1:]),
                                 **{f"val_{k}": x for k, x in v.items()}, **{f"test_{k}": x for k, x in t.items()}})
    for crops in (1, 5):
        own = [r for r in student_rows if r["crops"] == crops]
        student_rows.append({"system": f"students, {crops} crop(s), mean of {len(own)} seeds", "crops": crops,
                             **{f"{sp}_{m}": float(np.mean([r[f"{sp}_{m}"] for r in own]))
                                for sp in ("val", "test") for m in ("top1", "top5", "logloss")},
                             "test_top1_std": float(np.std([r["test_top1"] for r in own]))})
    print(table(student_rows, ["system", "val_top1", "test_top1", "test_top5"]))

    # Speed, the paper's system measured in the same run.
    speed = student_speed(students[0], [MEMBERS[n] for n in teacher["members"]], teacher["system"], work, args.budget)
    save("best-system", {"candidates": rows, "chosen": best["system"], "teacher": teacher["system"],
                         "student": student_rows, "speed": speed,
                         "args": vars(args)})
    print(json.dumps({"chosen": best["system"], "test_top1": best["test_top1"]}))


if __name__ == "__main__":
    main()
