"""Model cost: parameters, MACs per image, train and predict img/s for charnet at 256 px and the
fast nets at 64 px, measured in one run on this machine (ratios against charnet). Prediction runs
every model the way `hccr predict` does (eval mode, conv-BN folded, channels_last, batched).

    python benchmarks/models.py [--classes 3755]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import save, table  # noqa: E402

from hccr.models import create_model  # noqa: E402
from hccr.models.flops import count_macs  # noqa: E402
from hccr.models.registry import fuse_for_inference  # noqa: E402
from hccr.train import autocast_for  # noqa: E402


def rate(model, size, batch, train, amp, steps):
    x = torch.rand(batch, 1, size, size).contiguous(memory_format=torch.channels_last)
    model = model.to(memory_format=torch.channels_last)
    ctx, _ = autocast_for(torch.device("cpu"), amp)
    y = torch.randint(0, 10, (batch,))
    if train:
        model.train()
        opt = torch.optim.Adam(model.parameters(), 1e-4)
    else:  # as `hccr predict` runs it: eval mode, BatchNorm folded into the convolutions
        model = fuse_for_inference(copy.deepcopy(model).eval()).to(memory_format=torch.channels_last)

    def step():
        if train:
            with ctx:
                out, aux = model(x)
            loss = torch.nn.functional.cross_entropy(out.float(), y) + sum(
                torch.nn.functional.cross_entropy(a.float(), y) for a in aux)
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            with torch.inference_mode(), ctx:
                model(x)

    for _ in range(3):  # warm-up: oneDNN builds its kernels for each new shape and precision
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, default=3755)
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    specs = [("charnet", 256, 16, 2), ("charnet-s", 64, 256, 8), ("resnet-lean", 64, 256, 8)]
    rows = []
    for name, size, batch, steps in specs:
        m = create_model(name, args.classes, size)
        params = sum(p.numel() for p in m.parameters())
        macs = count_macs(m, size)
        row = {"model": name, "px": size, "params_M": params / 1e6, "GMACs": macs / 1e9}
        for amp in (False, True):
            tag = "bf16" if amp else "fp32"
            row[f"train_{tag}"] = rate(m, size, batch, True, amp, steps)
            row[f"predict_{tag}"] = rate(m, size, batch * 2, False, amp, steps)
        rows.append(row)
        print(f"{name}: done", flush=True)
    base = rows[0]
    for r in rows:
        for k in ("train_fp32", "train_bf16", "predict_fp32", "predict_bf16"):
            r[f"x_{k}"] = r[k] / base[k]
    print(f"\n{args.classes} classes, img/s on {torch.get_num_threads()} threads (channels_last)")
    print(table(rows, ["model", "px", "params_M", "GMACs", "train_fp32", "train_bf16", "predict_fp32", "predict_bf16"]))
    print(table(rows, ["model", "x_train_fp32", "x_train_bf16", "x_predict_fp32", "x_predict_bf16"]))
    save("models", {"classes": args.classes, "rows": rows})


if __name__ == "__main__":
    main()
