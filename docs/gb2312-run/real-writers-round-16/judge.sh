#!/usr/bin/env bash
# Round 16's soup candidates (16s: hccr average of rounds 15 and 16) and the judging of all four candidates by the
# rule in docs/notebook/real-writers.md, "Round 16". Runs after run.sh.
set -uo pipefail
cd /work/main
source .venv/bin/activate
W=/work/hccr-runs/gb2312-r16
S=/work/hccr-runs/gb2312-r15
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
H="python3 -m hccr.cli"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$W/judge.log"; }
REAL="CASIA-OLHWDB1.1: the pen trajectories of 210 of its training writers, every level-1 character, drawn by hccr's pen (hccr.data.render.Pen, fitted to scans; renderer version 2); casia-hwdb-22's training scans (22 characters)"
log "candidate 16s: the average of rounds 15 and 16"
mkdir -p "$W/soup"
$H average "$S/A" "$W/B" --out "$W/soup/best" 2>&1 | tee -a "$W/judge.log"
cp "$W/B/config.json" "$W/soup/config.json"
for P in 0.5 0.25; do
  $H package "$W/soup" --out "$W/soup/gb2312-p${P/./}" --divide-prior --prior-power $P \
    --recipe "round 16s on 2 CPU cores: the weight average (hccr average) of round 15 (round 11b grown to model_args.depths=1,1,2,2, 50 min with recipe A at lr 5e-4) and round 16 (round 15 trained 105 min more at lr 3e-4) on round 11's mix (docs/gb2312-run/real-writers-round-16/); PRIOR_POWER=$P" \
    --real-data "$REAL" 2>&1 | tail -n 1 | tee -a "$W/judge.log"
  $H calibrate "$S/store" --split val --model "$W/soup/gb2312-p${P/./}.json" 2>&1 | tail -n 2 | tee -a "$W/judge.log"
done
for M in B/gb2312-p05 B/gb2312-p025 soup/gb2312-p05 soup/gb2312-p025; do
  log "judge $M"
  python -m benchmarks shipped --model "$W/$M.onnx" --against hccr/assets/gb2312.onnx > "$W/judge-$(echo $M | tr / -).out" 2>&1
  tail -n 25 "$W/judge-$(echo $M | tr / -).out" >> "$W/judge.log"
done
log "done"
