#!/usr/bin/env bash
# Round 19 of gb2312 on the CPU: round 11b (the shipped model) trained on round 11's mix plus a second drawing of the
# 210 training writers' trajectories with each stroke moved on its own (hccr convert --stroke-jitter 0.04), recipe A at
# lr 3e-4 (as rounds 12-14 and 18), a 65-minute budget. Rule: docs/notebook/real-writers.md, "Round 19". If stopped,
# run again: conversion and training resume from their folders, then packaging, calibration and judging run.
set -uo pipefail
cd /work/main
source .venv/bin/activate
W=/work/hccr-runs/gb2312-r19
S=/work/hccr-runs/gb2312-r15
mkdir -p "$W"
export PYTHONUNBUFFERED=1
H="python3 -m hccr.cli"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$W/run.log"; }
val=1023-c,1047-c,1071-c,1095-c,1119-c,1143-c,1167-c,1191-c,1215-c,1239-c
train=()
for f in $(ls "$S"/olhwdb/*.pot | sort); do
  case ",$val," in *",$(basename "$f" .pot),"*) ;; *) train+=("$f") ;; esac
done
if [ ! -f "$W/store/manifest.json" ]; then
  log "convert ${#train[@]} training writers with --stroke-jitter 0.04"
  [ -f "$W/jitter/manifest.json" ] || $H convert "${train[@]}" "$W/jitter" --charset gb2312 --stroke-jitter 0.04 2>&1 \
    | tail -n 2 | tee -a "$W/run.log"
  [ -f "$W/jitter/manifest.json" ] || { log "no jittered store"; exit 1; }
  log "merge"
  python docs/gb2312-run/real-writers-round-19/merge.py "$S/store" "$W/jitter" "$W/store" 2>&1 | tee -a "$W/run.log"
  [ -f "$W/store/manifest.json" ] || { log "no merged store"; exit 1; }
fi
HALF_AUG="augment.rotation=5 augment.shear=0.1 augment.scale=0.925,1.04 augment.aspect=0.06 augment.translate=0.03
augment.elastic=0.015 augment.blur=0.15 augment.noise=0.015 augment.ink=0.15 augment.pen=0.1"
SET="init=gb2312 batch_size=512 lr=3e-4 warmup_epochs=0.02 seed=2410 checkpoint_minutes=10 $HALF_AUG"
args=(--preset gb2312 --data "$W/store" --out "$W/A" --device cpu)
if [ -f "$W/A/last.state.pt" ]; then
  args+=(--resume); HOW="resumed"
else
  args+=(--set "minutes=${MINUTES:-65}"); for kv in $SET; do args+=(--set "$kv"); done; HOW="${MINUTES:-65} min budget"
fi
REAL="CASIA-OLHWDB1.1: the pen trajectories of 210 of its training writers, every level-1 character, drawn by hccr's pen (hccr.data.render.Pen, fitted to scans; renderer version 2), each drawn twice: as written and with every stroke moved on its own (--stroke-jitter 0.04); casia-hwdb-22's training scans (22 characters)"
log "train ($HOW)"
OMP_NUM_THREADS=2 $H train "${args[@]}" 2>&1 | grep --line-buffered -v "steps \[" >> "$W/train.log" || exit 1
tail -n 3 "$W/train.log" | tee -a "$W/run.log"
$H package "$W/A" --out "$W/A/gb2312" --divide-prior --prior-power 0.5 \
  --recipe "round 19 on 2 CPU cores: round 11b trained ${MINUTES:-65} min with benchmarks/gpu.sh recipe A at lr 3e-4 on round 11's mix plus the training writers drawn again with --stroke-jitter 0.04 (docs/gb2312-run/real-writers-round-19/); SET=\"$(echo $SET)\" PRIOR_POWER=0.5" \
  --real-data "$REAL" 2>&1 | tail -n 1 | tee -a "$W/run.log"
$H calibrate "$W/store" --split val --model "$W/A/gb2312.json" 2>&1 | tail -n 2 | tee -a "$W/run.log"
log "judge"
OMP_NUM_THREADS=2 python -m benchmarks shipped --model "$W/A/gb2312.onnx" --against hccr/assets/gb2312.onnx > "$W/judge.out" 2>&1
tail -n 25 "$W/judge.out" >> "$W/run.log"
log "done"
