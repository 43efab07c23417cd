"""Prediction on image files with a cnnzoo checkpoint: its sidecar says how to preprocess."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import CnnzooError
from .checkpoint import load_checkpoint
from .evaluate import Preprocess, check_flip_tta, forward


@dataclass
class Prediction:
    file: str
    top: list[tuple[str, int, float]]  # (class name, class index, probability), best first

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "predictions": [{"class": c, "index": i, "prob": p} for c, i, p in self.top],
        }


def collect_images(paths: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Files named, plus image files found (recursively, sorted) in folders named; and the
    (path, reason) of what does not exist or holds no image."""
    from ..data import IMAGE_EXTENSIONS

    files: list[str] = []
    errors: list[tuple[str, str]] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                str(Path(root) / name)
                for root, _, names in os.walk(p)
                for name in names
                if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
            )
            if not found:
                errors.append((str(p), "folder holds no image files"))
            files += found
        elif p.exists():  # a file, or a pipe / device that load_image names and skips
            files.append(str(p))
        else:
            errors.append((str(p), "no such file or folder"))
    return files, errors


class Predictor:
    """A model in eval mode with its sidecar's classes and preprocessing; `tta` averages each
    image's logits with its mirror's."""

    def __init__(
        self, model: nn.Module, meta: dict, device: str | torch.device = "cpu", tta: bool = False
    ) -> None:
        if tta:
            check_flip_tta(meta)
        self.tta = tta
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.meta = meta
        self.classes: list[str] = list(meta["classes"])
        self.preprocess = Preprocess.from_meta(meta)
        self.in_chans = int(meta.get("in_chans", 3))

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "cpu", tta: bool = False
    ) -> Predictor:
        model, meta = load_checkpoint(path)
        return cls(model, meta, device, tta)

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        if self.in_chans == 1 and image.shape[0] == 3:  # a grey model: average the channels
            image = image.float().mean(0, keepdim=True).round().to(torch.uint8)
        return self.preprocess(image[None].to(self.device))[0]

    def inputs(self, images: list[torch.Tensor]) -> torch.Tensor:
        """The model's input batch for uint8 [C, H, W] images of any sizes."""
        return torch.stack([self.prepare(im) for im in images])

    @torch.no_grad()
    def probabilities(self, images: list[torch.Tensor]) -> torch.Tensor:
        """Class probabilities [N, classes] for uint8 [C, H, W] images of any sizes."""
        x = self.inputs(images)
        return torch.softmax(forward(self.model, x, self.tta).float(), dim=1).cpu()

    def top(self, probs: torch.Tensor, k: int) -> list[list[tuple[str, int, float]]]:
        k = max(1, min(k, len(self.classes)))
        p, idx = probs.topk(k, dim=1)
        return [
            [(self.classes[int(i)], int(i), float(q)) for q, i in zip(pr, ir, strict=True)]
            for pr, ir in zip(p, idx, strict=True)
        ]

    def predict_files(
        self, files: list[str], batch_size: int = 32, topk: int = 5, on_image=None
    ) -> tuple[list[Prediction], list[tuple[str, str]]]:
        """Predictions for readable files (in order) and (file, reason) for unreadable ones.
        `on_image(file, uint8 image, prediction)` is called for each, e.g. to draw it."""
        from ..data.images import MAX_ASPECT, load_image, shown

        results: list[Prediction] = []
        errors: list[tuple[str, str]] = []
        for start in range(0, len(files), batch_size):
            batch_files, images = [], []
            for f in files[start : start + batch_size]:
                try:  # the centre crop keeps at most a square: no need to load more
                    images.append(load_image(f, max_aspect=MAX_ASPECT))
                    batch_files.append(f)
                except CnnzooError as e:
                    errors.append((f, str(e)))
                except (MemoryError, RecursionError) as e:  # one file never costs the others
                    errors.append((f, f"cannot read image {shown(f)}: {type(e).__name__}"))
            if not images:
                continue
            tops = self.top(self.probabilities(images), topk)
            for f, im, t in zip(batch_files, images, tops, strict=True):
                pred = Prediction(f, t)
                results.append(pred)
                if on_image is not None:
                    on_image(f, im, pred)
        return results, errors


def draw_prediction(
    image: torch.Tensor, pred: Prediction, path: str | Path, true: str | None = None
) -> None:
    """Save `image` (uint8 [C, H, W]) with its top class and probability written on it, and
    the true class when known (green when right, red when wrong). Small images are enlarged
    by a whole factor without blur; the text follows the picture's size."""
    from .annotate import draw_lines, enlarge, label_lines, save, to_pil

    name, _, prob = pred.top[0]
    save(draw_lines(enlarge(to_pil(image)), label_lines(name, prob, true)), path)
