#!/usr/bin/env bash
# Seed 002's experiment: resnet18 with the ImageNet stem on 32x32 CIFAR-10, 10 epochs, then
# test accuracy. Data: ../shared/datasets/cifar10-jpeg.tar.gz (or CNNZOO_DATASETS).
# Usage: bench/cifar10_resnet18.sh [RUN_DIR] [extra cnnzoo train options]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
datasets="${CNNZOO_DATASETS:-$here/../shared/datasets}"
work="${CNNZOO_BENCH_DIR:-/tmp/cnnzoo-bench}"
run="${1:-$work/runs/cifar10-resnet18}"
shift || true
mkdir -p "$work"
if [ ! -d "$work/cifar10/train" ]; then
  mkdir -p "$work/cifar10"
  tar -xzf "$datasets/cifar10-jpeg.tar.gz" -C "$work/cifar10"
fi
# One thread per process: on a machine shared with other jobs, two spinning OpenMP threads
# per process slow training down many times over; alone on 2 cores, drop this.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
/usr/bin/time -v cnnzoo train --model resnet18 --data "$work/cifar10" --epochs 10 \
  --label-smoothing 0.1 --channels-last --no-progress --out "$run" "$@"
cnnzoo eval --checkpoint "$run" --data "$work/cifar10" --out "$run/eval.json"
