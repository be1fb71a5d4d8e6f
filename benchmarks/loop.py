"""Training-loop throughput vs the model alone, same preset, batch, dtype and run.

    python benchmarks/loop.py STORE [--preset gb2312] [--steps 60]

"loop" is ``hccr.train.fit`` (memory-mapped batches, augmentation, loss, optimizer, logging);
"model only" is forward + backward + optimizer step on a batch already in memory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import save  # noqa: E402

from hccr.config import apply_overrides, get_preset  # noqa: E402
from hccr.data.store import Store  # noqa: E402
from hccr.models import create_model  # noqa: E402
from hccr.train import autocast_for, fit, make_optimizer  # noqa: E402
from hccr.utils import read_json, use_all_cores  # noqa: E402


def model_only(cfg, classes: int, steps: int) -> float:
    model = create_model(cfg.model, classes, cfg.image_size, **cfg.model_args).to(memory_format=torch.channels_last)
    model.train()
    opt = make_optimizer(cfg, model)
    x = torch.rand(cfg.batch_size, 1, cfg.image_size, cfg.image_size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (cfg.batch_size,))
    ctx, _ = autocast_for(torch.device("cpu"), cfg.amp)
    for i in range(steps + 3):
        if i == 3:
            t = time.perf_counter()
        with ctx:
            out = model(x)
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
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--name", default="", help="suffix of the result file")
    args = ap.parse_args()
    use_all_cores()
    cfg = apply_overrides(get_preset(args.preset), [f"steps={args.steps}", "checkpoint_minutes=0", *args.overrides])
    classes = len(Store(args.store).charset)
    run = Path(tempfile.mkdtemp()) / "run"
    m = fit(cfg, args.store, run, progress=False)
    probe = read_json(run / "config.json")["precision_probe"]
    cfg.amp = m["precision"] != "fp32"  # the model alone in the dtype the loop trained in (the probe's choice)
    loop = m["train_img_per_s"]
    alone = model_only(cfg, classes, min(args.steps, 30))
    print(f"{args.preset} ({classes} classes, batch {cfg.batch_size}, {m['precision']}, probe {probe}): "
          f"loop {loop:.0f} img/s, model only {alone:.0f} img/s, loop/model {loop / alone:.2f}")
    save(f"loop-{args.preset}{args.name}", {"classes": classes, "batch": cfg.batch_size, "precision": m["precision"],
                                            "probe": probe, "overrides": args.overrides, "loop_img_per_s": loop,
                                            "model_only_img_per_s": alone, "ratio": loop / alone})


if __name__ == "__main__":
    main()
