#!/usr/bin/env bash
# CIFAR-stem recipes on 32x32 CIFAR-10 (the `small` recipe), then test accuracy.
# Usage: bench/cifar10_cifar_stem.sh MODEL [RUN_DIR] [extra cnnzoo train options]
#   bench/cifar10_cifar_stem.sh resnet20 /tmp/r20 --epochs 10
#   bench/cifar10_cifar_stem.sh resnet18 /tmp/r18 --stem cifar --epochs 2 --warmup-epochs 0.3
set -euo pipefail
source "$(dirname "$0")/_cifar10.sh"
model="${1:?usage: bench/cifar10_cifar_stem.sh MODEL [RUN_DIR] [options]}"
run="${2:-$work/runs/cifar10-$model}"
shift 2 || shift || true
/usr/bin/time -v cnnzoo train --model "$model" --data "$work/cifar10" \
  --threads "$OMP_NUM_THREADS" --no-progress --out "$run" "$@"
cnnzoo eval --checkpoint "$run" --data "$work/cifar10" --out "$run/eval.json" --no-progress
