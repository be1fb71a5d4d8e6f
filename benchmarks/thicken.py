"""Test-time stroke thickening: does making real strokes look like the synthetic ones help?

    python benchmarks/thicken.py --model gb2312-synth --model gb2312 [--chars 实宠审室宪宰害宴容宿]

The shipped GB2312 models learnt from built-in synthetic writers, whose strokes are wider and
darker than real CASIA writing (issue 10's comparison: 2.69 vs 1.91 px at 64, ink 0.70 vs 0.55).
This scores each model on the real held-out-writer tail (validation only: the last 10% of each
class by file number), 6,763-way, one crop, with the normalised image left as it is and with
stroke-widening transforms applied before the network: a soft grey dilation
``max(x, d * maxpool3x3(x))`` and a Gaussian blur (optionally with an ink gain). ``--chars``
scores a subset (e.g. the 11/11 protocol's group B, characters a realmix model never saw in real
form). Nothing here is tuned on test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import REAL, save, table, tail_split  # noqa: E402

import hccr  # noqa: E402
from hccr.augment import batched_blur  # noqa: E402
from hccr.data.images import load_gray  # noqa: E402
from hccr.evaluate import topk_accuracy  # noqa: E402
from hccr.utils import use_all_cores  # noqa: E402


def dilate(x: np.ndarray, strength: float) -> np.ndarray:
    """Soft grey dilation: each pixel at least ``strength`` x the brightest of its 3x3 neighbourhood."""
    t = torch.from_numpy(x)
    return torch.maximum(t, strength * torch.nn.functional.max_pool2d(t, 3, 1, 1)).numpy()


def blur(x: np.ndarray, sigma: float, gain: float = 1.0) -> np.ndarray:
    """The training pipeline's Gaussian blur (zero padding, radius 3 sigma), then an ink gain."""
    t = torch.from_numpy(x)
    return (batched_blur(t, torch.full((len(t),), sigma), sigma) * gain).clamp(0, 1).numpy()


TRANSFORMS = {
    "none": lambda x: x,
    **{f"dilate {d}": (lambda x, d=d: dilate(x, d)) for d in (0.3, 0.4, 0.5, 0.6)},
    **{f"blur {s} x{g}": (lambda x, s=s, g=g: blur(x, s, g)) for s in (0.7, 1.0) for g in (1.0, 1.5)},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", help="shipped name or checkpoint/ONNX file (repeatable)")
    ap.add_argument("--chars", default=None, help="score only these characters' images")
    args = ap.parse_args()
    if not REAL.is_dir():
        sys.exit(f"real data not found at {REAL}")
    use_all_cores()
    _, items = tail_split(REAL / "CASIA-HWDB_Train" / "Train")
    if args.chars:
        items = [it for it in items if it.char in args.chars]
    rows = []
    for name in args.model or ["gb2312-synth", "gb2312"]:
        rec = hccr.load(name)
        known = [it for it in items if it.char in rec.charset.index]
        labels = np.array([rec.charset.index[it.char] for it in known])
        x = rec.normalize_images([load_gray(it.path) for it in known], 1)
        for tag, fn in TRANSFORMS.items():
            acc = topk_accuracy(rec.probabilities(fn(x), 1), labels, ks=(1, 5))
            rows.append({"model": name, "images": len(known), "transform": tag,
                         "top1": round(acc["top1"], 4), "top5": round(acc["top5"], 4)})
            print(rows[-1], flush=True)
    print(table(rows, ["model", "images", "transform", "top1", "top5"]))
    save(f"thicken{'-' + args.chars if args.chars else ''}", {"chars": args.chars, "rows": rows})


if __name__ == "__main__":
    main()
