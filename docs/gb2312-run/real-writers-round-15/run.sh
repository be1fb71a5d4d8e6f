#!/usr/bin/env bash
# Round 15 of gb2312 on the CPU: round 11b (the shipped model) grown to depths 1,1,2,2 and trained with
# benchmarks/gpu.sh recipe A at lr 5e-4 on round 11's mix (prep.sh + prep2.sh). Rule: docs/notebook/real-writers.md,
# "Round 15". Resumes: the training resumes from its run folder; package and calibrate run again.
set -uo pipefail
cd /work/main
source .venv/bin/activate
W=/work/hccr-runs/gb2312-r15
export PYTHONUNBUFFERED=1
H="python3 -m hccr.cli"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$W/run.log"; }
HALF_AUG="augment.rotation=5 augment.shear=0.1 augment.scale=0.925,1.04 augment.aspect=0.06 augment.translate=0.03
augment.elastic=0.015 augment.blur=0.15 augment.noise=0.015 augment.ink=0.15 augment.pen=0.1"
SET="init=gb2312 model_args.depths=1,1,2,2 batch_size=512 lr=5e-4 warmup_epochs=0.02 seed=2380 $HALF_AUG"
args=(--preset gb2312 --data "$W/store" --out "$W/A" --device cpu --set "minutes=${MINUTES:-50}")
for kv in $SET; do args+=(--set "$kv"); done
REAL="CASIA-OLHWDB1.1: the pen trajectories of 210 of its training writers, every level-1 character, drawn by hccr's pen (hccr.data.render.Pen, fitted to scans; renderer version 2); casia-hwdb-22's training scans (22 characters)"
log "train (${MINUTES:-50} min)"
OMP_NUM_THREADS=2 $H train "${args[@]}" 2>&1 | grep --line-buffered -v "steps \[" >> "$W/train.log" || exit 1
tail -n 3 "$W/train.log" | tee -a "$W/run.log"
$H package "$W/A" --out "$W/A/gb2312" --divide-prior --prior-power 0.5 \
  --recipe "round 15 on 2 CPU cores: round 11b (the shipped model) grown to model_args.depths=1,1,2,2 (added blocks start as identities) and trained ${MINUTES:-50} min with benchmarks/gpu.sh recipe A at lr 5e-4 on round 11's mix (SYNTH_WRITERS=40 SEED=7200 L2=components+builtin L2_WRITERS=60, bank from 40 writers; docs/gb2312-run/real-writers-round-15/); SET=\"$(echo $SET)\" PRIOR_POWER=0.5" \
  --real-data "$REAL" 2>&1 | tail -n 1 | tee -a "$W/run.log"
$H calibrate "$W/store" --split val --model "$W/A/gb2312.json" 2>&1 | tail -n 3 | tee -a "$W/run.log"
log "done"
