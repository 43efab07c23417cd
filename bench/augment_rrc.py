"""Random-resized-crop batch time of this tree's `train_transform` against the same function
at another git revision, in one process (outputs are also compared for equality).

    OMP_NUM_THREADS=1 python bench/augment_rrc.py --baseline-rev 8d6a366 --crop 128
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from cnnzoo.data import transforms as current


def load_baseline(rev: str):
    """cnnzoo/data/transforms.py as it was at `rev`, importable next to today's package."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "-C", str(root), "show", f"{rev}:src/cnnzoo/data/transforms.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    source = source.replace("from ..", "from cnnzoo.").replace("from .", "from cnnzoo.data.")
    path = Path(tempfile.mkdtemp()) / "baseline_transforms.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_transforms", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def median_times(modules, images: torch.Tensor, crop: int, repeats: int) -> list[float]:
    """Median seconds per batch of each module, their calls interleaved (fair on a noisy
    machine), after one untimed warm-up call each."""
    times: list[list[float]] = [[] for _ in modules]
    for i in range(repeats + 1):
        for m, module in enumerate(modules):
            start = time.perf_counter()
            module.train_transform(
                images, module.AugmentCfg(crop), torch.Generator().manual_seed(i)
            )
            if i:
                times[m].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline-rev", required=True)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--height", type=int, default=320)
    p.add_argument("--width", type=int, default=300)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--repeats", type=int, default=15)
    a = p.parse_args()
    base = load_baseline(a.baseline_rev)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (a.batch, 3, a.height, a.width), generator=g, dtype=torch.uint8)
    same = torch.equal(
        base.train_transform(images, base.AugmentCfg(a.crop), torch.Generator().manual_seed(1)),
        current.train_transform(
            images, current.AugmentCfg(a.crop), torch.Generator().manual_seed(1)
        ),
    )
    t_base, t_now = median_times([base, current], images, a.crop, a.repeats)
    print(f"{a.batch} images {a.height}x{a.width} -> {a.crop}, {torch.get_num_threads()} thread(s)")
    print(f"baseline {a.baseline_rev}: {1000 * t_base:.0f} ms; this tree: {1000 * t_now:.0f} ms; "
          f"ratio {t_base / t_now:.2f}x; same output: {same}")  # fmt: skip


if __name__ == "__main__":
    main()
