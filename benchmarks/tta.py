"""Test-time views beyond the five crops, chosen on the held-out-writer tail.

    python benchmarks/tta.py [--split val|test] RUN [RUN ...]

Each member predicts every image of casia-hwdb-22's held-out-writer tail (``--split val``, the
1,117 images the 90% members of benchmarks/best_system.py never saw) or the test images from several
views of the 64 px image: the whole image (c1), the paper's five crops of the image enlarged by
280/256 (c5, hccr's default), five crops of a wider enlargement (300/256, c5w), the image shrunk
to 56 px and padded (zoomout) and turned by -6 / +6 degrees (rot). Each view set's logits are
averaged per member, as hccr's crops are; members are averaged as probabilities, as ``hccr
ensemble`` does. Prints each member's and the equal-weight ensemble's top-1 and log-loss per view set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT  # noqa: E402

from hccr.augment import to_model_input  # noqa: E402
from hccr.data.store import Store  # noqa: E402
from hccr.predict import Recognizer  # noqa: E402
from hccr.preprocess import crop_boxes  # noqa: E402
from hccr.runtime import resize_batch  # noqa: E402
from hccr.utils import use_all_cores  # noqa: E402

C5 = [f"c5-{k}" for k in range(5)]
SETS = {"c1": ["c1"], "c5 (default)": C5, "c5w": [f"c5w-{k}" for k in range(5)], "c5 + c1": [*C5, "c1"],
        "c5 + c5w": [*C5, *(f"c5w-{k}" for k in range(5))], "c5 + zoomout": [*C5, "zoomout"],
        "c5 + rot": [*C5, "rot-6", "rot6"], "every view": None}


def views(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """(B, 1, 64, 64) ink-high images -> named (B, 1, 64, 64) views."""
    n = x.shape[-1]
    out = {"c1": x}
    for tag, ratio in (("c5", 280 / 256), ("c5w", 300 / 256)):
        s = round(n * ratio)
        big = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
        for k, (a, b) in enumerate(crop_boxes(s, n)):
            out[f"{tag}-{k}"] = big[:, :, a:a + n, b:b + n]
    m = round(n * 56 / 64)
    out["zoomout"] = F.pad(F.interpolate(x, size=(m, m), mode="bilinear", align_corners=False),
                           ((n - m) // 2, n - m - (n - m) // 2) * 2)
    for deg in (-6, 6):
        t = np.deg2rad(deg)
        theta = torch.tensor([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0]], dtype=torch.float32)
        out[f"rot{deg}"] = F.grid_sample(x, F.affine_grid(theta.expand(len(x), 2, 3), x.shape, align_corners=False),
                                         align_corners=False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--split", choices=["val", "test"], default="val")
    args = ap.parse_args()
    use_all_cores()
    st = Store(OUT / "fewshot" / "subsets" / "all-s0" if args.split == "val" else OUT / "sim2real" / "real-test")
    idx = st.indices("val") if args.split == "val" else np.arange(len(st))
    images, labels = np.asarray(st.images)[idx], np.asarray(st.labels)[idx]
    logits = []
    for run in args.runs:
        rec, per = Recognizer.from_checkpoint(run), {}
        size = rec.spec.size
        for i in range(0, len(images), 256):
            for name, v in views(torch.from_numpy(resize_batch(images[i:i + 256], size))).items():
                with torch.inference_mode():
                    per.setdefault(name, []).append(rec.model(to_model_input(v, rec.spec.ink)).float())
        logits.append({k: torch.cat(v) for k, v in per.items()})
    for name, chosen in SETS.items():
        probs = [torch.stack([m[v] for v in (chosen or list(m))]).mean(0).softmax(-1).numpy() for m in logits]
        ens = np.mean(probs, 0)
        members = " / ".join(f"{(p.argmax(1) == labels).mean():.4f}" for p in probs)
        ll = -np.log(np.clip(ens[np.arange(len(labels)), labels], 1e-12, None)).mean()
        print(f"{name:14s} members {members}  ensemble {(ens.argmax(1) == labels).mean():.4f}  log-loss {ll:.3f}")


if __name__ == "__main__":
    main()
