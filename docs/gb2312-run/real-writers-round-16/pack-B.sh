#!/usr/bin/env bash
# Round 16: run.sh's packaging step alone (its first pass named both powers "gb2312-p0": ".5" was read as a suffix). Lines only the training needs are left out.
set -uo pipefail
cd /work/main
source .venv/bin/activate
W=/work/hccr-runs/gb2312-r16
S=/work/hccr-runs/gb2312-r15
export PYTHONUNBUFFERED=1
H="python3 -m hccr.cli"
HALF_AUG="augment.rotation=5 augment.shear=0.1 augment.scale=0.925,1.04 augment.aspect=0.06 augment.translate=0.03
augment.elastic=0.015 augment.blur=0.15 augment.noise=0.015 augment.ink=0.15 augment.pen=0.1"
SET="init=$S/A/best.json batch_size=512 lr=3e-4 warmup_epochs=0.02 seed=2381 $HALF_AUG"
REAL="CASIA-OLHWDB1.1: the pen trajectories of 210 of its training writers, every level-1 character, drawn by hccr's pen (hccr.data.render.Pen, fitted to scans; renderer version 2); casia-hwdb-22's training scans (22 characters)"
MINUTES=105
for P in 0.5 0.25; do
  $H package "$W/B" --out "$W/B/gb2312-p${P/./}" --divide-prior --prior-power $P \
    --recipe "round 16 on 2 CPU cores: round 15 (round 11b grown to model_args.depths=1,1,2,2, 50 min at lr 5e-4) trained ${MINUTES:-95} min more with benchmarks/gpu.sh recipe A at lr 3e-4 on round 11's mix (docs/gb2312-run/real-writers-round-16/); SET=\"$(echo $SET)\" PRIOR_POWER=$P" \
    --real-data "$REAL" 2>&1 | tail -n 1 | tee -a "$W/run.log"
  $H calibrate "$S/store" --split val --model "$W/B/gb2312-p${P/./}.json" 2>&1 | tail -n 2 | tee -a "$W/run.log"
done
