"""Model selection on held-out writers: validation = the last 10% of each class by file number.

    python benchmarks/tail_split.py [--epochs 40] [--set model_args.conv_stages=0 ...] --name NAME

The PNG export carries no writer ids, but CASIA numbers each class's files in writer order, so the
tail of every class comes from writers that class never saw in training: closer to the test
condition (unseen writers) than the store's random split, where the writer of a validation image
also wrote other training images. Reuses the store made by benchmarks/casia22.py (images are
symlinked, only split.npy differs) and reports the final and best validation top-1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, REAL, save  # noqa: E402

from hccr.config import apply_overrides, get_preset  # noqa: E402
from hccr.data.images import scan_image_folder  # noqa: E402
from hccr.data.store import Store, store_view  # noqa: E402
from hccr.train import fit  # noqa: E402
from hccr.utils import use_all_cores  # noqa: E402


def tail_store(src: Path, dst: Path, fraction: float = 0.1) -> Path:
    if (dst / "split.npy").exists():
        return dst
    st = Store(src)
    index = {c: i for i, c in enumerate(st.charset)}
    items = scan_image_folder(REAL / "CASIA-HWDB_Train" / "Train")  # the order `hccr convert` stored them in
    labels = np.array([index[it.char] for it in items])
    if len(items) != len(st) or not (labels == np.asarray(st.labels)).all():
        sys.exit(f"{src}: sample order differs from the PNG folder; rebuild it with benchmarks/casia22.py")
    split = np.zeros(len(items), np.uint8)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)  # sorted by file number
        split[idx[-round(len(idx) * fraction):]] = 1
    return store_view(src, dst, split)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--preset", default="fast-1")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--work", default=str(OUT / "tail-split"))
    args = ap.parse_args()
    use_all_cores()
    src = OUT / "casia22" / "train"
    if not (src / "manifest.json").exists():
        sys.exit(f"{src} not found: run benchmarks/casia22.py first")
    store = tail_store(src, Path(args.work) / "store")
    cfg = apply_overrides(get_preset(args.preset), [f"epochs={args.epochs}", *args.overrides])
    out = Path(args.work) / args.name
    t = time.perf_counter()
    fit(cfg, store, out, resume=(out / "last.state.pt").exists(), progress=False)
    rows = [json.loads(line) for line in open(out / "metrics.jsonl", encoding="utf-8")]
    res = {"name": args.name, "overrides": args.overrides, "epochs": args.epochs,
           "final_val": rows[-1]["val_acc"], "best_val": rows[-1]["best_val_acc"],
           "mean_last5": float(np.mean([r["val_acc"] for r in rows[-5:]])), "wall_seconds": time.perf_counter() - t}
    print(json.dumps(res))
    save(f"tail-split-{args.name}", res)


if __name__ == "__main__":
    main()
