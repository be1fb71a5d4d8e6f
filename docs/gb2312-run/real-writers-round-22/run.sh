#!/usr/bin/env bash
# Round 22 (2026-12-06, machine C): 20s (the shipped gb2312 when this ran) trained 60 min on round 11's mix (11b's
# store) with round 19's recipe and seed 2422 (22), then candidate 22s: the weight average of 20s (its prior put back)
# and 22's best, packaged with round 11's store prior at powers 0.5 and 0.25, calibrated, judged (22 alone too;
# reported, not a candidate). Rule: docs/notebook/real-writers.md, "Round 22". If stopped, run again: the training
# resumes from its folder.
set -uo pipefail
cd "$(dirname "$0")/../../.."
R=${RUNS:-../hccr-runs}; W=$R/gb2312-r22; S=$R/gb2312-r15/store; STORE=$S
if [ -z "${PARENT:-}" ]; then  # 20s: hccr/assets/gb2312.* when this ran (commit 3cf6d9f)
  mkdir -p "$W/20s" && for x in json safetensors; do git show "3cf6d9f:hccr/assets/gb2312.$x" > "$W/20s/gb2312.$x" || exit 1; done
  PARENT=$W/20s/gb2312.json
fi
export PYTHONUNBUFFERED=1
H="python -m hccr.cli"
mkdir -p "$W/raw" "$W/soup"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$W/run.log"; }
HALF_AUG="augment.rotation=5 augment.shear=0.1 augment.scale=0.925,1.04 augment.aspect=0.06 augment.translate=0.03
augment.elastic=0.015 augment.blur=0.15 augment.noise=0.015 augment.ink=0.15 augment.pen=0.1"
SET="init=gb2312 batch_size=512 lr=3e-4 warmup_epochs=0.02 seed=2422 checkpoint_minutes=10 $HALF_AUG"
args=(--preset gb2312 --data "$STORE" --out "$W/A" --device cpu)
if [ -f "$W/A/last.state.pt" ]; then
  args+=(--resume); HOW="resumed"
else
  args+=(--set "minutes=${MINUTES:-60}"); for kv in $SET; do args+=(--set "$kv"); done; HOW="${MINUTES:-60} min budget"
fi
if [ ! -f "$W/trained" ]; then
  log "train ($HOW)"
  OMP_NUM_THREADS=2 $H train "${args[@]}" 2>&1 | grep --line-buffered -v "steps \[" >> "$W/train.log" || exit 1
  tail -n 3 "$W/train.log" | tee -a "$W/run.log"
  touch "$W/trained"
fi
REAL="CASIA-OLHWDB1.1: the pen trajectories of 210 of its training writers, every level-1 character, drawn by hccr's pen (hccr.data.render.Pen, fitted to scans; renderer version 2; round 19, a parent of 20s, also drew them with every stroke moved on its own, --stroke-jitter 0.04); casia-hwdb-22's training scans (22 characters)"
log "20s's bias: round 11's prior (power 0.5) put back"
python docs/gb2312-run/real-writers-round-20/raw_bias.py "$PARENT" "$S" "$W/raw/best" 2>&1 | tee -a "$W/run.log" || exit 1
$H average "$W/raw/best.json" "$W/A/best.json" --out "$W/soup/best" 2>&1 | tee -a "$W/run.log" || exit 1
python - "$W/A/config.json" "$W/soup/config.json" "$S" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["store"] = sys.argv[3]; json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
pkg() {  # folder, stem, power, recipe
  $H package "$W/$1" --out "$W/$1/$2" --divide-prior --prior-power "$3" --recipe "$4" --real-data "$REAL" 2>&1 \
    | tail -n 1 | tee -a "$W/run.log"
  $H calibrate "$S" --split val --model "$W/$1/$2.json" 2>&1 | tail -n 2 | tee -a "$W/run.log"
  log "judge $1/$2"
  OMP_NUM_THREADS=2 python -m benchmarks shipped --model "$W/$1/$2.onnx" --against hccr/assets/gb2312.onnx > "$W/judge-$1-$2.out" 2>&1
  head -n 2 "$W/judge-$1-$2.out" | cut -c1-400 | tee -a "$W/run.log"
}
SOUP="round 22s on 2 CPU cores: the weight average (hccr average) of round 20s (the shipped gb2312, its prior put back; docs/gb2312-run/real-writers-round-20/) and round 22 (20s trained 60 min at lr 3e-4, seed 2422, on round 11's mix); docs/gb2312-run/real-writers-round-22/run.sh; packaged with round 11's store prior"
pkg soup gb2312 0.5 "$SOUP, PRIOR_POWER=0.5"
pkg soup gb2312-p025 0.25 "$SOUP, PRIOR_POWER=0.25"
pkg A gb2312 0.5 "round 22 on 2 CPU cores (reported, not a candidate): 20s trained 60 min at lr 3e-4, seed 2422, on round 11's mix; PRIOR_POWER=0.5"
log "done"
