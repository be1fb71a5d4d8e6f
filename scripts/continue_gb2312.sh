#!/usr/bin/env bash
# One round of "continue on fresh writers" for the GB2312 model: synthesise fresh writers x 6,763
# characters, convert them (writers held out whole for validation), fine-tune a checkpoint on them
# (lr 1e-3, warm-up 0.05 epoch, cosine to 0). Resumable: run the same command again.
# Used by scripts/train_gb2312_synth.sh (CONTINUE_STEPS) and benchmarks/gpu_continue.sh@92cf046 (on a lent GPU; git checkout 92cf046 to run it).
#
#   INIT=CKPT SEED=N STEPS=N scripts/continue_gb2312.sh WORK [SUFFIX [hccr synth options...]]
#     -> WORK/synthSUFFIX, WORK/storeSUFFIX, WORK/runSUFFIX; log appended to WORK/recipe.log
#
# Environment: WRITERS [64] + VAL_WRITERS [3] (held out), MODEL, DEVICE, HCCR [hccr] as in
# train_gb2312_synth.sh; TRAIN_SECONDS bounds the training step (its last finished epoch stays).
set -euo pipefail
: "${INIT:?INIT=checkpoint to continue from}" "${SEED:?SEED=seed of the fresh writers}" "${STEPS:?STEPS=optimizer steps}"
WORK=$1
SUFFIX=${2:-}
shift $(( $# < 2 ? $# : 2 ))
WRITERS=${WRITERS:-64}
VAL_WRITERS=${VAL_WRITERS:-3}
HCCR=${HCCR:-hccr}
mkdir -p "$WORK"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$WORK/recipe.log"; }

log "continue: synth $((WRITERS + VAL_WRITERS)) fresh writers (seed $SEED) x 6,763 characters"
$HCCR synth "$WORK/synth$SUFFIX" --chars gb2312 --writers $((WRITERS + VAL_WRITERS)) --seed "$SEED" "$@" \
  2>&1 | tail -n 1 | tee -a "$WORK/recipe.log"
if [ ! -f "$WORK/store$SUFFIX/manifest.json" ]; then
  $HCCR convert "$WORK/synth$SUFFIX" "$WORK/store$SUFFIX" --charset gb2312 --split-by-writer \
    --val-fraction "$(python3 -c "print($VAL_WRITERS / ($WRITERS + $VAL_WRITERS))")" 2>&1 | tail -n 2 | tee -a "$WORK/recipe.log"
fi
log "continue: train $STEPS steps from $INIT"
args=(--preset gb2312-synth --data "$WORK/store$SUFFIX" --out "$WORK/run$SUFFIX" --set "steps=$STEPS" --set lr=1e-3
      --set warmup_epochs=0.05 --set "seed=$SEED")
[ -n "${MODEL:-}" ] && args+=(--set "model=$MODEL")
[ -n "${DEVICE:-}" ] && args+=(--device "$DEVICE")
if [ -f "$WORK/run$SUFFIX/last.state.pt" ]; then args+=(--resume); else args+=(--init "$INIT"); fi
${TRAIN_SECONDS:+timeout "$TRAIN_SECONDS"} $HCCR train "${args[@]}" 2>&1 | grep --line-buffered -v "steps \[" \
  | tee -a "$WORK/recipe.log"
