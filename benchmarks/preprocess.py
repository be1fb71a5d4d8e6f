"""Input preparation per image: one cleaning for the batch and the several-characters check, vs two.

    python benchmarks/preprocess.py [--n 500] [--repeats 3]

Recognizers frame each image and check whether it holds several characters (a word or a line).
Until the clean-once change they cleaned every image twice, once for each, and the check cleaned a
photo at full resolution. This times both ways in one run, interleaved, on casia-hwdb-22 test PNGs
(about 60 px) and on the same characters as 2,000 px photos (gray, grainy paper).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from common import REAL, save, table  # noqa: E402

from hccr.data.images import load_gray, scan_image_folder  # noqa: E402
from hccr.preprocess import InputSpec, clean, looks_like_several  # noqa: E402


def two_cleanings(spec: InputSpec, images: list[np.ndarray]) -> None:
    spec.batch(images)
    [looks_like_several(clean(im)) for im in images]  # the check as it was: its own cleaning, full size


def one_cleaning(spec: InputSpec, images: list[np.ndarray]) -> None:
    spec.batch_checked(images)


def photo(img: np.ndarray, rng: np.random.Generator, side: int = 2000) -> np.ndarray:
    big = np.asarray(Image.fromarray(img).resize((side, side), Image.Resampling.BILINEAR), np.float32)
    paper = 200 + rng.normal(0, 6, big.shape)
    return np.clip(big / 255 * paper, 0, 255).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--photos", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if not REAL.is_dir():
        sys.exit(f"real data not found at {REAL}")
    items = scan_image_folder(REAL / "CASIA-HWDB_Test" / "Test")[:: 2674 // args.n][: args.n]
    small = [load_gray(it.path) for it in items]
    rng = np.random.default_rng(0)
    sets = {"casia test PNG": small, "2,000 px photo": [photo(im, rng) for im in small[: args.photos]]}
    spec = InputSpec(64)  # five crops: 70 px, as the fast models predict
    rows = []
    for name, images in sets.items():
        times = {"two": [], "one": []}
        for _ in range(args.repeats):
            for key, fn in (("two", two_cleanings), ("one", one_cleaning)):
                t = time.perf_counter()
                fn(spec, images)
                times[key].append((time.perf_counter() - t) / len(images) * 1e3)
        two, one = float(np.median(times["two"])), float(np.median(times["one"]))
        rows.append({"images": name, "n": len(images), "two cleanings ms": two, "one cleaning ms": one,
                     "x": two / one})
    print(table(rows, list(rows[0])))
    save("preprocess", {"rows": rows, "repeats": args.repeats})


if __name__ == "__main__":
    main()
