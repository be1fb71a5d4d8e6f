"""GPU throughput check: paper-1 and fast-1 for a few hundred steps each; img/s and peak memory.

    python benchmarks/gpu.py [--steps 200]      (run by benchmarks/gpu.sh on a CUDA machine)
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

from hccr.config import get_preset  # noqa: E402
from hccr.data.store import ConvertOptions, convert  # noqa: E402
from hccr.data.synth import SynthConfig, synth  # noqa: E402
from hccr.quickstart import DEFAULT_CHARS  # noqa: E402
from hccr.train import fit  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device")
    work = Path(tempfile.mkdtemp(prefix="hccr-gpu-"))
    files = synth(work / "gnt", SynthConfig(chars=DEFAULT_CHARS, writers=400, seed=0), progress=False)
    convert([str(f) for f in files], work / "store", ConvertOptions(val_fraction=0.05, split_by_writer=True),
            progress=False)
    rows = []
    for preset in ("fast-1", "paper-1"):
        cfg = get_preset(preset)
        cfg.epochs, cfg.limit_steps = 1, args.steps
        torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        m = fit(cfg, work / "store", work / preset, device="cuda", progress=False)
        rows.append({"preset": preset, "steps": args.steps, "batch": cfg.batch_size,
                     "train_img_per_s": m["train_img_per_s"], "seconds": time.perf_counter() - t,
                     "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
                     "device": torch.cuda.get_device_name()})
        print(rows[-1], flush=True)
    save("gpu", {"rows": rows})


if __name__ == "__main__":
    main()
