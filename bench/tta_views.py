"""Which test-time views pay: a checkpoint's accuracy on its held-out split when the logits of
the plain image are averaged with those of its mirror and of shifted copies (zero-padded, as
the pad-crop of training).

    OMP_NUM_THREADS=1 python bench/tta_views.py RUN_DIR/best.safetensors

`cnnzoo eval --tta` uses the mirror only; this script is the evidence for that choice.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from cnnzoo.data import load_data
from cnnzoo.infer import load_checkpoint
from cnnzoo.infer.evaluate import Preprocess

ONE_PX = [(1, 0), (-1, 0), (0, 1), (0, -1)]
DIAGONAL = [(1, 1), (-1, -1), (1, -1), (-1, 1)]
TWO_PX = [(2, 0), (-2, 0), (0, 2), (0, -2)]


def shift(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """`x` moved by (dx, dy) pixels, the uncovered border zero."""
    p = max(abs(dx), abs(dy))
    h, w = x.shape[-2:]
    return F.pad(x, (p, p, p, p))[..., p + dy : p + dy + h, p + dx : p + dx + w]


def view_sets() -> dict[str, list[tuple[bool, int, int]]]:
    """Named sets of (mirrored, dx, dy) views."""
    plain, mirror = (False, 0, 0), (True, 0, 0)
    return {
        "plain": [plain],
        "mirror (cnnzoo eval --tta)": [plain, mirror],
        "mirror + 4 one-px shifts": [plain, mirror] + [(False, *d) for d in ONE_PX],
        "mirror + 4 one-px shifts of both": [plain, mirror]
        + [(f, *d) for f in (False, True) for d in ONE_PX],
        "mirror + 8 one-px shifts (with diagonals)": [plain, mirror]
        + [(False, *d) for d in ONE_PX + DIAGONAL],
        "mirror + 4 two-px shifts": [plain, mirror] + [(False, *d) for d in TWO_PX],
    }


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--batch", type=int, default=500)
    a = p.parse_args()
    model, meta = load_checkpoint(a.checkpoint)
    data = meta["data"]
    bundle = load_data(
        data["source"],
        data_dir=(meta.get("recipe") or {}).get("data_dir"),
        image_size=data.get("load_size"),
        val_split=data.get("val_split", 0.1),
        seed=data.get("seed", 0),
    )
    preprocess = Preprocess.from_meta(meta)
    sets = view_sets()
    views = sorted({v for views in sets.values() for v in views})
    logits: dict[tuple[bool, int, int], list[torch.Tensor]] = {v: [] for v in views}
    for i in range(0, len(bundle.val), a.batch):
        x = preprocess(bundle.val.images[i : i + a.batch])
        for mirrored, dx, dy in views:
            v = shift(x.flip(-1) if mirrored else x, dx, dy)
            logits[(mirrored, dx, dy)].append(model(v))
    labels = bundle.val.labels
    print(f"{meta['model']} on {len(labels)} {bundle.val_name} images of {data['source']}")
    print("| views | top-1 |")
    print("|---|---:|")
    for name, vs in sets.items():
        mean = sum(torch.cat(logits[v]) for v in vs) / len(vs)
        print(f"| {name} | {100 * (mean.argmax(1) == labels).float().mean():.2f}% |")


if __name__ == "__main__":
    main()
