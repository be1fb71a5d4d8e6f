#!/usr/bin/env bash
# Round 12 of gb2312 on the CPU (the record of what ran): the shipped round 11b trained on with recipe A at
# lr 3e-4 on round 10's store (its data: ../hccr-runs/gb2312-r10), then candidate 12s, the equal-thirds
# weight average of rounds 10, 11 and 12. Rule and candidates: docs/notebook/real-writers.md, "Round 12".
set -uo pipefail
cd /work/main
source .venv/bin/activate
R10=/work/hccr-runs/gb2312-r10
R11=/work/hccr-runs/gb2312-r11
W=/work/hccr-runs/gb2312-r12
export PYTHONUNBUFFERED=1
H="python3 -m hccr.cli"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$W/run.log"; }
HALF_AUG="augment.rotation=5 augment.shear=0.1 augment.scale=0.925,1.04 augment.aspect=0.06 augment.translate=0.03
augment.elastic=0.015 augment.blur=0.15 augment.noise=0.015 augment.ink=0.15 augment.pen=0.1"
SET="init=gb2312 batch_size=512 lr=3e-4 warmup_epochs=0.02 seed=2350 $HALF_AUG"
args=(--preset gb2312 --data "$R10/store" --out "$W/A" --device cpu --set "minutes=${MINUTES:-80}")
for kv in $SET; do args+=(--set "$kv"); done
REAL="CASIA-OLHWDB1.1: the pen trajectories of 210 of its training writers, every level-1 character, drawn by hccr's pen (hccr.data.render.Pen, fitted to scans); casia-hwdb-22's training scans (22 characters)"
log "train (${MINUTES:-80} min)"
OMP_NUM_THREADS=2 $H train "${args[@]}" 2>&1 | grep --line-buffered -v "steps \[" > "$W/train.log" || exit 1
tail -n 4 "$W/train.log" | tee -a "$W/run.log"
$H package "$W/A" --out "$W/A/gb2312" --divide-prior --prior-power 0.5 \
  --recipe "round 12 on 2 CPU cores: round 11b (the shipped model) trained on with benchmarks/gpu.sh recipe A at lr 3e-4 (DEVICE=cpu MINUTES=${MINUTES:-80}) on round 10's store (scripts/train_gb2312.sh's mix, SYNTH_WRITERS=40 SEED=7200 L2=components+builtin); SET=\"$(echo $SET)\" PRIOR_POWER=0.5" \
  --real-data "$REAL" 2>&1 | tee -a "$W/run.log"
$H calibrate "$R10/store" --split val --model "$W/A/gb2312.json" 2>&1 | tail -n 4 | tee -a "$W/run.log"
log "candidate 12s: the average of rounds 10, 11 and 12"
mkdir -p "$W/soup"
$H average "$R10/A" "$R11/A" "$W/A" --out "$W/soup/best" 2>&1 | tee -a "$W/run.log"
cp "$W/A/config.json" "$W/soup/config.json"
$H package "$W/soup" --out "$W/soup/gb2312" --divide-prior --prior-power 0.5 \
  --recipe "round 12s on 2 CPU cores: the weight average (hccr average) of round 10 (benchmarks/gpu.sh recipe A, 75 min from round 9), round 11 (round 10 trained on 68 min with recipe A on round 10's mix plus 60 + 60 writers of the level-2 characters) and round 12 (round 11b trained on ${MINUTES:-80} min with recipe A at lr 3e-4 on round 10's store; docs/gb2312-run/real-writers-round-12/run.sh); packaged with round 10's store prior, PRIOR_POWER=0.5" \
  --real-data "$REAL" 2>&1 | tee -a "$W/run.log"
$H calibrate "$R10/store" --split val --model "$W/soup/gb2312.json" 2>&1 | tail -n 4 | tee -a "$W/run.log"
log "done"
