"""Prediction with a cnnzoo checkpoint (its sidecar says how to preprocess) on image files,
Pillow images or tensors / arrays, all brought to the same uint8 RGB picture first."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnnzoo.cfg import INFERENCE_PRECISIONS
from cnnzoo.data import IMAGE_EXTENSIONS
from cnnzoo.data.images import load_image, pil_to_tensor, shown, strip_aspect
from cnnzoo.errors import CnnzooError
from cnnzoo.infer.engines import Builder, InferencePath
from cnnzoo.infer.evaluate import Preprocess, check_flip_tta, forward
from cnnzoo.infer.fast import prepare_inference
from cnnzoo.infer.load import load_checkpoint

if TYPE_CHECKING:
    import numpy as np
    import PIL.Image


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


PREFETCH = 2  # batches decoded ahead of the one the engine runs (bounded memory)
ImageInput = Union[str, os.PathLike, "PIL.Image.Image", torch.Tensor, "np.ndarray"]
_INT_TYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16)


def as_image(image: ImageInput) -> torch.Tensor:
    """uint8 [C, H, W] (C = 1 or 3) of one image given as a file path, a Pillow image, or a
    tensor / NumPy array: uint8 0..255 or float 0..1, laid out [C, H, W], [H, W, C] or [H, W]
    (a leading dimension of 1 or 3 means channels first). Files and Pillow images are converted
    exactly as for training (EXIF rotation, any mode to RGB)."""

    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, Image.Image):
        return pil_to_tensor(image)
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    if not isinstance(image, torch.Tensor):
        raise CnnzooError(
            f"cannot predict on a {type(image).__name__}: give a file path, a PIL image, "
            "a tensor or a NumPy array"
        )
    x = image.detach().cpu()
    if x.ndim == 2:
        x = x[None]
    elif x.ndim == 3 and x.shape[0] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.permute(2, 0, 1)  # [H, W, C]
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise CnnzooError(
            f"image tensor of shape {tuple(image.shape)}: expected [C, H, W] or [H, W, C] "
            "with 1 or 3 channels, or [H, W]"
        )
    if x.dtype == torch.uint8:
        return x.contiguous()
    if x.dtype == torch.bool or not (x.is_floating_point() or x.dtype in _INT_TYPES):
        raise CnnzooError(f"image tensor of dtype {x.dtype}: give uint8 (0..255) or float (0..1)")
    if x.is_floating_point():
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise CnnzooError(
                f"float image with values in [{float(x.min()):.3g}, {float(x.max()):.3g}]: "
                "give floats in 0..1 (not normalised: predict normalises itself) or uint8"
            )
        x = x.double() * 255
    elif x.numel() and (x.min() < 0 or x.max() > 255):
        raise CnnzooError("integer image with values outside 0..255: give uint8 or float 0..1")
    return x.round().to(torch.uint8).contiguous()


class Predictor:
    """A model in eval mode with its sidecar's classes and preprocessing; `tta` averages each
    image's logits with its mirror's. `backend` and `precision` pick the engine
    (infer/engines.py): "auto" (default) times the exact model, its fast forms and the other
    engines' candidates in `engines` (name -> builder) on the first batch and keeps the
    fastest; precision "fp32" runs the exact model; `path` says which ran."""

    def __init__(
        self,
        model: nn.Module,
        meta: dict,
        device: str | torch.device = "cpu",
        tta: bool = False,
        precision: str = "auto",
        backend: str = "auto",
        engines: dict[str, Builder] | None = None,
    ) -> None:
        if tta:
            check_flip_tta(meta)
        if precision not in INFERENCE_PRECISIONS:
            raise CnnzooError(
                f"unknown precision {precision!r}; choose from {', '.join(INFERENCE_PRECISIONS)}"
            )
        self.tta = tta
        self.precision = precision
        self.backend = backend
        self.engines = engines
        self.path: InferencePath | None = None  # chosen on the first batch
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.meta = meta
        self.classes: list[str] = list(meta["classes"])
        self.preprocess = Preprocess.from_meta(meta)
        self.max_aspect = strip_aspect(self.preprocess.input_size)  # the long-strip cut
        self.in_chans = int(meta.get("in_chans", 3))

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        tta: bool = False,
        precision: str = "auto",
    ) -> Predictor:
        model, meta = load_checkpoint(path)
        return cls(model, meta, device, tta, precision)

    def prepare(self, image: ImageInput) -> torch.Tensor:
        image = as_image(image)
        if self.in_chans == 1 and image.shape[0] == 3:  # a grey model: average the channels
            image = image.float().mean(0, keepdim=True).round().to(torch.uint8)
        elif self.in_chans == 3 and image.shape[0] == 1:  # grey picture, colour model
            image = image.expand(3, -1, -1)
        return self.preprocess(image[None].to(self.device))[0]

    def inputs(self, images: list[ImageInput]) -> torch.Tensor:
        """The model's input batch for images of any sizes (paths, PIL images, tensors or
        arrays: see `as_image`)."""
        return torch.stack([self.prepare(im) for im in images])

    @torch.no_grad()
    def probabilities(self, images: list[ImageInput]) -> torch.Tensor:
        """Class probabilities [N, classes] for images of any sizes, each a file path, a PIL
        image or a tensor / array (see `as_image`)."""
        return self.probabilities_of(self.inputs(images))

    @torch.no_grad()
    def probabilities_of(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities for a batch already preprocessed (`inputs`); the engine is
        chosen on the first batch."""
        if self.path is None:
            self.path = prepare_inference(
                self.model, x, self.precision, backend=self.backend, engines=self.engines
            )
        return torch.softmax(forward(self.path.model, x, self.tta).float(), dim=1).cpu()

    def top(self, probs: torch.Tensor, k: int) -> list[list[tuple[str, int, float]]]:
        k = max(1, min(k, len(self.classes)))
        p, idx = probs.topk(k, dim=1)
        return [
            [(self.classes[int(i)], int(i), float(q)) for q, i in zip(pr, ir, strict=True)]
            for pr, ir in zip(p, idx, strict=True)
        ]

    def predict(
        self, images: ImageInput | list[ImageInput], topk: int = 5
    ) -> list[list[tuple[str, int, float]]]:
        """Top-k (class name, index, probability) per image (a single image or a list of
        them: paths, PIL images, tensors or arrays, preprocessed alike)."""
        if not isinstance(images, list):
            images = [images]
        return self.top(self.probabilities(images), topk)

    def predict_files(
        self, files: list[str], batch_size: int = 32, topk: int = 5, on_image=None
    ) -> tuple[list[Prediction], list[tuple[str, str]]]:
        """Predictions for readable files (in order) and (file, reason) for unreadable ones.
        `on_image(file, uint8 image, prediction)` is called for each, e.g. to draw it."""

        results: list[Prediction] = []
        errors: list[tuple[str, str]] = []
        batches = [files[s : s + batch_size] for s in range(0, len(files), batch_size)]
        # decoding and resizing run in a pool of threads (Pillow and torch release the GIL)
        # while the engine runs the batch before; at most PREFETCH batches wait, decoded
        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            pending = deque([pool.submit(self._read, f) for f in b] for b in batches[:PREFETCH])
            queued = len(pending)
            while pending:
                futures = pending.popleft()
                if queued < len(batches):
                    pending.append([pool.submit(self._read, f) for f in batches[queued]])
                    queued += 1
                read = [fu.result() for fu in futures]
                errors += [(f, reason) for f, _, _, reason in read if reason is not None]
                ok = [(f, im, x) for f, im, x, reason in read if reason is None]
                if not ok:
                    continue
                probs = self.probabilities_of(torch.stack([x for _, _, x in ok]))
                for (f, im, _), t in zip(ok, self.top(probs, topk), strict=True):
                    pred = Prediction(f, t)
                    results.append(pred)
                    if on_image is not None:
                        on_image(f, im, pred)
        return results, errors

    def _read(self, f: str) -> tuple[str, torch.Tensor | None, torch.Tensor | None, str | None]:
        """(file, uint8 image, model input, None), or (file, None, None, why unreadable)."""
        try:  # the centre crop reaches no further than its aspect: load no more
            image = load_image(f, max_aspect=self.max_aspect)
            return f, image, self.prepare(image), None
        except CnnzooError as e:
            return f, None, None, str(e)
        except (MemoryError, RecursionError) as e:  # one file never costs the others
            return f, None, None, f"cannot read image {shown(f)}: {type(e).__name__}"
