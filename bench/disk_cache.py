"""Disk cache of decoded images: build time, size on disk, reload time and the read rate of a
shuffled epoch, on a sample of real JPEGs, extrapolated to ImageNet-1k's 1,281,167 training
images. The in-memory decode of the same sample is timed alternately as the baseline.

    OMP_NUM_THREADS=1 python bench/disk_cache.py --tar ../shared/datasets/imagenette-160-train.tar \\
        --n 2000 --size 160 --size 256
"""

from __future__ import annotations

import argparse
import os
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

import torch

from cnnzoo.data.folders import load_folder

IMAGENET_TRAIN = 1_281_167


def extract_sample(tar_path: Path, n: int, dest: Path) -> Path:
    """The first `n` JPEGs of the tar, spread over its class folders as they come."""
    with tarfile.open(tar_path) as tar:
        members = [m for m in tar if m.isfile() and m.name.lower().endswith((".jpg", ".jpeg"))]
        step = max(1, len(members) // n)
        picked = members[::step][:n]
        for m in picked:
            tar.extract(m, dest, filter="data")
    # the class folders sit somewhere below dest: find the level holding them
    first = dest / picked[0].name
    return first.parent.parent


def epoch_read_rate(images: torch.Tensor, batch: int = 256) -> float:
    """Images per second gathered in shuffled batches (what training does each step)."""
    perm = torch.randperm(images.shape[0])
    start = time.perf_counter()
    for i in range(0, len(perm), batch):
        images[perm[i : i + batch]]  # the gather copies every byte of the batch
    return len(perm) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tar", required=True, type=Path)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--size", type=int, action="append", help="stored side (repeatable)")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    sizes = args.size or [160]
    with tempfile.TemporaryDirectory() as tmp:
        root = extract_sample(args.tar, args.n, Path(tmp) / "sample")
        n_files = sum(1 for _ in root.rglob("*.JPEG")) + sum(1 for _ in root.rglob("*.jpg"))
        print(f"sample: {n_files} JPEGs in {root}; threads {torch.get_num_threads()}, "
              f"decode workers {min(8, os.cpu_count() or 1)}; load {os.getloadavg()[0]:.1f}")  # fmt: skip
        for size in sizes:
            times = {"memory": [], "disk build": [], "disk reload": []}
            rates = {"memory": [], "disk": []}
            for r in range(args.repeats):  # baseline and candidate alternately
                t = time.perf_counter()
                mem = load_folder(
                    root, image_size=size, val_split=0.0, cache="memory", progress=False
                )
                times["memory"].append(time.perf_counter() - t)
                cache = Path(tmp) / f"cache-{size}-{r}"
                t = time.perf_counter()
                load_folder(root, image_size=size, val_split=0.0, cache="disk", cache_dir=cache,
                            progress=False)  # fmt: skip
                times["disk build"].append(time.perf_counter() - t)
                t = time.perf_counter()
                disk = load_folder(root, image_size=size, val_split=0.0, cache="disk",
                                   cache_dir=cache, progress=False)  # fmt: skip
                times["disk reload"].append(time.perf_counter() - t)
                assert torch.equal(mem.train.images, disk.train.images)
                rates["memory"].append(epoch_read_rate(mem.train.images))
                rates["disk"].append(epoch_read_rate(disk.train.images))
                nbytes = sum(f.stat().st_size for f in cache.glob("*.u8"))
                del mem, disk
            n = n_files
            build = statistics.median(times["disk build"])
            print(f"\nstored {size}x{size}: {nbytes / n:,.0f} bytes per image on disk")
            for k, v in times.items():
                print(
                    f"  {k:12s} median {statistics.median(v):7.2f} s  ({n / statistics.median(v):,.0f} img/s)"
                )
            for k, v in rates.items():
                print(
                    f"  epoch read from {k:6s}: {statistics.median(v):,.0f} img/s (shuffled batches of 256)"
                )
            print(
                f"  build / memory decode time: {build / statistics.median(times['memory']):.2f}x"
            )
            print(f"  ImageNet-1k extrapolated: {IMAGENET_TRAIN * nbytes / n / 1e9:,.1f} GB on disk, "
                  f"build {IMAGENET_TRAIN * build / n / 3600:.1f} h at this sample's rate")  # fmt: skip


if __name__ == "__main__":
    main()
