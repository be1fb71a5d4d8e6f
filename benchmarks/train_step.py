"""What makes hccr's training step faster on this CPU: each variant as a ratio to today's step,
measured in the same run, interleaved (these machines drift by 10-20% over minutes).

    python -m benchmarks train_step STORE [--steps 20] [--repeats 2]

A step is what ``hccr.train`` does per batch: read 256 images from the memory-mapped store,
augment them (the gb2312 preset's warps and scan variation), forward, loss, backward, AdamW.
Today's step: lean ResNet, 64 px, batch 256, channels_last, bf16 autocast where the CPU has it.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch
from common import machine, save

from hccr.config import get_preset
from hccr.data.store import Store
from hccr.models import create_model
from hccr.models.flops import count_macs
from hccr.precision import _cpu_has_bf16
from hccr.train import make_optimizer, prepare_batch
from hccr.utils import use_all_cores

VARIANTS = {  # name -> (config changes, compile)
    "today": ({}, False),
    "fp32": ({"amp": False}, False),
    "no channels_last": ({"channels_last": False}, False),
    "torch.compile": ({}, True),
    "batch 128": ({"batch_size": 128}, False),
    "batch 512": ({"batch_size": 512}, False),
    "48 px": ({"image_size": 48}, False),
    "56 px": ({"image_size": 56}, False),
}


def step_rate(cfg, store: Store, steps: int, compiled: bool) -> float:
    torch.manual_seed(0)
    model = create_model(cfg.model, len(store.charset), cfg.image_size, **cfg.model_args)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = make_optimizer(cfg, model)
    run = torch.compile(model) if compiled else model
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    dev = torch.device("cpu")
    amp = cfg.amp and _cpu_has_bf16()
    for i in range(steps + 3):  # three warm-up steps (compilation happens in the first)
        if i == 3:
            t = time.perf_counter()
        b = np.sort(rng.choice(len(store), cfg.batch_size, replace=False))
        x = prepare_batch(store.images[b], store.sizes[b], cfg, dev, True, gen)
        y = torch.from_numpy(store.labels[b].astype(np.int64))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = run(x)
        logits = out[0] if isinstance(out, tuple) else out
        loss = torch.nn.functional.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * cfg.batch_size / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("--preset", default="gb2312")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    args = ap.parse_args()
    use_all_cores()
    store = Store(args.store)
    base = get_preset(args.preset)
    names = args.only or list(VARIANTS)
    rates: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(args.repeats):
        for n in names:
            changes, compiled = VARIANTS[n]
            rates[n].append(step_rate(replace(base, **changes), store, args.steps, compiled))
            print(f"rep {rep} {n:18s} {rates[n][-1]:6.0f} img/s", flush=True)
    ref = float(np.median(rates["today"])) if "today" in rates else float("nan")
    rows = []
    for n, r in rates.items():  # the work of one image (the step's forward pass) beside its speed
        cfg = replace(base, **VARIANTS[n][0])
        macs = count_macs(create_model(cfg.model, len(store.charset), cfg.image_size, **cfg.model_args), cfg.image_size)
        rows.append({"variant": n, "img_per_s": round(float(np.median(r))), "gmacs_per_img": round(macs / 1e9, 4),
                     "ratio_to_today": round(float(np.median(r)) / ref, 3)})
    for r in rows:
        print(f"{r['variant']:18s} {r['img_per_s']:6d} img/s  x{r['ratio_to_today']:.2f}  {r['gmacs_per_img']} GMACs/img")
    save("train-step", {"preset": args.preset, "classes": len(store.charset), "rows": rows, "machine": machine()})


if __name__ == "__main__":
    main()
