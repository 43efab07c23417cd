"""The trainer's images/s against a bare training step on the same tensors, and where the rest
of an epoch goes (augmentation, evaluation, checkpoint writes).

    python bench/trainer_overhead.py --model resnet18 --size 128 --load-size 160 --batch 64 \
        --precision bf16 --channels-last --threads 2

Both paths use the same model, batch, precision, layout, loss (label smoothing) and Nesterov
SGD step; the bare step trains on one pre-augmented batch, the trainer runs its own
`train_one_epoch` over uint8 images (per-batch augmentation included). They alternate for
`--rounds` rounds in one process and the medians are compared. Augmentation, validation and
the per-epoch checkpoint writes are then timed on their own and scaled to a full epoch of
`--epoch-images` (Imagenette's 8,522 training images by default).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnzoo.artifacts.sidecar import save_checkpoint
from cnnzoo.data import DataBundle, ImageTensors
from cnnzoo.infer.evaluate import autocast
from cnnzoo.train import TrainConfig, Trainer
from cnnzoo.train.trainer import _train_transform


def synthetic_bundle(n_train: int, n_val: int, load_size: int, classes: int) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    make = lambda n: ImageTensors(  # noqa: E731
        torch.randint(0, 256, (n, 3, load_size, load_size), dtype=torch.uint8, generator=g),
        torch.randint(0, classes, (n,), generator=g),
    )
    names = [f"c{i}" for i in range(classes)]
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    return DataBundle("synthetic", names, make(n_train), make(n_val), "val", load_size, mean, std)


def bare_steps(
    trainer: Trainer, x: torch.Tensor, y: torch.Tensor, steps: int
) -> tuple[float, float]:
    """(wall, CPU) seconds for `steps` plain training steps on one prepared batch with the
    trainer's own model and optimiser: the floor the trainer is measured against."""
    model, opt, ls = trainer.model, trainer.optimizer, trainer.cfg.label_smoothing or 0.0
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        with autocast(x.device, trainer.amp_dtype):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=ls)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - start, time.process_time() - cpu


def trainer_epoch(trainer: Trainer) -> tuple[float, float]:
    """(wall, CPU) seconds of one `train_one_epoch`."""
    start, cpu = time.perf_counter(), time.process_time()
    trainer.train_one_epoch()
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--size", type=int, default=128, help="training input side")
    p.add_argument("--load-size", type=int, default=160, help="side of the stored images")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=4, help="steps per timed epoch")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--augment", default="standard")
    p.add_argument("--val", type=int, default=947, help="validation images (Imagenette's 10%%)")
    p.add_argument("--epoch-images", type=int, default=8522)
    a = p.parse_args()

    bundle = synthetic_bundle(a.batch * a.steps, a.val, a.load_size, 10)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            model=a.model, data="synthetic", out=str(Path(tmp) / "run"), epochs=100,
            batch_size=a.batch, image_size=a.size, augment=a.augment, device="cpu",
            precision=a.precision, channels_last=a.channels_last, threads=a.threads,
        )  # fmt: skip
        trainer = Trainer(cfg, bundle, progress=False)
        threads = trainer.threads.apply()
        x = _train_transform(bundle.train.images[: a.batch], trainer.aug, trainer.aug_gen)
        if a.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = bundle.train.labels[: a.batch]
        bare_steps(trainer, x, y, 1)  # warm-up of both paths
        trainer.train_one_epoch()
        images = a.batch * a.steps
        bare, full, bare_cpu, full_cpu = [], [], [], []
        for _ in range(a.rounds):
            wall, cpu = bare_steps(trainer, x, y, a.steps)
            bare.append(images / wall)
            bare_cpu.append(images / cpu)
            wall, cpu = trainer_epoch(trainer)
            full.append(images / wall)
            full_cpu.append(images / cpu)
        aug = []
        for _ in range(a.rounds):
            t = time.perf_counter()
            _train_transform(bundle.train.images[: a.batch], trainer.aug, trainer.aug_gen)
            aug.append(time.perf_counter() - t)
        t = time.perf_counter()
        trainer.validate(trainer.model)
        val_s = time.perf_counter() - t
        info = trainer.checkpoint_info({"epoch": 1}, "model")
        t = time.perf_counter()
        save_checkpoint(trainer.run_dir / "last.safetensors", trainer.model, info)
        save_checkpoint(trainer.run_dir / "best.safetensors", trainer.model, info)
        trainer.save_state()
        write_s = time.perf_counter() - t

    bare_ips, full_ips = statistics.median(bare), statistics.median(full)
    steps = a.epoch_images // a.batch
    train_s = steps * a.batch / full_ips
    aug_s = steps * statistics.median(aug)
    layout = "channels-last" if a.channels_last else "NCHW"
    print(f"{a.model} {a.size}px (stored {a.load_size}px) batch {a.batch}, {a.precision}, "
          f"{layout}, augment {a.augment}, {threads} threads, load {os.getloadavg()[0]:.2f}")  # fmt: skip
    rows = lambda v: ", ".join(f"{r:.1f}" for r in v)  # noqa: E731
    print(f"bare step images/s (median of {a.rounds}): {bare_ips:.1f}  [{rows(bare)}]")
    print(f"trainer images/s   (median of {a.rounds}): {full_ips:.1f}  [{rows(full)}]")
    print(f"trainer / bare: {full_ips / bare_ips:.3f} by wall time; by CPU time "
          f"{statistics.median(full_cpu) / statistics.median(bare_cpu):.3f} "
          f"(images per CPU-second: bare {statistics.median(bare_cpu):.1f}, "
          f"trainer {statistics.median(full_cpu):.1f})")  # fmt: skip
    print(f"one epoch of {a.epoch_images} images: train {train_s:.0f} s, of which augmentation "
          f"{aug_s:.1f} s ({100 * aug_s / train_s:.1f}%); validation of {a.val} images "
          f"{val_s:.1f} s ({100 * val_s / train_s:.1f}%); checkpoint + state writes "
          f"{write_s:.2f} s ({100 * write_s / train_s:.2f}%)")  # fmt: skip


if __name__ == "__main__":
    main()
