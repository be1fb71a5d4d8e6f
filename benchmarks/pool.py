"""Every member trained on all of casia-hwdb-22's training writers, pooled: which ensemble, chosen on validation.

    python benchmarks/pool.py

Three benchmarks have trained fast members on the same store (every training writer, the same
random 10% of images held out, converted at 64 px or, same split, at 96 px): the paper pipeline
(benchmarks/casia22.py: fast-1/2/3, 40 epochs), the chosen system retrained (benchmarks/retrain_all.py:
ft-s0, ft-s2, scratch-s1, 20 epochs) and three fast-1 seeds at 96 px (retrain_all.py --size 96).
None of them saw the held-out 10%; each picked its best epoch on it, so validation figures are a
little optimistic, alike for all. A fixed list of candidate ensembles is scored on that 10%
(five crops each member) and the best top-1 (then lowest log-loss, then fewest members) is chosen;
test figures (2,674 images, 22-way) are printed beside every candidate, never used to choose.

    python benchmarks/pool.py --family resnet

does the same for the lean ResNet members retrained on every writer (benchmarks/retrain_all.py
--work .bench/retrain10: rnft and s2r, seeds 0-2, 20 epochs) and the three 20-epoch students
distilled from the chosen triple (one crop each, as they predict).

    python benchmarks/pool.py --family mixed

pools both architectures: the ResNet family above with CharNet-S fast-1 trained from scratch on
every writer (seed 1 at 64 px, seeds 1-3 at 96 px), each family's candidates plus mixed ensembles
fixed in CANDIDATES["mixed"] before any of them was scored.

    python benchmarks/pool.py --family mixed-tail

scores the same candidates (students aside) with the members trained on 90% of the writers
(benchmarks/fewshot.py "all" runs) on the held-out-writer tail of the training images, where
ensembles at 97-98% leave room to differ; the test figures beside them are of those 90% members.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from best_system import score  # noqa: E402
from common import OUT, save, table  # noqa: E402

from hccr.ensemble import combine  # noqa: E402
from hccr.predict import Recognizer  # noqa: E402
from hccr.runtime import Predictions, predict_inputs  # noqa: E402
from hccr.utils import use_all_cores  # noqa: E402

RA, R10 = OUT / "retrain-all", OUT / "retrain10"
C22 = (OUT / "casia22" / "train", OUT / "casia22" / "test")
# family -> name -> (run, store holding the 10% validation split, test store, crops)
MEMBERS = {
    "charnet": {
        **{f"paper-fast-{i}": (OUT / "casia22" / "models" / f"fast-{i}", *C22, 5) for i in (1, 2, 3)},
        **{m: (RA / m, *C22, 5) for m in ("ft-s0", "ft-s2", "scratch-s1")},
        **{f"s{i}-96px": (RA / f"scratch-s{i}-96px", RA / "train96", RA / "test96", 5) for i in (1, 2, 3)},
    },
    "resnet": {
        **{f"{k}-s{i}": (R10 / f"{k}-s{i}", *C22, 5) for k in ("rnft", "s2r") for i in (0, 1, 2)},
        **{f"student-s{i}": (R10 / f"student-e20-s{i}-tc1", *C22, 1) for i in (1, 2, 3)},
    },
}
# Two architectures in one pool: the ResNet family and the CharNet-S members trained from scratch.
MEMBERS["mixed"] = {**MEMBERS["resnet"], **{m: MEMBERS["charnet"][m] for m in ("scratch-s1", "s1-96px", "s2-96px", "s3-96px")}}
# The same members trained on 90% of the writers (benchmarks/fewshot.py "all" runs), scored on the
# held-out-writer tail: the validation that has room to tell ensembles apart (no students here).
FEW, S2R = OUT / "fewshot", OUT / "sim2real"
TAIL = (FEW / "subsets" / "all-s0", S2R / "real-test", 5)
MEMBERS["mixed-tail"] = {
    **{f"rnft-s{i}": (FEW / "runs" / f"finetune-all-s{i}-gsynth", *TAIL) for i in (0, 1, 2)},
    **{f"s2r-s{i}": (FEW / "runs" / f"finetune-all-s{i}-s2r", *TAIL) for i in (0, 1, 2)},
    "scratch-s1": (FEW / "runs" / "scratch-all-s1-400", *TAIL),
    **{f"s{i}-96px": (FEW / "runs" / f"scratch-all-s{i}-96px", FEW / "subsets-96" / f"all-s{i}", S2R / "real-test-96", 5)
       for i in (1, 2, 3)},
}
PAPER = ["paper-fast-1", "paper-fast-2", "paper-fast-3"]
CHOSEN = ["ft-s0", "ft-s2", "scratch-s1"]
PX96 = ["s1-96px", "s2-96px", "s3-96px"]
TRIPLE = ["rnft-s0", "rnft-s2", "s2r-s1"]
SIX = [f"{k}-s{i}" for k in ("rnft", "s2r") for i in (0, 1, 2)]
STUDENTS = ["student-s1", "student-s2", "student-s3"]
CANDIDATES = {
    "charnet": [
        *[(m, [m], None) for m in MEMBERS["charnet"]],
        ("paper pipeline, weights 0.3/0.2/0.5", PAPER, [0.3, 0.2, 0.5]),
        ("chosen triple (ft-s0 + ft-s2 + scratch-s1)", CHOSEN, None),
        ("96 px triple", PX96, None),
        ("chosen triple + 96 px triple", CHOSEN + PX96, None),
        ("all nine, equal weights", list(MEMBERS["charnet"]), None),
    ],
    "resnet": [
        *[(m, [m], None) for m in MEMBERS["resnet"]],
        ("chosen triple (rnft-s0 + rnft-s2 + s2r-s1)", TRIPLE, None),
        ("rnft x3", SIX[:3], None),
        ("s2r x3", SIX[3:], None),
        ("all six members", SIX, None),
        ("the three students", STUDENTS, None),
        ("chosen triple + its three students", TRIPLE + STUDENTS, None),
        ("all six + the three students", SIX + STUDENTS, None),
    ],
}
CANDIDATES["mixed"] = [
    *CANDIDATES["resnet"],
    *[(m, [m], None) for m in ("scratch-s1", *PX96)],
    ("96 px triple", PX96, None),
    ("ResNet triple + CharNet-S scratch-s1", TRIPLE + ["scratch-s1"], None),
    ("ResNet triple + 96 px triple", TRIPLE + PX96, None),
    ("ResNet triple + 96 px triple + scratch-s1", TRIPLE + PX96 + ["scratch-s1"], None),
    ("ResNet six + 96 px triple", SIX + PX96, None),
    ("every member (ten)", SIX + PX96 + ["scratch-s1"], None),
    ("ResNet triple + 96 px triple + the three students", TRIPLE + PX96 + STUDENTS, None),
    ("every member (ten) + the three students", list(MEMBERS["mixed"]), None),
]
CANDIDATES["mixed-tail"] = [c for c in CANDIDATES["mixed"] if set(c[1]) <= set(MEMBERS["mixed-tail"])]


HOW = {"charnet": "benchmarks/casia22.py, benchmarks/retrain_all.py and retrain_all.py --system "
                  "\"scratch-s1 + scratch-s2 + scratch-s3\" --size 96",
       "resnet": "benchmarks/retrain_all.py --work .bench/retrain10 --system \"rnft-s0 + rnft-s1 + rnft-s2 + s2r-s0 + "
                 "s2r-s1 + s2r-s2\", then with --student-seeds 1,2,3 --teacher-crops 1 --distill-epochs 20"}
HOW["mixed"] = (HOW["resnet"] + "; and retrain_all.py --system \"scratch-s1 + scratch-s2 + scratch-s3\" --size 96, "
                "retrain_all.py --system scratch-s1")
HOW["mixed-tail"] = ("benchmarks/fewshot.py --split val --shots all --seeds 0,1,2 --methods finetune --ft-lr 0.001 --name "
                     "gsynth (and --name s2r --set init=.bench/sim2real/p2-s123/model), then --methods scratch --seeds 1 "
                     "and --methods scratch --seeds 1,2,3 --size 96 --name 96px")


def predictions(family: str, name: str, split: str) -> Predictions:
    run, train, test, crops = MEMBERS[family][name]
    path = OUT / ("pool-tail" if family.endswith("-tail") else "pool") / f"{name}-{split}{'' if crops == 5 else f'-c{crops}'}.npz"
    if path.exists():
        return Predictions.load(path)
    rec = Recognizer.from_checkpoint(run)
    store, sp = (train, "val") if split == "val" else (test, "all")
    pred = predict_inputs(rec, [str(store)], crops=crops, split=sp, progress=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    pred.save(path)
    return pred


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", choices=list(MEMBERS), default="charnet")
    fam = ap.parse_args().family
    use_all_cores()
    members = MEMBERS[fam]
    missing = [str(r) for r, *_ in members.values() if not (r / "best.json").exists()]
    if missing:
        sys.exit(f"run {HOW[fam]} first; missing: {', '.join(missing)}")
    preds = {n: {sp: predictions(fam, n, sp) for sp in ("val", "test")} for n in members}
    first = next(iter(members))
    for sp in ("val", "test"):  # the 64 and 96 px stores must hold the same images in the same order
        ref = preds[first][sp].labels
        bad = [n for n in members if not np.array_equal(preds[n][sp].labels, ref)]
        if bad:
            sys.exit(f"{sp} labels differ between stores for {bad}: reconvert them with the same split")
    rows = []
    for name, group, weights in CANDIDATES[fam]:
        w = weights or [1.0] * len(group)
        v = score(combine([preds[m]["val"] for m in group], w))
        t = score(combine([preds[m]["test"] for m in group], w))
        rows.append({"system": name, "members": group, "weights": w, **{f"val_{k}": x for k, x in v.items()},
                     **{f"test_{k}": x for k, x in t.items()}})
    best = max(rows, key=lambda r: (r["val_top1"], -r["val_logloss"], -len(r["members"])))
    print(table(rows, ["system", "val_top1", "val_logloss", "test_top1", "test_top5"]))
    print(f"chosen on validation: {best['system']} (val {best['val_top1']:.4f}, test {best['test_top1']:.4f})")
    save("pool" if fam == "charnet" else f"pool-{fam}", {"val_images": int(len(preds[first]["val"].labels)),
                                                         "test_images": int(len(preds[first]["test"].labels)),
                                                         "rows": rows, "chosen": best["system"]})


if __name__ == "__main__":
    main()
