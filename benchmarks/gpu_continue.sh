#!/usr/bin/env bash
# On a lent CUDA machine, in one call: one more "continue on fresh writers" round for the shipped
# GB2312 model (the round scripts/train_gb2312.sh runs with CONTINUE_STEPS, at a GPU's budget).
#   INIT=ckpt.json OUT=dir SEED=2314 WRITERS=80 STEPS=11000 bash benchmarks/gpu_continue.sh
# Synthesises WRITERS (+3 held out) fresh built-in-style writers x 6,763 characters on all cores,
# fine-tunes INIT on them (lr 1e-3, warm-up 0.05 epoch, cosine to 0) on the GPU, and copies the
# new run's last checkpoint, metrics, config, synth.json and log to OUT; averaging with INIT and the choice
# between the candidates happen afterwards, on the real validation split (docs/benchmarks.md).
# TRAIN_SECONDS bounds training; if it runs out, the last finished epoch is what comes back.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${INIT:?INIT=checkpoint.json to continue from}"
OUT=${OUT:-.bench/gpu-continue}
WORK=${WORK:-/tmp/gb2312-continue}
SEED=${SEED:-2314}
WRITERS=${WRITERS:-80}
STEPS=${STEPS:-11000}  # the shipped rounds' (~125 s of training on an H200)
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
HCCR=${HCCR:-python3 -m hccr.cli}
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/recipe.log"; }
t0=$(date +%s)
log "synth: $((WRITERS + 3)) writers (seed $SEED) x 6,763 characters"
$HCCR synth "$WORK/synth" --chars gb2312 --writers $((WRITERS + 3)) --seed "$SEED" \
  --style hccr/assets/style-builtin.json 2>&1 | tail -n 1 | tee -a "$OUT/recipe.log"
log "convert"
[ -f "$WORK/store/manifest.json" ] || $HCCR convert "$WORK/synth" "$WORK/store" --charset gb2312 --split-by-writer \
  --val-fraction "$(python3 -c "print(3 / ($WRITERS + 3))")" 2>&1 | tail -n 1 | tee -a "$OUT/recipe.log"
log "train $STEPS steps from $INIT"
timeout "${TRAIN_SECONDS:-330}" $HCCR train --preset gb2312 --data "$WORK/store" --out "$WORK/run" --init "$INIT" \
  --set "steps=$STEPS" --set lr=1e-3 --set warmup_epochs=0.05 --set "seed=$SEED" ${DEVICE:+--device "$DEVICE"} \
  2>&1 | grep --line-buffered -v "steps \[" | tee -a "$OUT/recipe.log"
log "done in $(( $(date +%s) - t0 )) s"
cp "$WORK"/run/last.json "$WORK"/run/last.safetensors "$WORK"/run/metrics.jsonl "$WORK"/run/config.json \
  "$WORK"/synth/synth.json "$OUT"/  # synth.json: the writers behind the run, for the model card
ls -la "$OUT"
