"""Ensembles of synthetic-only sim2real runs: the mean of their five-crop probabilities.

    python benchmarks/sim2real_ensemble.py --split val rn-s123 rn-s124 rn-s125

Each NAME is a run folder of ``benchmarks/sim2real.py`` (``--name NAME``) that scored the same
split; its ``pred-SPLIT.npz`` holds the probabilities of every scored real image in one order.
No real image is used for training or weighting: the members are averaged with equal weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, save  # noqa: E402

from hccr.evaluate import topk_accuracy  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="+", help="sim2real run names (folders under --work)")
    ap.add_argument("--split", choices=["val", "test"], default="val")
    ap.add_argument("--work", default=str(OUT / "sim2real"))
    ap.add_argument("--out", default=None, help="result name (default: sim2real-ens-<names>-<split>)")
    args = ap.parse_args()
    probs, labels, chars = [], None, None
    for name in args.names:
        f = Path(args.work) / name / f"pred-{args.split}.npz"
        if not f.exists():
            sys.exit(f"{f}: no predictions; run benchmarks/sim2real.py --name {name} --split {args.split} first")
        d = np.load(f)
        if labels is None:
            labels, chars = d["labels"], d["chars"]
        elif not (np.array_equal(labels, d["labels"]) and np.array_equal(chars, d["chars"])):
            sys.exit(f"{f}: scored other images or classes than {args.names[0]}")
        probs.append(d["probs"].astype(np.float64))
    members = [topk_accuracy(p, labels) for p in probs]
    mean = np.mean(probs, 0)
    acc = topk_accuracy(mean, labels)
    for name, m in zip(args.names, members, strict=True):
        print(f"{name}: top-1 {m['top1']:.4f} (top-5 {m['top5']:.4f})")
    print(f"ensemble of {len(probs)} on {len(labels)} real {args.split} images: top-1 {acc['top1']:.4f} "
          f"(top-5 {acc['top5']:.4f})")
    per_class = {str(ch): float((mean[labels == i].argmax(1) == i).mean()) for i, ch in enumerate(chars)
                 if (labels == i).any()}
    save(args.out or f"sim2real-ens-{'+'.join(args.names)}-{args.split}",
         {"members": args.names, "split": args.split, "images": int(len(labels)),
          "member_scores": dict(zip(args.names, members, strict=True)), **acc, "per_class": per_class})


if __name__ == "__main__":
    main()
