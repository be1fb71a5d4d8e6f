#!/usr/bin/env bash
# On a lent CUDA machine: the shipped gb2312 recipe's data rebuilt there (scripts/train_gb2312.sh's
# mix: 220 writers' trajectories, casia-hwdb-22's training scans, 40 + 40 simulated writers of all
# 6,763 characters) and two candidate trainings side by side on the GPU, each for the wall time the
# call leaves; both packaged and calibrated on the validation writers as the recipe does.
#
# A call carries at most 64 MiB of working tree, so the real data travels packed
# (scripts/pack_for_device.py, lossless) in two calls, the second while the machine is still warm:
#   bash benchmarks/gpu.sh prepare   carry .gpu/p1 (olhwdb-1.xz: writers 1-130)
#                                    -> unpack, component bank, simulated writers
#   bash benchmarks/gpu.sh train     carry .gpu/p2 (olhwdb-2.xz: writers 131-220, hwdb22.tar.gz)
#                                    -> unpack, convert, train A and B, package, calibrate
# Prepare the packs here with:
#   python scripts/pack_for_device.py pack OLHWDB_DIR .gpu/p1/olhwdb-1.xz --writers 0:130
#   python scripts/pack_for_device.py pack OLHWDB_DIR .gpu/p2/olhwdb-2.xz --writers 130:
#   python scripts/pack_for_device.py scans ../shared/data/casia-hwdb-22/CASIA-HWDB_Train X/hwdb22/CASIA-HWDB_Train
#   tar -czf .gpu/p2/hwdb22.tar.gz -C X hwdb22
# Environment: OUT (.bench/gpu), WORK (/tmp/gb2312), CALL_SECONDS (540: this call's limit),
# SYNTH_WRITERS (40), SEED (7200), BANK_WRITERS (40 training writers fit the component bank),
# L2_WRITERS (0: that many more writers of each generator draw the level-2 characters alone; seeds SEED+200, +300),
# A_SET / B_SET (the candidates' --set lists; CANDIDATES="A B" names which run, X reading X_SET), DEVICE (cuda).
# MINUTES (each training's wall time; default: what the call leaves after PACKAGE_SECONDS, 110), TRAIN_THREADS (4),
# PACKS (.gpu), VAL (the validation writers, comma-separated).
set -uo pipefail
cd "$(dirname "$0")/.."
phase=${1:?usage: gpu.sh prepare|train}
OUT=${OUT:-.bench/gpu}
WORK=${WORK:-/tmp/gb2312}
PACKS=${PACKS:-.gpu}
SYNTH_WRITERS=${SYNTH_WRITERS:-40}
SEED=${SEED:-7200}
BANK_WRITERS=${BANK_WRITERS:-40}
L2_WRITERS=${L2_WRITERS:-0}
DEVICE=${DEVICE:-cuda}
end=$(( $(date +%s) + ${CALL_SECONDS:-540} ))
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
H="python3 -m hccr.cli"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/gpu.log"; }
# The recipe's validation writers: every 22nd of the 220 by name, never trained on.
val=${VAL:-1023-c,1047-c,1071-c,1095-c,1119-c,1143-c,1167-c,1191-c,1215-c,1239-c}
HALF_AUG="augment.rotation=5 augment.shear=0.1 augment.scale=0.925,1.04 augment.aspect=0.06 augment.translate=0.03
augment.elastic=0.015 augment.blur=0.15 augment.noise=0.015 augment.ink=0.15 augment.pen=0.1"
# A: the shipped lean ResNet (round 9) trained on; B: a 1.5x wider lean ResNet from scratch.
A_SET=${A_SET:-"init=gb2312 batch_size=512 lr=5e-4 warmup_epochs=0.02 seed=2330 $HALF_AUG"}
B_SET=${B_SET:-"model_args.widths=48,96,192,384 batch_size=512 lr=3e-3 warmup_epochs=0.1 seed=2331 $HALF_AUG"}

