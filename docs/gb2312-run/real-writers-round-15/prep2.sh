#!/usr/bin/env bash
# Round 15's data, continued: round 11's mix (round 10's: 40 + 40 simulated writers of all 6,763 characters, seeds
# 7200 / 7300; plus 60 + 60 of the 3,008 level-2 characters alone, seeds 7400 / 7500, as gpu.sh's L2_WRITERS=60).
set -uo pipefail
cd /work/main && source .venv/bin/activate
W=/work/hccr-runs/gb2312-r15
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
H="python3 -m hccr.cli"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$W/prep.log"; }
val=1023-c,1047-c,1071-c,1095-c,1119-c,1143-c,1167-c,1191-c,1215-c,1239-c
while kill -0 14426 2>/dev/null; do sleep 5; done
[ -s "$W/bank.npz" ] || { log "no bank"; exit 1; }
log "bank done; synth"
draw() { $H synth "$W/$1" --chars "$2" --writers "$3" --seed "$4" --prefix "$5" --style "$6" 2>&1 | tail -n 1 | tee -a "$W/prep.log"; }
comp="components:$W/bank.npz" bi=hccr/assets/style-builtin.json
draw synth gb2312 40 7200 synth "$comp" & draw synth-builtin gb2312 40 7300 builtin "$bi" & wait
draw synth-l2 gb2312-2 60 7400 l2comp "$comp" & draw synth-l2-builtin gb2312-2 60 7500 l2builtin "$bi" & wait
log "convert"
$H convert "$W/olhwdb" "$W/synth" "$W/synth-builtin" "$W/synth-l2" "$W/synth-l2-builtin" \
  ../shared/data/casia-hwdb-22/CASIA-HWDB_Train "$W/store" --charset gb2312 --val-writers "$val" 2>&1 | tail -n 2 | tee -a "$W/prep.log" || exit 1
log "prepared"
