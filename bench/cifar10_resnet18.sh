#!/usr/bin/env bash
# Seed 002's experiment: resnet18 with the ImageNet stem on 32x32 CIFAR-10, 10 epochs, then
# test accuracy, plain and with flip TTA. Extra options go to `cnnzoo train` and override the
# recipe below. Usage: bench/cifar10_resnet18.sh [RUN_DIR] [extra cnnzoo train options]
set -euo pipefail
source "$(dirname "$0")/_cifar10.sh"
run="${1:-$work/runs/cifar10-resnet18}"
shift || true
# the 10-epoch recipe of docs/benchmarks.md: the `small` recipe (SGD Nesterov, batch 128,
# wd 5e-4, 1 warm-up epoch + cosine) with lr 0.2, a 2-pixel pad-crop, flips, label smoothing
/usr/bin/time -v cnnzoo train --model resnet18 --data "$work/cifar10" --epochs 10 \
  --lr 0.2 --crop-pad 2 --label-smoothing 0.1 --threads "$OMP_NUM_THREADS" --no-progress \
  --out "$run" "$@"
cnnzoo eval --checkpoint "$run" --data "$work/cifar10" --out "$run/eval.json" --no-progress
cnnzoo eval --checkpoint "$run" --data "$work/cifar10" --out "$run/eval-tta.json" --tta \
  --no-progress
