"""The GB2312 model's architecture at equal training wall time: CharNet-S, a wider CharNet-S, the lean ResNet.

    python benchmarks/arch_gb2312.py --seconds 60 --writers 16 --out DIR     (on the machine that trains)
    python benchmarks/arch_gb2312.py --score DIR                             (here: real validation)

Each candidate gets the gb2312 preset's recipe (CE + label smoothing, AdamW, cosine, batch 256)
with a step budget that fills the same wall time: a 40-step probe measures its loop's img/s, then
``steps = seconds x img/s / batch``. All train on the same fresh synthetic writers (built-in style,
as the shipped model) and are scored on 3 further writers held out whole (6,763-way). Each best
checkpoint is written to DIR as NAME.json + NAME.safetensors (fp16), with results.json; ``--score``
then reads real handwriting with each: the held-out-writer tail of casia-hwdb-22's training images
(21 GB2312 characters, 6,763-way), the split used for choosing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, machine, save, table  # noqa: E402

CANDIDATES = {  # --set overrides of the gb2312 preset
    "charnet-s": ["model=charnet-s", "model_args.aux=false"],  # shipped until the sixth session
    "charnet-s-wide": ["model=charnet-s", "model_args.aux=false", "model_args.widths=48,96,192,384"],
    "resnet-lean": ["model=resnet-lean"],  # the shipped architecture (the gb2312 preset's)
}


def train_all(args: argparse.Namespace) -> None:
    import torch

    import hccr
    from hccr.checkpoint import load_checkpoint, save_checkpoint
    from hccr.config import apply_overrides, get_preset
    from hccr.data.store import ConvertOptions, convert
    from hccr.data.synth import SynthConfig, synth
    from hccr.train import fit

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="hccr-arch-"))
    style = Path(hccr.__file__).parent / "assets" / "style-builtin.json"
    t = time.perf_counter()
    files = synth(work / "gnt", SynthConfig(chars=args.chars, writers=args.writers + 3, seed=77, style=str(style)),
                  progress=False)
    synth_s = time.perf_counter() - t
    store = work / "store"
    if not (store / "manifest.json").exists():
        convert([str(f) for f in files], store, ConvertOptions(charset="gb2312", split_by_writer=True,
                                                               val_fraction=3 / (args.writers + 3)), progress=False)
    print(f"synth {synth_s:.0f} s; store ready", flush=True)
    rows = []
    def config(name: str, extra: list[str]):
        return apply_overrides(get_preset("gb2312"), CANDIDATES[name] + extra)

    for name in args.only.split(",") if args.only else CANDIDATES:
        probe = config(name, ["epochs=1", "steps=0", f"limit_steps={args.probe_steps}"])
        rate = fit(probe, store, work / f"probe-{name}", device=args.device, progress=False)["train_img_per_s"]
        steps = max(1, int(args.seconds * rate / probe.batch_size))
        t = time.perf_counter()
        m = fit(config(name, [f"steps={steps}"]), store, work / name, device=args.device, progress=False)
        wall = time.perf_counter() - t
        metrics = [json.loads(x) for x in (work / name / "metrics.jsonl").read_text().splitlines() if x.strip()]
        model, meta = load_checkpoint(work / name)
        save_checkpoint(out / name, model.to(torch.float16), {**meta, "weights_dtype": "float16"})
        rows.append({"arch": name, "params": sum(p.numel() for p in model.parameters()),
                     "probe_img_per_s": rate,
                     "loop_img_per_s": m.get("train_img_per_s"), "steps": steps, "train_seconds": wall,
                     "synthetic_val_top1": max(r.get("val_acc", 0.0) for r in metrics)})
        print(rows[-1], flush=True)
        (out / "results.json").write_text(json.dumps({"machine": machine(), "device": args.device,
                                                      "device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                                                      "seconds": args.seconds, "writers": args.writers,
                                                      "synth_seconds": synth_s, "rows": rows}, indent=2) + "\n")


def score(args: argparse.Namespace) -> None:
    import numpy as np
    from common import REAL, tail_split

    import hccr
    from hccr.data.images import load_gray
    from hccr.evaluate import topk_accuracy

    if not REAL.is_dir():
        sys.exit(f"real data not found at {REAL}")
    d = Path(args.score)
    res = json.loads((d / "results.json").read_text())
    _, tail = tail_split(REAL / "CASIA-HWDB_Train" / "Train")
    images = labels = None
    for row in res["rows"]:
        rec = hccr.load(str(d / f"{row['arch']}.json"))
        if images is None:
            keep = [it for it in tail if it.char in rec.charset.index]
            images = [load_gray(it.path) for it in keep]
            labels = np.array([rec.charset.index[it.char] for it in keep])
        acc = topk_accuracy(rec.predict_proba(images), labels, ks=(1, 5))
        row.update({"real_val_top1": acc["top1"], "real_val_top5": acc["top5"]})
    print(table(res["rows"], ["arch", "params", "steps", "train_seconds", "synthetic_val_top1", "real_val_top1",
                              "real_val_top5"]))
    save("arch-gb2312", {**{k: v for k, v in res.items() if k != "machine"}, "trained_on": res["machine"],
                         "real_val_images": int(len(labels))})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0, help="training wall time per candidate")
    ap.add_argument("--writers", type=int, default=16)
    ap.add_argument("--probe-steps", type=int, default=40)
    ap.add_argument("--only", default="", help="candidates to train, comma-separated (default: all)")
    ap.add_argument("--chars", default="gb2312", help="characters to synthesise (a smoke test may use a few)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default=str(OUT / "arch-gb2312"))
    ap.add_argument("--work", default=None)
    ap.add_argument("--score", default=None, help="a folder written by a training run: score it on real validation")
    args = ap.parse_args()
    score(args) if args.score else train_all(args)


if __name__ == "__main__":
    main()
