#!/usr/bin/env bash
# Round 11's mix rebuilt on a fresh machine (the run folder of round 15 was lost with the machine): round 15's
# prep.sh + prep2.sh in one script, same seeds, writers and validation writers.
set -uo pipefail
cd /work/main && source .venv/bin/activate
W=/work/hccr-runs/gb2312-r15
mkdir -p "$W"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
H="python3 -m hccr.cli"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$W/prep.log"; }
val=1023-c,1047-c,1071-c,1095-c,1119-c,1143-c,1167-c,1191-c,1215-c,1239-c
log "unpack"
[ -d "$W/olhwdb" ] || { tar -xJf ../shared/data/casia-olhwdb1.1-train.tar.xz -C "$W" && mv "$W/casia-olhwdb1.1-train" "$W/olhwdb"; } || exit 1
fit=()
for f in $(ls "$W"/olhwdb/*.pot | sort); do
  case ",$val," in *",$(basename "$f" .pot),"*) ;; *) fit+=(--fit "$f") ;; esac
done
fit=("${fit[@]:0:80}")
log "component bank from $(( ${#fit[@]} / 2 )) training writers"
[ -s "$W/bank.npz" ] || $H synth --chars gb2312-1 "${fit[@]}" --style-out "$W/bank.npz" 2>&1 | tail -n 2 | tee -a "$W/prep.log"
[ -s "$W/bank.npz" ] || { log "no bank"; exit 1; }
draw() { [ -d "$W/$1" ] || $H synth "$W/$1" --chars "$2" --writers "$3" --seed "$4" --prefix "$5" --style "$6" 2>&1 | tail -n 1 | tee -a "$W/prep.log"; }
comp="components:$W/bank.npz" bi=hccr/assets/style-builtin.json
log "synth"
draw synth gb2312 40 7200 synth "$comp" & draw synth-builtin gb2312 40 7300 builtin "$bi" & wait
draw synth-l2 gb2312-2 60 7400 l2comp "$comp" & draw synth-l2-builtin gb2312-2 60 7500 l2builtin "$bi" & wait
log "convert"
$H convert "$W/olhwdb" "$W/synth" "$W/synth-builtin" "$W/synth-l2" "$W/synth-l2-builtin" \
  ../shared/data/casia-hwdb-22/CASIA-HWDB_Train "$W/store" --charset gb2312 --val-writers "$val" 2>&1 | tail -n 2 | tee -a "$W/prep.log" || exit 1
log "prepared"
