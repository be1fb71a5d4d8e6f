#!/usr/bin/env bash
# On a lent CUDA machine, in one call: the GPU throughput check (benchmarks/gpu.sh), then the
# shipped model's recipe (scripts/train_gb2312.sh) with synthesis on all cores and training on
# the GPU. Results go to $OUT (or .bench/gpu-recipe): the packaged model, its logs, gpu.json.
#   OUT=... FONTS=a.ttf:b.ttc bash benchmarks/gpu_recipe.sh
# RECIPE_SECONDS bounds the recipe (synthesis + training); if it runs out, the last finished
# epoch is packaged instead, and the log says so.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.bench/gpu-recipe}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HCCR="python3 -m hccr.cli"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/device.txt"
nproc | tee -a "$OUT/device.txt"
if [ "${GPU_CHECK_STEPS:-200}" != 0 ]; then  # GPU_CHECK_STEPS=0 skips the throughput check
  STEPS=${GPU_CHECK_STEPS:-200} bash benchmarks/gpu.sh 2>&1 | tail -n 6
  cp .bench/gpu.json "$OUT/" 2>/dev/null
fi
WORK=${WORK:-/tmp/gb2312}
timeout "${RECIPE_SECONDS:-420}" bash scripts/train_gb2312.sh "$WORK"
rc=$?
if [ $rc -ne 0 ] && [ -f "$WORK/run/best.json" ]; then
  echo "recipe stopped (exit $rc): packaging the best finished epoch" | tee -a "$WORK/recipe.log"
  $HCCR package "$WORK/run" --out "$WORK/gb2312" \
    --recipe "scripts/train_gb2312.sh (WRITERS=${WRITERS:-64} STEPS=${STEPS:-preset}; cut short at ${RECIPE_SECONDS:-420} s)"
fi
cp "$WORK"/gb2312.json "$WORK"/gb2312.safetensors "$WORK"/gb2312.onnx "$WORK"/recipe.log "$OUT"/ 2>/dev/null
cp "$WORK"/run/metrics.jsonl "$WORK"/run/config.json "$OUT"/ 2>/dev/null
ls -la "$OUT"
