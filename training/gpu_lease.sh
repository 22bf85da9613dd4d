#!/usr/bin/env bash
# One GPU lease: several training runs side by side within one time budget, weights brought back.
#
#   bash training/gpu_lease.sh DATA_ROOT BUDGET_SECONDS NAME=CONFIG[@INIT] [NAME=CONFIG ...]
#
# (@INIT: a .safetensors checkpoint the run starts from, `--init-from`.)
# Runs on the borrowed machine from the repository root (training/README.md, "A GPU lease");
# each run gets `--time-budget BUDGET_SECONDS`, so its schedule ends inside the budget. Into $OUT
# go NAME.pt (weights only, no optimizer state: what training.export reads) per run, and
# logs.tar.gz (each run's config.yaml, metrics.jsonl and log, and gpu.csv: utilisation and
# memory every 5 s). DEVICE=cpu dry-runs it on a machine without a GPU.
set -u
data=$1 budget=$2
shift 2
out=${OUT:-/tmp/lease-out} work=/tmp/lease
mkdir -p "$out" "$work"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 \
    > "$work/gpu.csv" 2>&1 &
  monitor=$!
fi
names=() pids=()
for spec in "$@"; do
  name=${spec%%=*} config=${spec#*=} init=()
  if [[ $config == *@* ]]; then init=(--init-from "${config#*@}") config=${config%@*}; fi
  names+=("$name")
  python3 -m training.train --config "$config" --data-root "$data" --run-dir "$work/$name" \
    --time-budget "$budget" --device "${DEVICE:-cuda}" "${init[@]}" > "$work/$name.log" 2>&1 &
  pids+=($!)
done
wait "${pids[@]}"
[ -n "${monitor:-}" ] && kill "$monitor"
for name in "${names[@]}"; do
  python3 -m training.pack --run-dir "$work/$name" --out "$work/back/$name" >> "$work/$name.log" 2>&1 \
    && mv "$work/back/$name/last.pt" "$out/$name.pt"
  cp "$work/$name.log" "$work/back/$name/" 2> /dev/null
  rm -f "$work/back/$name/best.pt"
done
cp "$work/gpu.csv" "$work/back/" 2> /dev/null
tar -czf "$out/logs.tar.gz" -C "$work/back" .
ls -l "$out"
