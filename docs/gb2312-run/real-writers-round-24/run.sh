#!/usr/bin/env bash
# Round 24 (2026-12-06, machine C): no training. Candidate 24s: the uniform weight average of 20s (its prior put back;
# round 23's raw/best) and its three children's best checkpoints, all in one bias frame: 21 and 22 (started from the
# packaged 20s) with the prior they inherited put back (put_back.py), 23 (started from the raw 20s) as it is. Packaged
# with round 11's store prior at powers 0.5 and 0.25, calibrated, judged. Rule: docs/notebook/real-writers.md, "Round 24".
set -uo pipefail
cd "$(dirname "$0")/../../.."
R=${RUNS:-../hccr-runs}; W=$R/gb2312-r24; S=$R/gb2312-r15/store
export PYTHONUNBUFFERED=1
H="python -m hccr.cli"
mkdir -p "$W/soup"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$W/run.log"; }
PARENT=$R/gb2312-r23/20s/gb2312.json  # 20s as shipped (commit 3cf6d9f)
for r in 21 22; do
  [ -f "$W/r$r/best.json" ] || { log "round $r's best: the inherited prior put back"
  python docs/gb2312-run/real-writers-round-24/put_back.py "$R/gb2312-r$r/A/best.json" "$PARENT" "$S" "$W/r$r/best" 2>&1 \
    | tee -a "$W/run.log" || exit 1; }
done
$H average "$R/gb2312-r23/raw/best.json" "$W/r21/best.json" "$W/r22/best.json" "$R/gb2312-r23/A/best.json" \
  --out "$W/soup/best" 2>&1 | tee -a "$W/run.log" || exit 1
python - "$R/gb2312-r23/A/config.json" "$W/soup/config.json" "$S" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["store"] = sys.argv[3]; json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
REAL="CASIA-OLHWDB1.1: the pen trajectories of 210 of its training writers, every level-1 character, drawn by hccr's pen (hccr.data.render.Pen, fitted to scans; renderer version 2; drawn again with every stroke moved on its own: --stroke-jitter 0.04 in rounds 19 and 21, 0.06 in round 23); casia-hwdb-22's training scans (22 characters)"
pkg() {  # folder, stem, power, recipe
  $H package "$W/$1" --out "$W/$1/$2" --divide-prior --prior-power "$3" --recipe "$4" --real-data "$REAL" 2>&1 \
    | tail -n 1 | tee -a "$W/run.log"
  $H calibrate "$S" --split val --model "$W/$1/$2.json" 2>&1 | tail -n 2 | tee -a "$W/run.log"
  log "judge $1/$2"
  OMP_NUM_THREADS=2 python -m benchmarks shipped --model "$W/$1/$2.onnx" --against hccr/assets/gb2312.onnx > "$W/judge-$1-$2.out" 2>&1
  head -n 2 "$W/judge-$1-$2.out" | cut -c1-400 | tee -a "$W/run.log"
}
SOUP="round 24s on 2 CPU cores: the uniform weight average (hccr average) of round 20s (its prior put back) and its three children, rounds 21, 22 and 23 (each 20s trained 40-60 min at lr 3e-4 on another store; 21's and 22's inherited prior put back); docs/gb2312-run/real-writers-round-24/run.sh; packaged with round 11's store prior"
pkg soup gb2312 0.5 "$SOUP, PRIOR_POWER=0.5"
pkg soup gb2312-p025 0.25 "$SOUP, PRIOR_POWER=0.25"
log "done"
