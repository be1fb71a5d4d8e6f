"""One entry point for every benchmark: ``python -m benchmarks NAME [ARGS...]``.

Each reproduces figures that README.md, a model card or docs/results.md states (benchmarks/README.md
says which, with wall times); results go to .bench/NAME.json with the machine and the date.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "shipped": "the shipped gb2312 / gb2312-synth: validation writers, casia-hwdb-22 test, levels 1 and 2",
    "train_step": "what makes the training step faster on this CPU (ratios to today's step)",
    "io": "readers and conversion rates (.gnt, .pot rendering, PNG export)",
    "latency": "ms per character: hccr's models vs the paper's system, ONNX Runtime and PyTorch",
    "serve_load": "hccr serve under 200 concurrent clients: peak memory, refusals, /healthz latency",
    "fewshot": "fine-tuning with a few real images per character vs training from scratch",
    "casia22": "the paper's recipe and hccr's fast path on casia-hwdb-22 (train, ensemble, test once)",
    "protocol": "characters never seen in real form: the cross-character protocol per generator",
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help") or sys.argv[1] not in BENCHMARKS:
        print("usage: python -m benchmarks NAME [ARGS...]\n")
        for name, what in BENCHMARKS.items():
            print(f"  {name:12s} {what}")
        sys.exit(0 if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help") else 2)
    name = sys.argv[1]
    sys.argv = [str(HERE / f"{name}.py"), *sys.argv[2:]]
    sys.path.insert(0, str(HERE))
    from hccr.errors import HccrError

    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except HccrError as e:  # a user's mistake (a missing model file, a bad argument): one line, no traceback
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
