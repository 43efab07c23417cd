"""Does the fast path change a trained model's answers? Top-1 agreement of the fast fp32 and
fast bf16 forms with the exact fp32 model on the held-out images of a checkpoint's own data
(the split `cnnzoo eval` scores), with each path's accuracy and its time over the whole set.

    python bench/bf16_agreement.py --checkpoint runs/RUN --threads 2

Any run folder written by `cnnzoo train` will do; a model that has learnt something is the
real test (an untrained model's logits are near ties that any rounding flips).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from cnnzoo.artifacts.sidecar import resolve_checkpoint
from cnnzoo.infer.evaluate import Preprocess, checkpoint_split, compute_logits
from cnnzoo.infer.fast import prepare_inference
from cnnzoo.infer.load import load_checkpoint
from cnnzoo.infer.machine import machine_info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="run folder or .safetensors")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ckpt = resolve_checkpoint(a.checkpoint)
    model, meta = load_checkpoint(str(ckpt))
    part, data, split_name, _ = checkpoint_split(meta, progress=False)
    preprocess = Preprocess.from_meta(meta)
    example = preprocess(part.images[:8])
    m = machine_info(torch.device("cpu"))
    print(f"{meta['model']} ({ckpt}), {len(part)} images: {data} {split_name}, "
          f"{meta['input_size']} px")  # fmt: skip
    print(f"{m['cpu']} [{' '.join(m['cpu_features'])}], {m['threads']} threads, "
          f"torch {m['torch']}, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    logits, seconds = {}, {}
    for precision in ("fp32", "fast-fp32", "bf16"):
        path = prepare_inference(model, example, precision)
        t = time.perf_counter()
        logits[path.name] = compute_logits(path.model, part.images, preprocess, a.batch_size)
        seconds[path.name] = time.perf_counter() - t
    exact = logits["fp32 (exact)"]
    labels = part.labels.long()
    print("| path | top-1 | agreement with exact fp32 | max abs logit diff | s for the set |")
    print("|---|---:|---:|---:|---:|")
    for name, out in logits.items():
        acc = 100 * (out.argmax(1) == labels).float().mean().item()
        same = (out.argmax(1) == exact.argmax(1)).sum().item()
        diff = (out - exact).abs().max().item()
        print(f"| {name} | {acc:.2f}% | {100 * same / len(labels):.2f}% ({same}/{len(labels)}) "
              f"| {diff:.2e} | {seconds[name]:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
