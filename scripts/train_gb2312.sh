#!/usr/bin/env bash
# The shipped gb2312 recognizer: real writers' trajectories + real scans + synthetic handwriting of
# every GB2312 character -> one store -> train from gb2312-synth -> calibrate -> package.
# Every step resumes where it stopped: after an interruption (kill -9 included), run the same command.
#
#   scripts/train_gb2312.sh [WORK]          (default WORK=../hccr-runs/gb2312, outside the checkout)
#
# Data (read-only, never copied into the repository):
#   OLHWDB [../shared/data/casia-olhwdb1.1-train.tar.xz]  220 writers' .pot files; unpacked to WORK/olhwdb
#   HWDB22 [../shared/data/casia-hwdb-22]                 casia-hwdb-22 (its CASIA-HWDB_Train scans)
# Validation: writers 22, 44, ..., 220 of the 220 (by name): 1023-c 1047-c ... 1239-c, never trained on.
#
# Environment (defaults in brackets):
#   SYNTH_WRITERS [40]  simulated writers of all 6,763 characters (level-2's only source)
#   SEED [7000]         their seed (the built-in writers of components+builtin take SEED+100); a new
#                       seed draws new writers for a further round
#   L2 [builtin]        who draws them: builtin (hccr's simulated writers), components (the training
#                       writers' real strokes of shared components, hccr.data.components; the bank is
#                       built once in WORK/bank.npz from the training writers' level-1 samples), or
#                       components+builtin (both: SYNTH_WRITERS more built-in writers, seed SEED+100, in
#                       WORK/synth-builtin; each generator draws all 6,763 characters, as in the
#                       cross-character protocol, so that no drawing style marks level-2 classes)
#   STEPS               optimizer steps (default: the gb2312 preset's 10,000)
#   INIT [gb2312-synth] the model training starts from (INIT=gb2312: a further round from the shipped model)
#   SET                 more training settings, space-separated key=value (e.g. SET="lr=1e-3 seed=2313")
#   PRIOR_POWER [1]     the training class prior is divided out of the packaged model to this power (not
#                       again when INIT is a packaged model such as gb2312: the run inherits its division)
#   PYTHON [python3]    the Python with hccr installed (reads INIT's metadata for the line above)
#   DEVICE              cpu, cuda (default: the GPU if any)
#   HCCR [hccr]         the command to run (e.g. "python3 -m hccr.cli" without an install)
#
# Wall time: unpack 12 s, synth 4 min, convert 4 min (5,300 samples/s) on 2 cores of an AMD EPYC
# (AVX-512); training ~330 img/s there (see docs/results.md for the figures per machine).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$here/../hccr-runs/gb2312}
OLHWDB=${OLHWDB:-$here/../shared/data/casia-olhwdb1.1-train.tar.xz}
HWDB22=${HWDB22:-$here/../shared/data/casia-hwdb-22}
SYNTH_WRITERS=${SYNTH_WRITERS:-40}
SEED=${SEED:-7000}
L2=${L2:-builtin}
INIT=${INIT:-gb2312-synth}
HCCR=${HCCR:-hccr}
mkdir -p "$WORK"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$WORK/recipe.log"; }
t0=$(date +%s)

log "1/5 unpack $OLHWDB"
if [ ! -f "$WORK/olhwdb/.done" ]; then
  mkdir -p "$WORK/olhwdb" && tar -xJf "$OLHWDB" -C "$WORK/olhwdb" && touch "$WORK/olhwdb/.done"
fi
pots=$(dirname "$(find -L "$WORK/olhwdb" -name '*.pot' | head -n 1)")
val=$(ls "$pots" | sed 's/\.pot$//' | sort | awk 'NR % 22 == 0' | paste -sd, -)
log "   validation writers (every 22nd): $val"

