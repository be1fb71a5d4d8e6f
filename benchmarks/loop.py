"""Training-loop throughput vs the model alone, same preset, batch, dtype and run.

    python benchmarks/loop.py STORE [--preset gb2312] [--steps 60]

"loop" is ``hccr.train.fit`` (memory-mapped batches, augmentation, loss, optimizer, logging);
"model only" is the same training step on a batch already in memory: forward, the preset's loss
(auxiliary heads included, as the loop computes it), backward, gradient clipping and the optimizer
step. ``--main-loss-only`` gives the older, lighter reference (main head's cross-entropy, no
clipping), which skips the auxiliary heads' backward and so is not the loop's computation.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import save  # noqa: E402

from hccr.config import apply_overrides, get_preset  # noqa: E402
from hccr.data.store import Store  # noqa: E402
from hccr.losses import deep_supervision  # noqa: E402
from hccr.models import create_model  # noqa: E402
from hccr.train import autocast_for, fit, make_loss, make_optimizer  # noqa: E402
from hccr.utils import read_json, use_all_cores  # noqa: E402


def model_only(cfg, classes: int, steps: int, main_loss_only: bool = False) -> float:
    model = create_model(cfg.model, classes, cfg.image_size, **cfg.model_args).to(memory_format=torch.channels_last)
    model.train()
    opt = make_optimizer(cfg, model)
    x = torch.rand(cfg.batch_size, 1, cfg.image_size, cfg.image_size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (cfg.batch_size,))
    ctx, _ = autocast_for(torch.device("cpu"), cfg.amp)
    loss_fn = make_loss(cfg)
    for i in range(steps + 3):
        if i == 3:
            t = time.perf_counter()
        with ctx:
            out = model(x)
        logits, aux = out if isinstance(out, tuple) else (out, [])
        if main_loss_only:
            loss = torch.nn.functional.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        else:
            loss = deep_supervision(logits, aux, y, loss_fn, 1.0, cfg.aux_weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip and not main_loss_only:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
    return steps * cfg.batch_size / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("--preset", default="gb2312")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--name", default="", help="suffix of the result file")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--main-loss-only", action="store_true", help="the older reference: main head only, no clipping")
    args = ap.parse_args()
    use_all_cores()
    cfg = apply_overrides(get_preset(args.preset), [f"steps={args.steps}", "checkpoint_minutes=0", *args.overrides])
    classes = len(Store(args.store).charset)
    rows = []
    for rep in range(args.repeats):  # interleaved: this machine's speed drifts by 10-20% over minutes
        run = Path(tempfile.mkdtemp()) / "run"
        m = fit(cfg, args.store, run, progress=False)
        probe = read_json(run / "config.json")["precision_probe"]
        ref = replace(cfg, amp=m["precision"] != "fp32")  # the model alone in the dtype the loop trained in
        alone = model_only(ref, classes, min(args.steps, 30), args.main_loss_only)
        light = model_only(ref, classes, min(args.steps, 30), True) if not args.main_loss_only else alone
        loop = m["train_img_per_s"]
        rows.append({"rep": rep, "precision": m["precision"], "probe": probe, "loop_img_per_s": loop,
                     "model_only_img_per_s": alone, "ratio": loop / alone, "main_loss_only_img_per_s": light,
                     "ratio_main_loss_only": loop / light})
        print(f"{args.preset} ({classes} classes, batch {cfg.batch_size}, {m['precision']}, probe {probe}): "
              f"loop {loop:.0f} img/s, model only {alone:.0f} img/s, loop/model {loop / alone:.2f} "
              f"(main-loss-only reference {light:.0f} img/s, {loop / light:.2f})", flush=True)
    med = {k: float(np.median([r[k] for r in rows])) for k in ("ratio", "ratio_main_loss_only")}
    print(f"median over {len(rows)}: loop/model {med['ratio']:.2f}, vs main-loss-only {med['ratio_main_loss_only']:.2f}")
    save(f"loop-{args.preset}{args.name}", {"classes": classes, "batch": cfg.batch_size, "overrides": args.overrides,
                                            "rows": rows, "median": med})

if __name__ == "__main__":
    main()
