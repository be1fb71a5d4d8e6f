"""The paper's own recipe, checked: paper-1 next to fast-1 at one reduced input size and one epoch count.

    python benchmarks/paper_recipe.py [--size 96] [--epochs 40] [--presets paper-1,fast-1]

paper-1 is the paper's CharNet (flatten-dense auxiliary heads, ReLU before BN, no BN in the
Inception blocks) with binary focal loss, Adam 1e-3, the aspect-ignoring stretch and dark ink; at
256 px it does not fit a 2-core CPU's day, so both recipes train at ``--size`` (96 px: the
smallest input CharNet supports) for the same epochs on casia-hwdb-22's training images, held-out
writers (the tail 10% of each class) for validation, stores converted at that size. Test top-1
(five crops, the best-validation checkpoint) is reported once per recipe, with wall time and the
training loop's img/s. Resumable: finished runs are reused, an interrupted one resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, real_stores, save  # noqa: E402
from tail_split import tail_store  # noqa: E402

from hccr.config import apply_overrides, get_preset  # noqa: E402
from hccr.data.store import Store  # noqa: E402
from hccr.evaluate import topk_accuracy  # noqa: E402
from hccr.models import create_model  # noqa: E402
from hccr.predict import Recognizer  # noqa: E402
from hccr.runtime import predict_inputs  # noqa: E402
from hccr.train import fit  # noqa: E402
from hccr.utils import use_all_cores  # noqa: E402


def stores(work: Path, size: int) -> tuple[Path, Path]:
    full, test = real_stores(work / f"train{size}", work / f"test{size}", size)
    return tail_store(full, work / f"tail{size}"), test


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--presets", default="paper-1,fast-1")
    ap.add_argument("--work", default=str(OUT / "paper-recipe"))
    args = ap.parse_args()
    use_all_cores()
    work = Path(args.work)
    train, test = stores(work, args.size)
    rows = []
    for preset in args.presets.split(","):
        out = work / f"{preset}-{args.size}px-e{args.epochs}"
        cfg = apply_overrides(get_preset(preset), [f"image_size={args.size}", f"epochs={args.epochs}"])
        t = time.perf_counter()
        if not (out / "done").exists():
            fit(cfg, train, out, resume=(out / "last.state.pt").exists(), progress=False)
            (out / "done").write_text("")
        metrics = [json.loads(line) for line in open(out / "metrics.jsonl", encoding="utf-8")]
        rec = Recognizer.from_checkpoint(out)
        acc = topk_accuracy((pred := predict_inputs(rec, [str(test)], crops=5, progress=False)).probs, pred.labels)
        row = {"preset": preset, "size": args.size, "epochs": args.epochs, "test_top1": acc["top1"],
               "test_top5": acc["top5"], "best_val": metrics[-1]["best_val_acc"], "final_val": metrics[-1]["val_acc"],
               "train_seconds": float(sum(m["train_seconds"] for m in metrics)),
               "loop_img_s": float(np.median([m["train_img_per_s"] for m in metrics])),
               "params": int(sum(p.numel() for p in create_model(cfg.model, len(rec.charset), args.size,
                                                                  **cfg.model_args).parameters())),
               "wall_seconds_this_call": time.perf_counter() - t}
        rows.append(row)
        print(json.dumps(row), flush=True)
    save(f"paper-recipe-{args.size}px-e{args.epochs}", {"rows": rows, "test_images": len(Store(test))})


if __name__ == "__main__":
    main()