if [ "$phase" = prepare ]; then
  # every step below runs one process a core: one BLAS thread each (the component cut forks one a core)
  export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
  { python3 -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"; nproc; } \
    | tee "$OUT/device.txt"
  log "unpack part 1"
  python3 scripts/pack_for_device.py unpack "$PACKS"/p1/*.xz --out "$WORK/olhwdb" | tee -a "$OUT/gpu.log" || exit 1
  fit=()
  for f in $(ls "$WORK"/olhwdb/*.pot | sort); do
    case ",$val," in *",$(basename "$f" .pot),"*) ;; *) fit+=(--fit "$f") ;; esac
  done
  fit=("${fit[@]:0:$((2 * BANK_WRITERS))}")
  log "component bank from $(( ${#fit[@]} / 2 )) training writers"
  $H synth --chars gb2312-1 "${fit[@]}" --style-out "$WORK/bank.npz" 2>&1 | tail -n 2 | tee -a "$OUT/gpu.log" || exit 1
  draw() {  # folder, characters, writers, seed, file prefix, style: one generator's simulated writers
    $H synth "$WORK/$1" --chars "$2" --writers "$3" --seed "$4" --prefix "$5" --style "$6" \
      2>&1 | tail -n 1 | tee -a "$OUT/gpu.log" || exit 1
  }
  components="components:$WORK/bank.npz" builtin=hccr/assets/style-builtin.json
  log "synth: $SYNTH_WRITERS writers x 6,763 (components), $SYNTH_WRITERS (builtin)"
  draw synth gb2312 "$SYNTH_WRITERS" "$SEED" synth "$components"
  draw synth-builtin gb2312 "$SYNTH_WRITERS" $((SEED + 100)) builtin "$builtin"
  if [ "$L2_WRITERS" -gt 0 ]; then
    log "synth: $L2_WRITERS more writers x 3,008 level-2 (components), $L2_WRITERS (builtin)"
    draw synth-l2 gb2312-2 "$L2_WRITERS" $((SEED + 200)) l2comp "$components"
    draw synth-l2-builtin gb2312-2 "$L2_WRITERS" $((SEED + 300)) l2builtin "$builtin"
  fi
  rm -f "$WORK/bank.npz"
  touch "$WORK/prepared"
  log "prepared"
  exit 0
fi

[ "$phase" = train ] || { echo "usage: gpu.sh prepare|train" >&2; exit 2; }
[ -f "$WORK/prepared" ] || { echo "$WORK: run 'gpu.sh prepare' first (on this machine)" >&2; exit 1; }
log "unpack part 2 and the scans"
python3 scripts/pack_for_device.py unpack "$PACKS"/p2/*.xz --out "$WORK/olhwdb" | tee -a "$OUT/gpu.log" || exit 1
tar -xzf "$PACKS"/p2/hwdb22.tar.gz -C "$WORK" || exit 1
every22=$(ls "$WORK/olhwdb" | sed 's/\.pot$//' | sort | awk 'NR % 22 == 0' | paste -sd, -)
[ "$every22" = "$val" ] || log "note: validation writers by the recipe's rule would be $every22"
log "convert"
l2=(); l2n=0  # the level-2 writers of prepare's L2_WRITERS, if it drew any
[ -d "$WORK/synth-l2" ] && l2=("$WORK/synth-l2" "$WORK/synth-l2-builtin") && l2n=$(ls "$WORK/synth-l2" | grep -c '\.pot$')
$H convert "$WORK/olhwdb" "$WORK/synth" "$WORK/synth-builtin" "${l2[@]}" "$WORK/hwdb22/CASIA-HWDB_Train" "$WORK/store" \
  --charset gb2312 --val-writers "$val" 2>&1 | tail -n 2 | tee -a "$OUT/gpu.log" || exit 1
minutes=${MINUTES:-$(python3 -c "print(round(max(($end - $(date +%s) - ${PACKAGE_SECONDS:-110}) / 60, 0.5), 2))")}
CANDIDATES=${CANDIDATES:-A B}
log "train $CANDIDATES side by side, $minutes min each"
settings() { local v="$1_SET"; echo "${!v}"; }  # a candidate's --set list: A -> $A_SET
bring_back() { local c=$1 s; shift; for s; do cp "$WORK/$c/gb2312.$s" "$OUT/$c.$s"; done; }  # candidate, suffixes
machine=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
machine=${machine:-$(nproc) CPU cores}
train() {  # candidate
  local args=(--preset gb2312 --data "$WORK/store" --out "$WORK/$1" --device "$DEVICE" --set "minutes=$minutes")
  for kv in $(settings "$1"); do args+=(--set "$kv"); done
  OMP_NUM_THREADS=${TRAIN_THREADS:-4} $H train "${args[@]}" 2>&1 | grep --line-buffered -v "steps \[" > "$OUT/$1.log"
}
for c in $CANDIDATES; do train "$c" & done
wait
for c in $CANDIDATES; do
  tail -n 4 "$OUT/$c.log" | sed "s/^/$c: /" | tee -a "$OUT/gpu.log"
  $H package "$WORK/$c" --out "$WORK/$c/gb2312" --overwrite --divide-prior --prior-power 0.5 \
    --recipe "benchmarks/gpu.sh train with DEVICE=$DEVICE CANDIDATES=$c MINUTES=$minutes on $machine (scripts/train_gb2312.sh's mix: SYNTH_WRITERS=$SYNTH_WRITERS SEED=$SEED L2=components+builtin L2_WRITERS=$l2n, bank from $BANK_WRITERS writers; $minutes min; SET=\"$(echo $(settings "$c"))\" PRIOR_POWER=0.5)" \
    --real-data "CASIA-OLHWDB1.1: the pen trajectories of 210 of its training writers, every level-1 character, drawn by hccr's pen (hccr.data.render.Pen, fitted to scans); casia-hwdb-22's training scans (22 characters)" \
    2>&1 | tee -a "$OUT/gpu.log" &
done
wait
# The files come back first: calibration (inference over the validation writers) can outlast the call.
for c in $CANDIDATES; do bring_back "$c" json safetensors onnx 2>/dev/null; done
for c in $CANDIDATES; do sed "s/^/$c| /" "$OUT/$c.log" >> "$OUT/gpu.log" && rm "$OUT/$c.log"; done  # 8 files come back at most
for c in $CANDIDATES; do
  $H calibrate "$WORK/store" --split val --model "$WORK/$c/gb2312.json" 2>&1 | sed "s/^/$c: /" | tee -a "$OUT/gpu.log" \
    && bring_back "$c" json onnx &
done
wait
log "done"
