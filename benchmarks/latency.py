"""Prediction latency (ms per character): hccr's fast models vs the paper's CharNet system, one run.

    python -m benchmarks latency [--ckpt RUN ...] [--onnx]

Configurations: one model x 1 crop, one model x 5 crops, three models x 5 crops (the full
ensemble), each batched (256 characters per call) and single-image (one character per call),
next to the paper's system (CharNet at 256 px, 3 models x 5 crops) on the same images and
settings (channels_last, bf16 autocast where the CPU supports it, all cores). Untrained weights
have the same cost as trained ones; trained checkpoints are used when given.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from common import REAL, save, table

from hccr.data.images import load_gray, scan_image_folder
from hccr.models import create_model
from hccr.predict import Recognizer


def recognizer(arch: str, size: int, classes: int, amp: bool) -> Recognizer:
    meta = {"arch": arch, "charset": "".join(chr(0x4E00 + i) for i in range(classes)),
            "preprocessing": {"image_size": size, "ink": "high", "margin": 0.0}}
    return Recognizer(create_model(arch, classes, size), meta, amp=amp)


def ms_per_char(members: list, images: list[np.ndarray], crops: int, batch: int, budget_s: float) -> float:
    n = 0
    t = time.perf_counter()
    while True:
        for i in range(0, len(images), batch):
            chunk = images[i : i + batch]
            sum(m.predict_proba(chunk, crops, batch) for m in members)
            n += len(chunk)
            if time.perf_counter() - t > budget_s and n >= batch:
                return 1000 * (time.perf_counter() - t) / n


def timed(name: str, members: list, images: list[np.ndarray], crops: int, batch: int, budget: float) -> dict:
    """One row: ms per character batched (``batch`` per call) and single-image."""
    row = {"system": name, "batched_ms": ms_per_char(members, images, crops, batch, budget),
           "single_ms": ms_per_char(members, images, crops, 1, budget)}
    print(f"{name}: batched {row['batched_ms']:.3f} ms/char, single {row['single_ms']:.3f} ms/char", flush=True)
    return row


def speedups(rows: list[dict]) -> list[dict]:
    """x_batched / x_single: each row's speed-up over the last row (the paper's system)."""
    for r in rows:
        r["x_batched"], r["x_single"] = rows[-1]["batched_ms"] / r["batched_ms"], rows[-1]["single_ms"] / r["single_ms"]
    print(table(rows, ["system", "batched_ms", "x_batched", "single_ms", "x_single"]))
    return rows


def student_speed(student: Path, teachers: list[Path], label: str, work: Path, budget: float) -> list[dict]:
    """ms/char of a distilled student (PyTorch fp32 and ONNX Runtime, 1 crop), its teachers' ensemble
    (3 x 5 crops) and the paper's system (3 CharNets at 256 px x 5 crops, random weights, 22 classes,
    fp32) on the same 256 real test images in one run; batched = 64 per call (32 for CharNet at 256 px)."""
    from hccr.export import export_onnx
    from hccr.runtime import OnnxRecognizer

    onnx_path = export_onnx([str(student)], work / f"{student.name}.onnx", crops=1)
    items = scan_image_folder(REAL / "CASIA-HWDB_Test" / "Test")
    images = [load_gray(it.path) for it in items[:: max(1, len(items) // 256)]][:256]
    systems = {
        "student, PyTorch fp32, 1 crop": ([Recognizer.from_checkpoint(student)], 1),
        "student, ONNX Runtime, 1 crop": ([OnnxRecognizer(onnx_path)], 1),
        f"ensemble ({label}), PyTorch, 3 x 5 crops": ([Recognizer.from_checkpoint(t) for t in teachers], 5),
        "paper: CharNet 3 x 5 crops, fp32": ([recognizer("charnet", 256, 22, amp=False) for _ in range(3)], 5),
    }
    return speedups([timed(name, members, images, crops, 32 if "paper" in name else 64, budget * (3 if "paper" in name else 1))
                     for name, (members, crops) in systems.items()])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, default=3755)
    ap.add_argument("--ckpt", nargs="*", default=[], help="three trained fast checkpoints (optional)")
    ap.add_argument("--budget", type=float, default=4.0, help="seconds per measurement")
    ap.add_argument("--no-amp", action="store_true")
    args = ap.parse_args()
    amp = not args.no_amp
    if REAL.is_dir():
        items = scan_image_folder(REAL / "CASIA-HWDB_Test" / "Test")[::5][:512]
        images = [load_gray(it.path) for it in items]
    else:
        rng = np.random.default_rng(0)
        images = [np.where(rng.random((80, 70)) < 0.2, 0, 255).astype(np.uint8) for _ in range(512)]
    if args.ckpt:
        fast = [Recognizer.from_checkpoint(c, amp=amp) for c in args.ckpt]
    else:
        fast = [recognizer("charnet-s", 64, args.classes, amp) for _ in range(3)]
    paper = [recognizer("charnet", 256, args.classes, amp) for _ in range(3)]
    rows = []
    for label, members, crops in [("1 model x 1 crop", fast[:1], 1), ("1 model x 5 crops", fast[:1], 5),
                                  ("3 models x 5 crops", fast, 5), ("paper: CharNet 3 x 5 crops", paper, 5)]:
        rows.append(timed(label, members, images, crops, 32 if members is paper else 256,
                          args.budget * (3 if members is paper else 1)))
    if args.ckpt:  # ONNX Runtime vs PyTorch eager (fp32 both) on the same trained members
        import tempfile

        from hccr.export import export_onnx
        from hccr.runtime import OnnxRecognizer

        tmp = Path(tempfile.mkdtemp(prefix="hccr-lat-"))
        eager = [Recognizer.from_checkpoint(c, amp=False) for c in args.ckpt]
        single = OnnxRecognizer(export_onnx(args.ckpt[:1], tmp / "one.onnx"))
        whole = OnnxRecognizer(export_onnx(args.ckpt, tmp / "ens.onnx"))
        for label, members in [("PyTorch fp32: 1 model x 5 crops", eager[:1]), ("ONNX Runtime: 1 model x 5 crops", [single]),
                               ("PyTorch fp32: 3 models x 5 crops", eager), ("ONNX Runtime: 3 models x 5 crops", [whole])]:
            rows.insert(-1, timed(label, members, images, 5, 256, args.budget))
    print(f"\nms per character ({torch.get_num_threads()} threads, amp={amp}); x = speed-up over the paper's system")
    speedups(rows)
    save("latency", {"classes": args.classes, "amp": amp, "trained": bool(args.ckpt), "rows": rows})


if __name__ == "__main__":
    main()
