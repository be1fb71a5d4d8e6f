#!/usr/bin/env bash
# Round 17 of gb2312 on the CPU: round 11b (the shipped model) grown 1.5x wider (model_args.widths=48,96,192,384; the
# added channels start as fresh features nothing reads yet, so the wider network reads as 11b did) and trained with benchmarks/gpu.sh recipe A
# at lr 5e-4 on round 11's mix (round 15's prep.sh + prep2.sh). Rule: docs/notebook/real-writers.md, "Round 17".
# Sized to end inside one sitting (90 min); if stopped (any signal), run this again: the training resumes from its run folder, then
# packaging, calibration and judging run.
set -uo pipefail
cd /work/main
source .venv/bin/activate
W=/work/hccr-runs/gb2312-r17
S=/work/hccr-runs/gb2312-r15
mkdir -p "$W"
export PYTHONUNBUFFERED=1
H="python3 -m hccr.cli"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$W/run.log"; }
HALF_AUG="augment.rotation=5 augment.shear=0.1 augment.scale=0.925,1.04 augment.aspect=0.06 augment.translate=0.03
augment.elastic=0.015 augment.blur=0.15 augment.noise=0.015 augment.ink=0.15 augment.pen=0.1"
SET="init=gb2312 model_args.widths=48,96,192,384 batch_size=512 lr=5e-4 warmup_epochs=0.02 seed=2390 checkpoint_minutes=10 $HALF_AUG"
args=(--preset gb2312 --data "$S/store" --out "$W/A" --device cpu)
if [ -f "$W/A/last.state.pt" ]; then  # a resume keeps the run's own config and the steps its budget fixed
  args+=(--resume); HOW="resumed"
else
  args+=(--set "minutes=${MINUTES:-90}"); for kv in $SET; do args+=(--set "$kv"); done; HOW="${MINUTES:-90} min budget"
fi
REAL="CASIA-OLHWDB1.1: the pen trajectories of 210 of its training writers, every level-1 character, drawn by hccr's pen (hccr.data.render.Pen, fitted to scans; renderer version 2); casia-hwdb-22's training scans (22 characters)"
log "train ($HOW)"
OMP_NUM_THREADS=2 $H train "${args[@]}" 2>&1 | grep --line-buffered -v "steps \[" >> "$W/train.log" || exit 1
tail -n 3 "$W/train.log" | tee -a "$W/run.log"
for P in 0.5 0.25; do
  $H package "$W/A" --out "$W/A/gb2312-p${P/./}" --divide-prior --prior-power $P \
    --recipe "round 17 on 2 CPU cores: round 11b (the shipped model) grown to model_args.widths=48,96,192,384 (added channels start as fresh features nothing reads yet) and trained ${MINUTES:-90} min with benchmarks/gpu.sh recipe A at lr 5e-4 on round 11's mix (docs/gb2312-run/real-writers-round-17/); SET=\"$(echo $SET)\" PRIOR_POWER=$P" \
    --real-data "$REAL" 2>&1 | tail -n 1 | tee -a "$W/run.log"
  $H calibrate "$S/store" --split val --model "$W/A/gb2312-p${P/./}.json" 2>&1 | tail -n 2 | tee -a "$W/run.log"
done
for M in gb2312-p05 gb2312-p025; do
  log "judge $M"
  OMP_NUM_THREADS=2 python -m benchmarks shipped --model "$W/A/$M.onnx" --against hccr/assets/gb2312.onnx > "$W/judge-$M.out" 2>&1
  tail -n 25 "$W/judge-$M.out" >> "$W/run.log"
done
log "done"
