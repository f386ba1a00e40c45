#!/usr/bin/env bash
# Runs on a lent GPU box (torch, no GDAL): trains the default model from the
# folder written by `python -m map_refiner.dev.default_model.build prepare`, then
# checks the CUDA path. Usage: bash dev/device_build.sh WORK OUTDIR CNN_S RNN_S
set -euo pipefail
WORK=$1; OUTDIR=$2; CNN_S=${3:-240}; RNN_S=${4:-120}
ln -sfn "$PWD" /tmp/map_refiner
export PYTHONPATH=/tmp PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
python3 -m map_refiner.dev.default_model.build fit --work "$WORK" \
  --out "$OUTDIR/default.safetensors" --coarse-steps 1000000 --rnn-steps 1000000 \
  --coarse-seconds "$CNN_S" --rnn-seconds "$RNN_S" --rnn-batch 32 --device cuda 2>&1 \
  | grep -v "loss" | tail -5 || true
python3 -m map_refiner.dev.benchmarks.cuda_check --model "$OUTDIR/default.safetensors" \
  --image "$WORK/xiamen_image.jpg" --size 2500 | tee "$OUTDIR/cuda_check.json"
