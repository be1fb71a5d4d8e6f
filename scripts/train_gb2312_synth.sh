#!/usr/bin/env bash
# gb2312-synth, the shipped recognizer that owes nothing to CASIA: synthesise -> convert -> train -> package.
# Every step resumes where it stopped: after an interruption, run the same command again.
#
#   scripts/train_gb2312_synth.sh [WORK]    (default WORK=runs/gb2312-synth)
#
# Environment (defaults in brackets):
#   WRITERS [64]        simulated writers for training (6,763 samples each)
#   VAL_WRITERS [3]     further writers held out whole: the "unseen synthetic writers" validation
#   STEPS               optimizer steps (default: the gb2312-synth preset's 8,000, ~72 min on 2 CPU cores)
#   MODEL               architecture (default: the gb2312-synth preset's, resnet-lean; e.g. charnet-s)
#   CONTINUE_STEPS [0]  then continue the run this many steps (lr 1e-3) on as many fresh writers
#                       (seed 2313) and ship the average of both runs' weights (hccr average); 5000
#                       took +6 min synth, ~45 min train on 2 CPU cores (real validation 0.4959 vs
#                       0.4876 for the first run alone). The shipped gb2312-synth then averaged two
#                       more rounds made on a GPU (benchmarks/gpu_continue.sh@92cf046, seeds 2314 and 2315):
#                       0.5059 (docs/benchmarks.md)
#   STYLE [builtin]     the simulated writers' style: builtin (hccr/assets/style-builtin.json, what
#                       the shipped model was trained with), default (hccr's calibrated profile,
#                       7 pt worse on real handwriting at 6,763 classes: docs/benchmarks.md), or a
#                       profile JSON of your own (hccr synth --calibrate)
#   FONTS               extra shape sources, font files separated by ':' (default: none)
#   FONT_FRACTION [0.3] share of samples drawn from FONTS when given
#   DEVICE              cpu, cuda (default: the GPU if any)
#   HCCR [hccr]         the command to run (e.g. "python3 -m hccr.cli" without an install)
set -euo pipefail
WORK=${1:-runs/gb2312-synth}
WRITERS=${WRITERS:-64}
VAL_WRITERS=${VAL_WRITERS:-3}
FONT_FRACTION=${FONT_FRACTION:-0.3}
STYLE=${STYLE:-builtin}
HCCR=${HCCR:-hccr}
mkdir -p "$WORK"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$WORK/recipe.log"; }
t0=$(date +%s)

font_args=()
case "$STYLE" in
  builtin) font_args+=(--style "$(dirname "$0")/../hccr/assets/style-builtin.json") ;;
  default) ;;
  *) font_args+=(--style "$STYLE") ;;
esac
if [ -n "${FONTS:-}" ]; then
  IFS=':' read -r -a fonts <<< "$FONTS"
  for f in "${fonts[@]}"; do font_args+=(--font "$f"); done
  font_args+=(--font-fraction "$FONT_FRACTION")
fi

log "1/4 synth: $((WRITERS + VAL_WRITERS)) writers x 6,763 characters ${FONTS:+(fonts: $FONTS)}"
$HCCR synth "$WORK/synth" --chars gb2312 --writers $((WRITERS + VAL_WRITERS)) --seed 2312 "${font_args[@]}" \
  2>&1 | tail -n 1 | tee -a "$WORK/recipe.log"

log "2/4 convert (validation: $VAL_WRITERS whole writers)"
if [ ! -f "$WORK/store/manifest.json" ]; then
  $HCCR convert "$WORK/synth" "$WORK/store" --charset gb2312 --split-by-writer \
    --val-fraction "$(python3 -c "print($VAL_WRITERS / ($WRITERS + $VAL_WRITERS))")" 2>&1 | tail -n 2
fi

log "3/4 train (preset gb2312-synth${MODEL:+, model $MODEL}${STEPS:+, $STEPS steps})"
train_args=(--preset gb2312-synth --data "$WORK/store" --out "$WORK/run")
[ -n "${MODEL:-}" ] && train_args+=(--set "model=$MODEL")
[ -n "${STEPS:-}" ] && train_args+=(--set "steps=$STEPS")
[ -n "${DEVICE:-}" ] && train_args+=(--device "$DEVICE")
[ -f "$WORK/run/last.state.pt" ] && train_args+=(--resume)
$HCCR train "${train_args[@]}" 2>&1 | grep --line-buffered -v "steps \[" | tee -a "$WORK/recipe.log"

final="$WORK/run"
if [ "${CONTINUE_STEPS:-0}" -gt 0 ]; then
  log "3b/4 continue $CONTINUE_STEPS steps on $((WRITERS + VAL_WRITERS)) fresh writers, then average the two runs"
  INIT="$WORK/run" SEED=2313 STEPS=$CONTINUE_STEPS WRITERS=$WRITERS VAL_WRITERS=$VAL_WRITERS HCCR=$HCCR \
    bash "$(dirname "$0")/continue_gb2312.sh" "$WORK" 2 "${font_args[@]}"
  $HCCR average "$WORK/run" "$WORK/run2" --out "$WORK/average" --overwrite | tee -a "$WORK/recipe.log"
  final="$WORK/average.json"
fi

log "4/4 package -> $WORK/gb2312-synth.{json,safetensors,onnx}"
$HCCR package "$final" --out "$WORK/gb2312-synth" --overwrite --recipe "scripts/train_gb2312_synth.sh (WRITERS=$WRITERS VAL_WRITERS=$VAL_WRITERS STEPS=${STEPS:-preset} MODEL=${MODEL:-preset} CONTINUE_STEPS=${CONTINUE_STEPS:-0} FONTS=${FONTS:+yes} STYLE=$STYLE)"
log "done in $(( $(date +%s) - t0 )) s (this invocation)"