style="$here/hccr/assets/style-builtin.json"
if [ "$L2" = components ] || [ "$L2" = components+builtin ]; then
  log "2/5 component bank: the training writers' level-1 samples (validation writers left out)"
  if [ ! -f "$WORK/bank.npz" ]; then
    fit_args=()
    for f in "$pots"/*.pot; do
      case ",$val," in *",$(basename "$f" .pot),"*) ;; *) fit_args+=(--fit "$f") ;; esac
    done
    $HCCR synth --chars gb2312-1 "${fit_args[@]}" --style-out "$WORK/bank.npz" 2>&1 | tail -n 2 | tee -a "$WORK/recipe.log"
  fi
  style="components:$WORK/bank.npz"
elif [ "$L2" != builtin ]; then
  echo "L2 must be builtin, components or components+builtin, not $L2" >&2; exit 2
fi
log "2/5 synth: $SYNTH_WRITERS writers x 6,763 characters (${L2%+builtin})"
$HCCR synth "$WORK/synth" --chars gb2312 --writers "$SYNTH_WRITERS" --seed "$SEED" \
  --style "$style" 2>&1 | tail -n 1 | tee -a "$WORK/recipe.log"
sources=("$WORK/synth")
if [ "$L2" = components+builtin ]; then
  log "2/5 synth: $SYNTH_WRITERS more writers x 6,763 characters (builtin)"
  $HCCR synth "$WORK/synth-builtin" --chars gb2312 --writers "$SYNTH_WRITERS" --seed $((SEED + 100)) --prefix builtin \
    --style "$here/hccr/assets/style-builtin.json" 2>&1 | tail -n 1 | tee -a "$WORK/recipe.log"
  sources+=("$WORK/synth-builtin")
fi

log "3/5 convert: trajectories drawn with hccr's pen, scans and synthetic writers -> one store"
if [ ! -f "$WORK/store/manifest.json" ]; then
  $HCCR convert "$pots" "${sources[@]}" "$HWDB22/CASIA-HWDB_Train" "$WORK/store" --charset gb2312 \
    --val-writers "$val" 2>&1 | tail -n 2 | tee -a "$WORK/recipe.log"
fi

log "4/5 train (preset gb2312 from $INIT${STEPS:+, $STEPS steps}${SET:+, $SET})"
train_args=(--preset gb2312 --data "$WORK/store" --out "$WORK/run" --set "init=$INIT")
[ -n "${STEPS:-}" ] && train_args+=(--set "steps=$STEPS")
for kv in ${SET:-}; do train_args+=(--set "$kv"); done
[ -n "${DEVICE:-}" ] && train_args+=(--device "$DEVICE")
[ -f "$WORK/run/last.state.pt" ] && train_args+=(--resume)
$HCCR train "${train_args[@]}" 2>&1 | grep --line-buffered -v "steps \[" | tee -a "$WORK/recipe.log"

log "5/5 package -> $WORK/gb2312.{json,safetensors,onnx}, prior divided out, calibrated on the validation writers"
init_named=$INIT  # the shipped metadata names an absolute INIT relative to the checkout: no home folders in it
case $INIT in /*) init_named=$(realpath -m --relative-to="$here" "$INIT") ;; esac
divide=(--divide-prior --prior-power "${PRIOR_POWER:-1}")
# A packaged source (INIT=gb2312) has its prior divided out already, and a run started from it keeps that in its
# bias: dividing again at packaging raises the rare classes twice (docs/results.md, round 22). Divide once.
if ${PYTHON:-python3} -c "import sys; from hccr.checkpoint import read_meta; from hccr.finetune import resolve_init
sys.exit(0 if read_meta(resolve_init(sys.argv[1])).get('prior_correction') else 1)" "$INIT" 2>/dev/null; then
  divide=()
  log "note: $INIT has its class prior divided out already and the run inherits it: packaging divides nothing more"
fi
$HCCR package "$WORK/run" --out "$WORK/gb2312" --overwrite "${divide[@]}" \
  --recipe "scripts/train_gb2312.sh (SYNTH_WRITERS=$SYNTH_WRITERS SEED=$SEED L2=$L2 STEPS=${STEPS:-preset} INIT=$init_named${SET:+ SET=\"$SET\"}${PRIOR_POWER:+ PRIOR_POWER=$PRIOR_POWER})" \
  --real-data "CASIA-OLHWDB1.1: the pen trajectories of 210 of its training writers, every level-1 character, drawn by hccr's pen (hccr.data.render.Pen, fitted to scans); casia-hwdb-22's training scans (21 characters; 宬 is not in GB2312)"
$HCCR calibrate "$WORK/store" --split val --model "$WORK/gb2312.json" | tee -a "$WORK/recipe.log"
log "done in $(( $(date +%s) - t0 )) s (this invocation)"
