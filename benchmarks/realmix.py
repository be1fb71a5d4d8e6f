"""Does real handwriting of some characters teach the GB2312 model to read others?

    python benchmarks/realmix.py [--steps 1500] [--split val|test]
    python benchmarks/realmix.py --final      (the same recipe with every GB2312 character's real images)
    python benchmarks/realmix.py --init RUN/gb2312.safetensors --name NAME [--no-control]
                                              (another synthetic-only base model in gb2312-synth's place)

A model trained on synthetic handwriting alone (gb2312-synth) reads real handwriting far worse
than synthetic (docs/benchmarks.md). Real images exist for a few characters only, so the question that matters for the thousands without
them is whether real handwriting of *some* characters, mixed into training, carries over to the
*others*. Protocol (issue 10's 11/11 split, GB2312 characters only): the real training images of
group A (宀它宄宇守安完宏宓宕宙, minus each class's held-out-writer tail) are mixed with fresh
synthetic writers of all 6,763 characters, and gb2312-synth is fine-tuned on the mix. A
control arm fine-tunes on the same synthetic writers alone, same steps. Both and gb2312-synth
are scored 6,763-way on the real images of group B (实宠审室宪宰害宴容宿; 宬 is not
GB2312), which no arm saw in real form: on the held-out-writer tail of the training images
(val, for choosing) or on the test images (once). Group A's scores are printed for the record.
Fine-tuned arms with real images are also scored with their training class prior divided out
(post-hoc logit adjustment: the prior is known from the store, nothing is tuned), which removes
the pull towards the classes that have real images.

``--final`` trains the recipe chosen here on the real training images (head) of all 21 GB2312
characters instead of group A's, for packaging (``hccr package RUN --divide-prior``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, REAL, save, table, tail_split  # noqa: E402

import hccr  # noqa: E402
from hccr.config import apply_overrides, get_preset  # noqa: E402
from hccr.data.images import load_gray, scan_image_folder  # noqa: E402
from hccr.data.store import ConvertOptions, Store, convert  # noqa: E402
from hccr.data.synth import SynthConfig, synth  # noqa: E402
from hccr.evaluate import topk_accuracy  # noqa: E402
from hccr.shipped import counts_per_class, record_evaluations  # noqa: E402
from hccr.train import fit  # noqa: E402
from hccr.utils import use_all_cores  # noqa: E402

GROUP_A = "宀它宄宇守安完宏宓宕宙"
GROUP_B = "实宠审室宪宰害宴容宿"
BUILTIN = Path(hccr.__file__).parent / "assets" / "style-builtin.json"  # the shipped models' writers


def class_prior(store: Path, charset) -> np.ndarray:
    """The training store's class frequencies, in the model's class order."""
    prior = np.zeros(len(charset))
    prior[[charset.index[c] for c in Store(store).charset]] = counts_per_class(store)
    return prior / prior.sum()


def score(model: str | Path, items: list, chars: str, store: Path | None = None) -> dict:
    rec = hccr.load(str(model))
    keep = [it for it in items if it.char in chars]
    probs = rec.predict_proba([load_gray(it.path) for it in keep], 1)  # one crop, as the shipped models predict
    if store is not None:  # post-hoc logit adjustment: divide out the training prior (known, not tuned)
        probs = probs / np.maximum(class_prior(store, rec.charset), 1e-12)
        probs /= probs.sum(1, keepdims=True)
    labels = np.array([rec.charset.index[it.char] for it in keep])
    acc = topk_accuracy(probs, labels, ks=(1, 5))
    a_idx = [rec.charset.index[c] for c in GROUP_A]
    # Group B answered among every class but A's: the style learnt, without the pull towards A's classes.
    masked = probs.copy()
    if not set(chars) & set(GROUP_A):
        masked[:, a_idx] = 0
    return {"images": len(keep), "top1": acc["top1"], "top5": acc["top5"],
            "predicted_in_A": float(np.isin(probs.argmax(1), a_idx).mean()),
            "top1_without_A": float((masked.argmax(1) == labels).mean())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1500, help="fine-tuning steps, batch 256, both arms")
    ap.add_argument("--writers", type=int, default=8, help="fresh synthetic writers of all 6,763 characters")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--split", choices=["val", "test"], default="val")
    ap.add_argument("--work", default=str(OUT / "realmix"))
    ap.add_argument("--final", action="store_true", help="train on every GB2312 character's real images")
    ap.add_argument("--init", default="gb2312-synth", help="the synthetic-only model to fine-tune (shipped name or file)")
    ap.add_argument("--base-name", default=None,
                    help="the base model's name in tables and --record (default: --init, or its file's folder); "
                         "e.g. gb2312-synth when --init is the checkpoint it was packaged from")
    ap.add_argument("--name", default="", help="suffix of the run folders and result file (use with --init)")
    ap.add_argument("--no-control", action="store_true", help="skip the synthetic-only control arm")
    ap.add_argument("--record", default=None, help="with --split test: add the group-B figure of the prior-divided "
                                                   "arm to this model's evaluations (a checkpoint .json)")
    args = ap.parse_args()
    if not REAL.is_dir():
        sys.exit(f"real data not found at {REAL}")
    use_all_cores()
    work = Path(args.work)
    head, tail = tail_split(REAL / "CASIA-HWDB_Train" / "Train")

    # Group A's real training images (head only), as a PNG export of links: never copied.
    group = GROUP_A + GROUP_B if args.final else GROUP_A
    real_a = work / ("real-all" if args.final else "real-A")
    if not real_a.exists():
        for it in head:
            if it.char in group:
                (real_a / it.char).mkdir(parents=True, exist_ok=True)
                (real_a / it.char / Path(it.path).name).symlink_to(Path(it.path).resolve())
    t = time.perf_counter()
    files = synth(work / "synth", SynthConfig(chars="gb2312", writers=args.writers, seed=4242, style=str(BUILTIN)),
                  progress=False)
    synth_s = time.perf_counter() - t
    stores = {"synthetic only": ([str(f) for f in files], work / "store-synth"),
              "synthetic + real A": ([str(f) for f in files] + [str(real_a)], work / "store-mix")}
    if args.no_control:
        del stores["synthetic only"]
    if args.final:
        stores = {"synthetic + real, all GB2312 characters": ([str(f) for f in files] + [str(real_a)],
                                                              work / "store-final")}
    for sources, store in stores.values():
        if not (store / "manifest.json").exists():
            convert(sources, store, ConvertOptions(charset="gb2312", val_fraction=0.01, seed=0), progress=False)

    rows = []
    eval_items = tail if args.split == "val" else scan_image_folder(REAL / "CASIA-HWDB_Test" / "Test")
    base_name = args.base_name or (Path(args.init).parent.name if Path(args.init).is_file() else args.init)
    models = {f"{base_name} (no fine-tuning)": (args.init, None)}
    for arm, (_, store) in stores.items():
        kind = "run-final" if args.final else "run-mix" if "real" in arm else "run-synth"
        run = work / kind / f"{args.name + '-' if args.name else ''}s{args.steps}-lr{args.lr:g}"
        if not (run / "done").exists():
            cfg = apply_overrides(get_preset("gb2312"), [f"init={args.init}", f"steps={args.steps}", f"lr={args.lr}",
                                                         "warmup_epochs=0.05"])
            t = time.perf_counter()
            fit(cfg, store, run, resume=(run / "last.state.pt").exists(), progress=False)
            (run / "done").write_text(f"{time.perf_counter() - t:.1f}\n")
        models[arm] = (run / "last.safetensors", None)
        if "real" in arm:
            models[f"{arm}, training prior divided out"] = (run / "last.safetensors", store)
    for arm, (model, prior_store) in models.items():
        b, a = score(model, eval_items, GROUP_B, prior_store), score(model, eval_items, GROUP_A, prior_store)
        rows.append({"model": arm, "B_top1": b["top1"], "B_top5": b["top5"], "B_predicted_in_A": b["predicted_in_A"],
                     "B_top1_without_A": b["top1_without_A"],
                     "A_top1": a["top1"], "A_top5": a["top5"], "B_images": b["images"], "A_images": a["images"]})
    print(table(rows, ["model", "B_top1", "B_top5", "B_predicted_in_A", "B_top1_without_A", "A_top1", "A_top5"]))
    if args.record and args.split == "test" and not args.final:
        row = next(r for r in rows if "prior divided out" in r["model"])
        base = rows[0]
        record_evaluations(args.record, [
            {"what": f"characters never seen in real form: the same recipe with real images of 11 characters only, "
                     f"read on the real test images of 10 others ({row['B_images']} images, {GROUP_B}), 6,763-way "
                     f"({base_name} on the same images: top1 {base['B_top1']:.4f}, top5 {base['B_top5']:.4f})",
             "result": {"top1": round(row["B_top1"], 4), "top5": round(row["B_top5"], 4)},
             "command": "python benchmarks/realmix.py --split test"}])
        print(f"recorded the group-B figure in {args.record}")
    save(f"realmix{'-final' if args.final else ''}{'-' + args.name if args.name else ''}-{args.split}"
         f"-s{args.steps}-lr{args.lr:g}",
         {"init": args.init, "split": args.split, "steps": args.steps, "lr": args.lr, "writers": args.writers,
          "synth_seconds": synth_s, "rows": rows})


if __name__ == "__main__":
    main()
