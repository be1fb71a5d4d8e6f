#!/usr/bin/env bash
# On a lent CUDA machine, in one call: one more "continue on fresh writers" round for the shipped
# GB2312 model (scripts/continue_gb2312.sh, the round scripts/train_gb2312.sh runs with
# CONTINUE_STEPS), with synthesis on all cores and training on the GPU:
#   INIT=ckpt.json OUT=dir SEED=2314 WRITERS=80 STEPS=11000 bash benchmarks/gpu_continue.sh
# Writers are built-in style (+3 held out). Copies the new run's last checkpoint, metrics, config,
# synth.json and log to OUT; averaging with INIT and the choice between the candidates happen
# afterwards, on the real validation split (docs/benchmarks.md). TRAIN_SECONDS [330] bounds
# training; if it runs out, the last finished epoch is what comes back.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.bench/gpu-continue}
WORK=${WORK:-/tmp/gb2312-continue}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
t0=$(date +%s)
SEED=${SEED:-2314} STEPS=${STEPS:-11000} WRITERS=${WRITERS:-80} TRAIN_SECONDS=${TRAIN_SECONDS:-330} \
  HCCR=${HCCR:-python3 -m hccr.cli} bash scripts/continue_gb2312.sh "$WORK" "" --style hccr/assets/style-builtin.json
echo "done in $(( $(date +%s) - t0 )) s" | tee -a "$WORK/recipe.log"
cp "$WORK"/run/last.json "$WORK"/run/last.safetensors "$WORK"/run/metrics.jsonl "$WORK"/run/config.json \
  "$WORK"/synth/synth.json "$WORK"/recipe.log "$OUT"/  # synth.json: the writers behind the run, for the model card
ls -la "$OUT"
