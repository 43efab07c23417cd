"""Proof that an exported file computes what the PyTorch model computes, on real images.

Both run on the same preprocessed batch (the engine's `Predictor`: the preprocessing that
predict, eval and serve use). The export is accepted when top-1 classes agree on at least
99.9% of the images and, in fp32, the largest logit difference stays within 1e-4 (relative
to the largest logit when that exceeds 1, as the reference parity figures are judged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnzoo.cfg import Size, size_hw
from cnnzoo.data import load_data, load_image
from cnnzoo.errors import CnnzooError
from cnnzoo.infer.predict import Predictor, collect_images

MIN_AGREEMENT = 0.999
FP32_TOLERANCE = 1e-4
DETERMINISTIC_IMAGES = 16


@dataclass
class ParityReport:
    n: int  # images compared
    source: str  # where they came from
    max_abs_diff: float  # largest |exported logit - PyTorch logit|
    max_abs_logit: float  # largest |PyTorch logit|
    agree: int  # images whose top-1 class is the same
    precision: str

    @property
    def agreement(self) -> float:
        return self.agree / self.n if self.n else float("nan")

    @property
    def tolerance(self) -> float | None:
        """Allowed max |diff| (fp32 only: fp16 is judged on agreement)."""
        if self.precision != "fp32":
            return None
        return FP32_TOLERANCE * max(1.0, self.max_abs_logit)

    @property
    def ok(self) -> bool:
        tol = self.tolerance
        return self.agreement >= MIN_AGREEMENT and (tol is None or self.max_abs_diff <= tol)

    def summary(self) -> str:
        tol = self.tolerance
        limit = f"limit {tol:.1e}" if tol is not None else "fp16: not limited"
        return (
            f"parity on {self.n} {self.source}: max |logit diff| {self.max_abs_diff:.2e} "
            f"({limit}), top-1 agreement {100 * self.agreement:.2f}% ({self.agree}/{self.n}, "
            f"need {100 * MIN_AGREEMENT:.1f}%)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "source": self.source,
            "max_abs_diff": self.max_abs_diff,
            "max_abs_logit": self.max_abs_logit,
            "tolerance": self.tolerance,
            "agreement": self.agreement,
            "precision": self.precision,
            "ok": self.ok,
        }


def deterministic_images(input_size: Size, n: int = DETERMINISTIC_IMAGES) -> list[torch.Tensor]:
    """Seeded smooth colour fields (coarse noise, upsampled) of another shape than the input
    (an int: a square; or (H, W)), so the resize and crop run as they do on photos."""
    g = torch.Generator().manual_seed(0)
    ih, iw = size_hw(input_size)
    h, w = max(8, ih * 5 // 4), max(8, iw * 3 // 2)
    coarse = torch.rand(n, 3, 6, 7, generator=g) * 255
    big = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    return list(big.clamp(0, 255).round().to(torch.uint8))


def held_out_images(meta: dict[str, Any], limit: int, progress: bool = True) -> list[torch.Tensor]:
    """Up to `limit` images of the validation split the run held out, spread over it
    (raises CnnzooError when the run's data cannot be loaded here)."""

    data = meta.get("data") or {}
    source = data.get("source")
    if not source:
        raise CnnzooError("the checkpoint does not say what it was trained on")
    bundle = load_data(
        source,
        data_dir=(meta.get("recipe") or {}).get("data_dir"),
        image_size=data.get("load_size"),
        val_split=data.get("val_split", 0.1),
        seed=data.get("seed", 0),
        progress=progress,
    )
    images = bundle.val.images
    if len(images) == 0:
        raise CnnzooError(f"{source} has no held-out images")
    idx = torch.linspace(0, len(images) - 1, min(limit, len(images))).round().long().unique()
    return list(images[idx])


def folder_images(folder: str, limit: int) -> list[torch.Tensor]:
    """Up to `limit` readable images found in `folder` (sorted, recursively)."""

    files, errors = collect_images([folder])
    if errors and not files:
        raise CnnzooError(f"--check-images {folder}: {errors[0][1]}")
    images = []
    for f in files:
        if len(images) >= limit:
            break
        try:
            images.append(load_image(f))
        except CnnzooError:
            continue  # unreadable files are no evidence either way
    if not images:
        raise CnnzooError(f"--check-images {folder}: no readable image")
    return images


def parity_images(
    meta: dict[str, Any], check_images: str | None = None, limit: int = 64, progress: bool = True
) -> tuple[list[torch.Tensor], str]:
    """The images to check an export on, and what they are: `check_images` when given, else
    the run's held-out images, else (no run data here) a deterministic input."""
    if limit < 1:
        raise CnnzooError(f"--check-limit must be at least 1 (got {limit})")
    if check_images:
        images = folder_images(check_images, limit)
        return images, f"images from {check_images}"
    reason = "the checkpoint names no training data"
    if (meta.get("data") or {}).get("source"):
        try:
            images = held_out_images(meta, limit, progress)
            return images, f"held-out images of {meta['data']['source']}"
        except (CnnzooError, OSError) as e:
            reason = f"the run's data cannot be read here: {e}"
    n = min(limit, DETERMINISTIC_IMAGES)
    return deterministic_images(meta["input_size"], n), f"deterministic inputs ({reason})"


@torch.no_grad()
def check_parity(
    reference: nn.Module,
    exported: nn.Module,
    meta: dict[str, Any],
    images: list[torch.Tensor],
    source: str,
    precision: str = "fp32",
    batch_size: int = 32,
) -> ParityReport:
    """Compare the logits of `exported` with those of `reference` (PyTorch, fp32) on
    `images` preprocessed as predict does."""

    prep = Predictor(reference, meta)
    max_diff, max_logit, agree = 0.0, 0.0, 0
    for s in range(0, len(images), batch_size):
        x = prep.inputs(images[s : s + batch_size])
        ref = reference(x).float()
        got = exported(x).float()
        if got.shape != ref.shape:
            raise CnnzooError(
                f"exported model gives logits of shape {tuple(got.shape)}, "
                f"PyTorch {tuple(ref.shape)}"
            )
        diff = (got - ref).abs().nan_to_num(nan=float("inf"))  # a NaN fails, never hides
        max_diff = max(max_diff, float(diff.max()))
        max_logit = max(max_logit, float(ref.abs().max()))
        agree += int((got.argmax(1) == ref.argmax(1)).sum())
    return ParityReport(len(images), source, max_diff, max_logit, agree, precision)
