#!/usr/bin/env bash
# Issue 14's short run: Imagenette (160 px train split, 10% held out, seeded), 128 px, 5 epochs
# from random weights, then the held-out accuracy plain and with flip TTA. Extra options go to
# `cnnzoo train` and override the recipe below (the best of docs/benchmarks.md's table).
# Usage: bench/imagenette_5ep.sh [RUN_DIR] [extra cnnzoo train options]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
datasets="${CNNZOO_DATASETS:-$here/../shared/datasets}"
work="${CNNZOO_BENCH_DIR:-/tmp/cnnzoo-bench}"
if [ ! -d "$work/imagenette/train" ]; then
  mkdir -p "$work/imagenette"
  tar -xf "$datasets/imagenette-160-train.tar" -C "$work/imagenette"
fi
# two threads on an otherwise idle 2-core machine; OMP_NUM_THREADS=1 beside another job
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
run="${1:-$work/runs/imagenette-5ep}"
shift || true
/usr/bin/time -f "wall %e s, peak RSS %M KB" cnnzoo train --model resnet18d \
  --data "$work/imagenette/train" --image-size 128 --epochs 5 --opt adamw --lr 6e-3 --wd 0.01 \
  --batch-size 32 --sched onecycle --crop-scale 0.35 --progressive 64 --amp --channels-last \
  --threads "$OMP_NUM_THREADS" --no-progress --out "$run" "$@"
cnnzoo eval "$run" --out "$run/eval" --no-progress
cnnzoo eval "$run" --out "$run/eval" --tta --no-progress
