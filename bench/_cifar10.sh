# Sourced by the CIFAR-10 benchmarks: extracts ../shared/datasets/cifar10-jpeg.tar.gz (or
# $CNNZOO_DATASETS) once into $work/cifar10 and sets the thread count.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
datasets="${CNNZOO_DATASETS:-$here/../shared/datasets}"
work="${CNNZOO_BENCH_DIR:-/tmp/cnnzoo-bench}"
mkdir -p "$work"
if [ ! -d "$work/cifar10/train" ]; then
  mkdir -p "$work/cifar10"
  tar -xzf "$datasets/cifar10-jpeg.tar.gz" -C "$work/cifar10"
fi
# Two threads on an otherwise idle 2-core machine; on a machine shared with other jobs use
# OMP_NUM_THREADS=1 (two spinning OpenMP threads per process then stall each other).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
