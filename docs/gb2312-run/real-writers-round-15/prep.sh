#!/usr/bin/env bash
# Round 15's data: round 10's mix rebuilt as benchmarks/gpu.sh prepare + train's convert make it (same seeds,
# bank of 40 training writers, 40 + 40 simulated writers), from the archive and the scans in ../shared/data.
set -uo pipefail
cd /work/main && source .venv/bin/activate
W=/work/hccr-runs/gb2312-r15
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
[ -f "$W/bank.npz" ] || $H synth --chars gb2312-1 "${fit[@]}" --style-out "$W/bank.npz" 2>&1 | tail -n 2 | tee -a "$W/prep.log"
log "synth components"
$H synth "$W/synth" --chars gb2312 --writers 40 --seed 7200 --prefix synth --style "components:$W/bank.npz" 2>&1 | tail -n 1 | tee -a "$W/prep.log" &
$H synth "$W/synth-builtin" --chars gb2312 --writers 40 --seed 7300 --prefix builtin --style hccr/assets/style-builtin.json 2>&1 | tail -n 1 | tee -a "$W/prep.log" &
wait
log "convert"
$H convert "$W/olhwdb" "$W/synth" "$W/synth-builtin" ../shared/data/casia-hwdb-22/CASIA-HWDB_Train "$W/store" \
  --charset gb2312 --val-writers "$val" 2>&1 | tail -n 2 | tee -a "$W/prep.log" || exit 1
log "prepared"
