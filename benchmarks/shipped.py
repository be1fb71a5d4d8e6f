"""The shipped GB2312 recognizer: real handwriting, unseen synthetic writers, speed, load time.

    python benchmarks/shipped.py [--model gb2312] [--record]

- real: casia-hwdb-22 test images of its 21 GB2312 characters (宬 is not GB2312 and is counted
  apart), each answered among all 6,763 classes; also restricted to GB2312 level 1 (3,755).
- synthetic: fresh simulated writers (a seed no shipped model's training used) in the built-in
  style the shipped models were trained on, all 6,763 characters; the 20 most confused pairs.
- speed: ms/char batched and single, ONNX Runtime and PyTorch, next to the paper's CharNet
  3 models x 5 crops at 6,763 classes in the same run; the load time of ``hccr.load()``.

``--record`` adds the accuracy figures to the model's metadata (``evaluations``), from which
``hccr model-card`` writes docs/model-card.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import REAL, save, table, tail_split  # noqa: E402
from latency import ms_per_char, recognizer  # noqa: E402

from hccr.data.charset import gb2312_chars  # noqa: E402
from hccr.data.images import load_gray, scan_image_folder  # noqa: E402
from hccr.data.synth import SynthConfig, writer_samples  # noqa: E402
from hccr.evaluate import topk_accuracy  # noqa: E402
from hccr.predict import Recognizer, restrict_to  # noqa: E402
from hccr.shipped import ASSETS, SHIPPED, record_evaluations, shipped_files  # noqa: E402
from hccr.utils import read_json, use_all_cores  # noqa: E402

BUILTIN = ASSETS / "style-builtin.json"  # the writers the shipped models were trained on


def accuracy(probs: np.ndarray, labels: np.ndarray) -> dict:
    acc = topk_accuracy(probs, labels, ks=(1, 5))
    return {k: round(v, 4) for k, v in acc.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gb2312")
    ap.add_argument("--synthetic-writers", type=int, default=2)
    ap.add_argument("--budget", type=float, default=3.0, help="seconds per speed measurement")
    ap.add_argument("--record", action="store_true", help="store the accuracy figures in the model's metadata")
    ap.add_argument("--real-split", choices=["test", "val"], default="test",
                    help="val: the held-out-writer tail of the real training images (for choosing); test: once")
    ap.add_argument("--real-only", action="store_true", help="skip the synthetic and speed parts")
    ap.add_argument("--crops", type=int, default=None, help="views per real image (default: the model's own, 1)")
    args = ap.parse_args()
    use_all_cores()
    ckpt, onnx_path = shipped_files(args.model) if args.model in SHIPPED else (Path(args.model), None)
    t = time.perf_counter()
    import hccr

    rec = hccr.load(args.model)
    load_s = time.perf_counter() - t
    torch_rec = Recognizer.from_checkpoint(ckpt)
    charset = rec.charset
    res: dict = {"model": args.model, "load_seconds": load_s, "backend": type(rec).__name__}
    evaluations = []

    # Real handwriting (casia-hwdb-22 test), 6,763-way.
    if REAL.is_dir():
        if args.real_split == "test":
            items = scan_image_folder(REAL / "CASIA-HWDB_Test" / "Test")
        else:  # the last 10% of each class by file number: writers unseen by the first 90%
            items = tail_split(REAL / "CASIA-HWDB_Train" / "Train")[1]
        known = [it for it in items if it.char in charset.index]
        images = [load_gray(it.path) for it in known]
        labels = np.array([charset.index[it.char] for it in known])
        # An ONNX file holds one crop count; other counts go through the torch checkpoint.
        crop_rec = rec if args.crops in (None, rec.crops) else torch_rec
        probs = crop_rec.predict_proba(images, crops=args.crops)
        real = accuracy(probs, labels)
        # The same answers among the scored characters only: how many errors go to other characters.
        scored = "".join(sorted({it.char for it in known}))
        among = accuracy(restrict_to(probs, charset, scored), labels)
        # Level 1 (3,755): its characters' images only, answered among level-1 characters only.
        in1 = np.isin(labels, [charset.index[c] for c in gb2312_chars(level1_only=True)])
        lvl1 = restrict_to(probs[in1], charset, "gb2312-1")
        per_class = {ch: round(float((probs[labels == charset.index[ch]].argmax(1) == charset.index[ch]).mean()), 3)
                     for ch in scored}
        res["real"] = {"images": len(known), "not_in_charset": len(items) - len(known),
                       "classes": len(per_class), **real, "level1_restricted": accuracy(lvl1, labels[in1]),
                       "among_scored_characters": among, "crops": args.crops or rec.crops,
                       "level1_images": int(in1.sum()),
                       "per_class": per_class}
        print(f"real casia-hwdb-22 {args.real_split}, {len(known)} images of {len(per_class)} GB2312 characters "
              f"({len(items) - len(known)} of non-GB2312 characters left out): 6,763-way {real}; "
              f"level-1 images ({int(in1.sum())}) answered 3,755-way: {res['real']['level1_restricted']}; "
              f"{len(per_class)}-way: {among}")
        print("per class: " + " ".join(f"{c}{a:.2f}" for c, a in per_class.items()))
        if args.real_only:
            save(f"shipped-{Path(args.model).stem}-{args.real_split}{f'-c{args.crops}' if args.crops else ''}", res)
            return
        seen = read_json(ckpt).get("provenance", {}).get("real")  # real images of these characters in training
        evaluations.append({"what": f"real handwriting, casia-hwdb-22 test ({len(known)} images, "
                                    f"{len(per_class)} characters), {len(charset):,}-way"
                                    + (", characters seen in real form in training (other writers)" if seen else
                                       ", no real image in training"), "result": real,
                            "command": "python benchmarks/shipped.py"})

    # Unseen synthetic writers, all classes.
    chars = list(gb2312_chars())
    cfg = SynthConfig(chars="gb2312", writers=args.synthetic_writers, seed=9001, style=str(BUILTIN))
    samples = [s for w in range(args.synthetic_writers) for s in writer_samples(chars, w, cfg)]
    labels = np.array([charset.index[c] for _, c in samples])
    probs = rec.predict_proba([im for im, _ in samples])
    syn = accuracy(probs, labels)
    pred = probs.argmax(1)
    wrong = pred != labels
    pairs: dict[tuple[str, str], int] = {}
    for t_, p_ in zip(labels[wrong], pred[wrong], strict=True):
        key = (charset[int(t_)], charset[int(p_)])
        pairs[key] = pairs.get(key, 0) + 1
    top_pairs = sorted(pairs.items(), key=lambda kv: -kv[1])[:20]
    res["synthetic"] = {"writers": args.synthetic_writers, "seed": 9001, "images": len(labels), **syn,
                        "confused_pairs": [f"{a}->{b} x{n}" for (a, b), n in top_pairs]}
    print(f"unseen synthetic writers ({len(labels)} images), {len(charset):,}-way: {syn}")
    print("most confused (true->predicted): " + ", ".join(res["synthetic"]["confused_pairs"]))
    evaluations.append({"what": f"unseen synthetic writers ({len(labels)} images, seed 9001, built-in style)", "result": syn,
                        "command": "python benchmarks/shipped.py"})

    # Speed, with the paper's system as the baseline in the same run.
    images = [im for im, _ in samples[:: max(1, len(samples) // 512)]][:512]
    rows = []
    members = {"ONNX Runtime (shipped, 1 crop)": [rec] if onnx_path else [],
               "PyTorch fp32 (1 crop)": [torch_rec]}
    for label, m in members.items():
        if not m:
            continue
        row = {"system": label}
        for mode, batch in (("batched", 256), ("single", 1)):
            crops = getattr(m[0], "crops", 1)
            row[f"{mode}_ms"] = ms_per_char(m, images, crops, batch, args.budget)
        rows.append(row)
    paper = [recognizer("charnet", 256, len(charset), amp=False) for _ in range(3)]
    ref = {"system": "paper: CharNet 3 x 5 crops, fp32"}
    for mode, batch in (("batched", 32), ("single", 1)):
        ref[f"{mode}_ms"] = ms_per_char(paper, images, 5, batch, args.budget * 3)
    rows.append(ref)
    for r in rows:
        r["x_batched"] = ref["batched_ms"] / r["batched_ms"]
        r["x_single"] = ref["single_ms"] / r["single_ms"]
    res["speed"] = rows
    print(table(rows, ["system", "batched_ms", "x_batched", "single_ms", "x_single"]))
    print(f"hccr.load({args.model!r}): {load_s:.2f} s ({res['backend']})")
    save(f"shipped-{Path(args.model).stem}", res)
    if args.record:
        record_evaluations(ckpt, evaluations)
        print(f"recorded {len(evaluations)} evaluations in {ckpt}")


if __name__ == "__main__":
    main()
