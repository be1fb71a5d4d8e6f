#!/usr/bin/env bash
# Round 20 (2026-12-06, machine C): candidate 20s, the weight average of the shipped 11b and round 19's best,
# packaged with round 11's store prior at powers 0.5 and 0.25, calibrated, judged.
# Rule and reading: docs/notebook/real-writers.md, "Round 20".
set -uo pipefail
cd "$(dirname "$0")/../../.."
R=${RUNS:-../hccr-runs}; W=$R/gb2312-r20; S=$R/gb2312-r15/store; R19=$R/gb2312-r19/A
# the parent: 11b, hccr/assets/gb2312.* when this ran, taken from the commit before 20s shipped
if [ -z "${PARENT:-}" ]; then
  mkdir -p "$W/11b" && for x in json safetensors; do git show "8916390:hccr/assets/gb2312.$x" > "$W/11b/gb2312.$x" || exit 1; done
  PARENT=$W/11b/gb2312.json
fi
H="python -m hccr.cli"
mkdir -p "$W/raw11b" "$W/soup"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$W/run.log"; }
log "11b's bias: round 11's prior (power 0.5) added back"
python docs/gb2312-run/real-writers-round-20/raw_bias.py "$PARENT" "$S" "$W/raw11b/best" 2>&1 | tee -a "$W/run.log" || exit 1
log "average"
$H average "$W/raw11b/best.json" "$R19/best.json" --out "$W/soup/best" 2>&1 | tee -a "$W/run.log" || exit 1
python - "$R19/config.json" "$W/soup/config.json" "$S" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["store"] = sys.argv[3]; json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
REAL="CASIA-OLHWDB1.1: the pen trajectories of 210 of its training writers, every level-1 character, drawn by hccr's pen (hccr.data.render.Pen, fitted to scans; renderer version 2; round 19's half also drawn with every stroke moved on its own, --stroke-jitter 0.04); casia-hwdb-22's training scans (22 characters)"
for p in 0.5 0.25; do
  stem=gb2312; [ "$p" = 0.5 ] || stem=gb2312-p${p/./}
  $H package "$W/soup" --out "$W/soup/$stem" --divide-prior --prior-power "$p" \
    --recipe "round 20s on 2 CPU cores: the weight average (hccr average) of round 11b (the shipped gb2312, its prior added back) and round 19 (11b trained 65 min at lr 3e-4 on round 11's mix plus the training writers drawn again with --stroke-jitter 0.04; docs/gb2312-run/real-writers-round-19/); docs/gb2312-run/real-writers-round-20/run.sh; packaged with round 11's store prior, PRIOR_POWER=$p" \
    --real-data "$REAL" 2>&1 | tail -n 1 | tee -a "$W/run.log"
  $H calibrate "$S" --split val --model "$W/soup/$stem.json" 2>&1 | tail -n 2 | tee -a "$W/run.log"
  log "judge, power $p"
  OMP_NUM_THREADS=2 python -m benchmarks shipped --model "$W/soup/$stem.onnx" --against hccr/assets/gb2312.onnx > "$W/judge-$stem.out" 2>&1
  tail -n 25 "$W/judge-$stem.out" >> "$W/run.log"
done
log "done"
