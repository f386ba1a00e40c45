#!/usr/bin/env bash
# GPU figures for docs/benchmarks.md, on a lent GPU box (torch, no GDAL).
# Here first:  .venv/bin/python -m map_refiner.dev.benchmarks.gpu_prepare   (writes out/gpu_bench)
# There (device tool, carry out/gpu_bench):  bash dev/device_bench.sh out/gpu_bench "$OUT"
# Back here:   cp <files_at>/cuda_check.json out/bench_gpu.json
#              .venv/bin/python -m map_refiner.dev.benchmarks.bench --report-only
set -euo pipefail
IN=$1; OUTDIR=$2
ln -sfn "$PWD" /tmp/map_refiner
export PYTHONPATH=/tmp PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
python3 -m map_refiner.dev.benchmarks.cuda_check --model resources/models/default.safetensors \
  --image "$IN/xiamen_crop.png" --size 2500 \
  --eval-image "$IN/austin_dev.png" --eval-labels "$IN/austin_dev_labels.png" \
  | tee "$OUTDIR/cuda_check.json"
