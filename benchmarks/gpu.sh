#!/usr/bin/env bash
# One short, prepared GPU check: trains paper-1 and fast-1 for a few hundred steps each and prints
# img/s and peak memory (writes .bench/gpu.json). Run from the repository root on a CUDA machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA'; print(torch.__version__, torch.cuda.get_device_name())"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python3 benchmarks/gpu.py --steps "${STEPS:-200}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
