"""Inputs as users have them: a model's accuracy on corrupted copies of the real test images.

    python benchmarks/robustness.py [--model RUN] [--every 2] [--name NAME]

Every other casia-hwdb-22 test image (1,337; ``--split val``: the 1,117 held-out-writer training
images, for choosing) is recognised as it is and under each corruption
below, through the public path (``Recognizer.predict_proba`` on arrays, as `hccr predict` and the
server do). The corruptions and their seeds are fixed here, before any fix they measure: a
corruption is one user situation, not a knob to tune. Default model: fast-1 fine-tuned from the
shipped model on the real training images (benchmarks/fewshot.py, seed 0).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, REAL, save, table  # noqa: E402

from hccr.data.images import load_gray, scan_image_folder  # noqa: E402
from hccr.predict import Recognizer  # noqa: E402
from hccr.utils import use_all_cores  # noqa: E402


def on_page(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The character somewhere on a white page three times its size."""
    h, w = img.shape
    page = np.full((3 * h, 3 * w), 255, np.uint8)
    y, x = rng.integers(0, 2 * h + 1), rng.integers(0, 2 * w + 1)
    page[y : y + h, x : x + w] = img
    return page


def inverted(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light ink on a dark background (a slide, a blackboard, an inverted scan)."""
    return 255 - img


def photographed(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blue ink on gray paper lit unevenly (a lighting gradient), sensor noise, JPEG, RGB."""
    h, w = img.shape
    ink = 1 - img.astype(np.float32) / 255  # 1 = full ink
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)
    paper = 200 + 35 * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)  # 200..235, uneven
    pen = np.array([40, 60, 150], np.float32)  # blue ballpoint
    rgb = paper[..., None] * (1 - ink[..., None]) + pen * ink[..., None]
    rgb += rng.normal(0, 6, rgb.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB").save(buf, "JPEG", quality=60)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def rgb(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=2)


def upscaled(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape
    s = 400 / max(h, w)
    return np.asarray(Image.fromarray(img).resize((round(w * s), round(h * s)), Image.Resampling.BICUBIC))


def rotated(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(Image.fromarray(img).rotate(8, Image.Resampling.BILINEAR, expand=True, fillcolor=255))


def blurred(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(1.2)))


CORRUPTIONS = {"clean": None, "on a page 3x its size": on_page, "light on dark": inverted,
               "photographed (gray uneven paper, blue ink, noise, JPEG)": photographed, "RGB": rgb,
               "upscaled to 400 px": upscaled, "rotated 8 degrees": rotated, "blurred (sigma 1.2)": blurred}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(OUT / "fewshot" / "runs" / "finetune-all-s0-lr0.003-f0-s400"))
    ap.add_argument("--every", type=int, default=2)
    ap.add_argument("--split", choices=["val", "test"], default="test",
                    help="val: the held-out-writer tail of the training images (for choosing), test: the test images")
    ap.add_argument("--crops", type=int, default=5)
    ap.add_argument("--name", default="")
    ap.add_argument("--no-cleanup", action="store_true", help="skip paper flattening and crop to ink (before)")
    args = ap.parse_args()
    use_all_cores()
    if args.split == "test":
        items = scan_image_folder(REAL / "CASIA-HWDB_Test" / "Test")[:: args.every]
    else:  # the last 10% of each class by file number: writers the default model never trained on
        train = scan_image_folder(REAL / "CASIA-HWDB_Train" / "Train")
        items = []
        for ch in sorted({it.char for it in train}):
            own = [it for it in train if it.char == ch]
            items += own[-round(len(own) * 0.1):]
    rec = Recognizer.from_checkpoint(args.model)
    rec.spec = rec.spec.with_(cleanup=not args.no_cleanup)
    images = [load_gray(it.path) for it in items]
    labels = np.array([rec.charset.index.get(it.char, -1) for it in items])
    rows = []
    for k, (name, fn) in enumerate(CORRUPTIONS.items()):
        rng = np.random.default_rng(1000 + k)  # fixed per corruption
        inputs = images if fn is None else [fn(im, rng) for im in images]
        t = time.perf_counter()
        probs = rec.predict_proba(inputs, crops=args.crops)
        acc = float((probs.argmax(1) == labels).mean())
        rows.append({"input": name, "top1": acc, "seconds": time.perf_counter() - t})
    clean = rows[0]["top1"]
    for r in rows:
        r["vs_clean_pt"] = 100 * (r["top1"] - clean)
    print(table(rows, ["input", "top1", "vs_clean_pt", "seconds"]))
    save(f"robustness-{args.split}{args.name}", {"model": args.model, "cleanup": rec.spec.cleanup, "split": args.split, "images": len(items), "crops": args.crops, "rows": rows})


if __name__ == "__main__":
    main()
