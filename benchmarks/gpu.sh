#!/usr/bin/env bash
# On a lent CUDA machine, in one prepared call: the shipped gb2312 recipe (scripts/train_gb2312.sh)
# with synthesis and conversion on all cores and training on the GPU, bounded in wall time; the
# packaged model, its logs and metrics land in $OUT (default .bench/gpu). The data travels in
# shared/ with the working tree (../shared/data/casia-olhwdb1.1-train.tar.xz and casia-hwdb-22).
#   OUT=... STEPS=... RECIPE_SECONDS=480 bash benchmarks/gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.bench/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HCCR="python3 -m hccr.cli" DEVICE=cuda
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA'; print(torch.__version__, torch.cuda.get_device_name())" \
  | tee "$OUT/device.txt" || exit 1
nproc | tee -a "$OUT/device.txt"
WORK=${WORK:-/tmp/gb2312}
OLHWDB=${OLHWDB:-shared/data/casia-olhwdb1.1-train.tar.xz} HWDB22=${HWDB22:-shared/data/casia-hwdb-22} \
  timeout "${RECIPE_SECONDS:-480}" bash scripts/train_gb2312.sh "$WORK"
echo "recipe exit $?" | tee -a "$OUT/device.txt"
cp "$WORK"/gb2312.json "$WORK"/gb2312.safetensors "$WORK"/gb2312.onnx "$WORK"/recipe.log "$OUT"/ 2>/dev/null
cp "$WORK"/run/metrics.jsonl "$WORK"/run/config.json "$OUT"/ 2>/dev/null
ls -la "$OUT"
