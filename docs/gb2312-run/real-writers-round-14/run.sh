#!/usr/bin/env bash
# Round 14 of gb2312 on the CPU (the record of what ran): round 10's sources drawn again with a pen that varies
# from sample to sample (hccr convert --pen-spread 0.3), then the shipped round 11b trained on with recipe A at
# lr 3e-4. Rule: docs/notebook/real-writers.md, "Round 14".
set -uo pipefail
cd /work/main
source .venv/bin/activate
R10=/work/hccr-runs/gb2312-r10
W=/work/hccr-runs/gb2312-r14
export PYTHONUNBUFFERED=1
H="python3 -m hccr.cli"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$W/run.log"; }
VAL=1023-c,1047-c,1071-c,1095-c,1119-c,1143-c,1167-c,1191-c,1215-c,1239-c
log "convert (--pen-spread 0.3)"
$H convert "$R10/olhwdb" "$R10/synth" "$R10/synth-builtin" "$R10/hwdb22/CASIA-HWDB_Train" "$W/store" \
  --charset gb2312 --val-writers "$VAL" --pen-spread 0.3 > "$W/convert.log" 2>&1 || { tail -3 "$W/convert.log"; exit 1; }
tail -n 2 "$W/convert.log" | tee -a "$W/run.log"
HALF_AUG="augment.rotation=5 augment.shear=0.1 augment.scale=0.925,1.04 augment.aspect=0.06 augment.translate=0.03
augment.elastic=0.015 augment.blur=0.15 augment.noise=0.015 augment.ink=0.15 augment.pen=0.1"
SET="init=gb2312 batch_size=512 lr=3e-4 warmup_epochs=0.02 seed=2370 $HALF_AUG"
args=(--preset gb2312 --data "$W/store" --out "$W/A" --device cpu --set "minutes=${MINUTES:-75}")
for kv in $SET; do args+=(--set "$kv"); done
REAL="CASIA-OLHWDB1.1: the pen trajectories of 210 of its training writers, every level-1 character, drawn by hccr's pen (hccr.data.render.Pen, fitted to scans; renderer version 2, pen sigma 0.3 from sample to sample); casia-hwdb-22's training scans (22 characters)"
log "train (${MINUTES:-75} min)"
OMP_NUM_THREADS=2 $H train "${args[@]}" 2>&1 | grep --line-buffered -v "steps \[" > "$W/train.log" || exit 1
tail -n 3 "$W/train.log" | tee -a "$W/run.log"
$H package "$W/A" --out "$W/A/gb2312" --divide-prior --prior-power 0.5 \
  --recipe "round 14 on 2 CPU cores: round 11b (the shipped model) trained on ${MINUTES:-75} min with benchmarks/gpu.sh recipe A at lr 3e-4 on round 10's sources drawn with renderer version 2 and hccr convert --pen-spread 0.3 (docs/gb2312-run/real-writers-round-14/run.sh); SET=\"$(echo $SET)\" PRIOR_POWER=0.5" \
  --real-data "$REAL" 2>&1 | tail -n 1 | tee -a "$W/run.log"
$H calibrate "$W/store" --split val --model "$W/A/gb2312.json" 2>&1 | tail -n 3 | tee -a "$W/run.log"
log "done"
