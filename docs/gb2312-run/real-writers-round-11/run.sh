#!/usr/bin/env bash
# Round 11 of gb2312 on the CPU: round 10 trained on (gpu.sh recipe A) with 60 + 60 more synthetic
# writers of the 3,008 level-2 characters (200 per level-2 character in all).
# The record of what ran (its data: round 10's folder). benchmarks/gpu.sh now draws the same level-2 writers
# itself (L2_WRITERS=60: seeds SEED+200 and SEED+300), so a new run starts from gpu.sh, not from this copy.
set -uo pipefail
cd /work/main
source .venv/bin/activate
R10=/work/hccr-runs/gb2312-r10
W=/work/hccr-runs/gb2312-r11
export PYTHONUNBUFFERED=1
H="python3 -m hccr.cli"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$W/run.log"; }
val=1023-c,1047-c,1071-c,1095-c,1119-c,1143-c,1167-c,1191-c,1215-c,1239-c
if [ ! -f "$W/prepared" ]; then
  export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
  fit=()
  for f in $(ls "$R10"/olhwdb/*.pot | sort); do
    case ",$val," in *",$(basename "$f" .pot),"*) ;; *) fit+=(--fit "$f") ;; esac
  done
  fit=("${fit[@]:0:80}")
  log "component bank from $(( ${#fit[@]} / 2 )) training writers"
  [ -f "$W/bank.npz" ] || $H synth --chars gb2312-1 "${fit[@]}" --style-out "$W/bank.npz" 2>&1 | tail -n 2 | tee -a "$W/run.log" || exit 1
  log "synth: 60 writers x 3,008 level-2 (components), 60 (builtin)"
  $H synth "$W/synth-l2" --chars gb2312-2 --writers 60 --seed 7400 --prefix l2comp --style "components:$W/bank.npz" \
    2>&1 | tail -n 1 | tee -a "$W/run.log" || exit 1
  $H synth "$W/synth-l2-builtin" --chars gb2312-2 --writers 60 --seed 7500 --prefix l2builtin \
    --style hccr/assets/style-builtin.json 2>&1 | tail -n 1 | tee -a "$W/run.log" || exit 1
  touch "$W/prepared"
fi
unset OMP_NUM_THREADS OPENBLAS_NUM_THREADS MKL_NUM_THREADS
if [ ! -f "$W/store/.done-r11" ]; then
  log "convert"
  $H convert "$R10/olhwdb" "$R10/synth" "$R10/synth-builtin" "$W/synth-l2" "$W/synth-l2-builtin" \
    "$R10/hwdb22/CASIA-HWDB_Train" "$W/store" --charset gb2312 --val-writers "$val" 2>&1 | tail -n 2 | tee -a "$W/run.log" || exit 1
  touch "$W/store/.done-r11"
fi
HALF_AUG="augment.rotation=5 augment.shear=0.1 augment.scale=0.925,1.04 augment.aspect=0.06 augment.translate=0.03
augment.elastic=0.015 augment.blur=0.15 augment.noise=0.015 augment.ink=0.15 augment.pen=0.1"
SET="init=gb2312 batch_size=512 lr=5e-4 warmup_epochs=0.02 seed=2340 $HALF_AUG"
args=(--preset gb2312 --data "$W/store" --out "$W/A" --device cpu --set "minutes=${MINUTES:-68}")
for kv in $SET; do args+=(--set "$kv"); done
log "train (${MINUTES:-68} min)"
OMP_NUM_THREADS=2 $H train "${args[@]}" 2>&1 | grep --line-buffered -v "steps \[" > "$W/train.log" || exit 1
tail -n 4 "$W/train.log" | tee -a "$W/run.log"
$H package "$W/A" --out "$W/A/gb2312" --divide-prior --prior-power 0.5 \
  --recipe "round 11 on 2 CPU cores: round 10 trained on with benchmarks/gpu.sh recipe A (DEVICE=cpu MINUTES=${MINUTES:-68}), scripts/train_gb2312.sh's mix (SYNTH_WRITERS=40 SEED=7200 L2=components+builtin, bank from 40 writers) plus 60 + 60 writers of the level-2 characters (components seed 7400, builtin seed 7500); SET=\"$(echo $SET)\" PRIOR_POWER=0.5" \
  --real-data "CASIA-OLHWDB1.1: the pen trajectories of 210 of its training writers, every level-1 character, drawn by hccr's pen (hccr.data.render.Pen, fitted to scans); casia-hwdb-22's training scans (22 characters)" \
  2>&1 | tee -a "$W/run.log"
$H calibrate "$W/store" --split val --model "$W/A/gb2312.json" 2>&1 | tail -n 4 | tee -a "$W/run.log"
log "done"
