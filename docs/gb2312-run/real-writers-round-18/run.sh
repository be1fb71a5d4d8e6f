#!/usr/bin/env bash
# Round 18 pilot of gb2312 on the CPU: round 11b (the shipped model) trained on with the domain-adversarial loss
# (--set domain_loss=0.5; hccr/domain.py) on round 11's mix, recipe A at lr 3e-4 (as rounds 12-14), a 35-minute budget.
# A pilot: not shipped whatever it reads (docs/notebook/real-writers.md, "Round 18 pilot"). If stopped, run again: the
# training resumes from its run folder, then packaging, calibration and judging run.
set -uo pipefail
cd /work/main
source .venv/bin/activate
W=/work/hccr-runs/gb2312-r18
S=/work/hccr-runs/gb2312-r15
mkdir -p "$W"
export PYTHONUNBUFFERED=1
H="python3 -m hccr.cli"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$W/run.log"; }
HALF_AUG="augment.rotation=5 augment.shear=0.1 augment.scale=0.925,1.04 augment.aspect=0.06 augment.translate=0.03
augment.elastic=0.015 augment.blur=0.15 augment.noise=0.015 augment.ink=0.15 augment.pen=0.1"
SET="init=gb2312 batch_size=512 lr=3e-4 warmup_epochs=0.02 seed=2400 checkpoint_minutes=10 domain_loss=0.5 $HALF_AUG"
args=(--preset gb2312 --data "$S/store" --out "$W/A" --device cpu)
if [ -f "$W/A/last.state.pt" ]; then
  args+=(--resume); HOW="resumed"
else
  args+=(--set "minutes=${MINUTES:-35}"); for kv in $SET; do args+=(--set "$kv"); done; HOW="${MINUTES:-35} min budget"
fi
REAL="CASIA-OLHWDB1.1: the pen trajectories of 210 of its training writers, every level-1 character, drawn by hccr's pen (hccr.data.render.Pen, fitted to scans; renderer version 2); casia-hwdb-22's training scans (22 characters)"
log "train ($HOW)"
OMP_NUM_THREADS=2 $H train "${args[@]}" 2>&1 | grep --line-buffered -v "steps \[" >> "$W/train.log" || exit 1
tail -n 3 "$W/train.log" | tee -a "$W/run.log"
$H package "$W/A" --out "$W/A/gb2312" --divide-prior --prior-power 0.5 \
  --recipe "round 18 pilot on 2 CPU cores: round 11b trained ${MINUTES:-35} min with benchmarks/gpu.sh recipe A at lr 3e-4 and a domain-adversarial loss (domain_loss=0.5) on round 11's mix (docs/gb2312-run/real-writers-round-18/); SET=\"$(echo $SET)\" PRIOR_POWER=0.5" \
  --real-data "$REAL" 2>&1 | tail -n 1 | tee -a "$W/run.log"
$H calibrate "$S/store" --split val --model "$W/A/gb2312.json" 2>&1 | tail -n 2 | tee -a "$W/run.log"
log "judge"
OMP_NUM_THREADS=2 python -m benchmarks shipped --model "$W/A/gb2312.onnx" --against hccr/assets/gb2312.onnx > "$W/judge.out" 2>&1
tail -n 25 "$W/judge.out" >> "$W/run.log"
log "done"
