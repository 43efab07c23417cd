"""Running a classifier over uint8 images and scoring it: loss, top-1/top-5, per class, confusion."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.cfg import ModelCfg, as_size
from cnnzoo.data import load_data
from cnnzoo.data.sources import canonical_source
from cnnzoo.data.transforms import eval_transform
from cnnzoo.errors import CnnzooError
from cnnzoo.infer.engines import Builder, InferencePath
from cnnzoo.infer.fast import prepare_inference
from cnnzoo.infer.load import load_checkpoint


@dataclass(frozen=True)
class Preprocess:
    """Eval-time preprocessing, as recorded in a checkpoint's sidecar (or, for reference
    weights, in the model's cfg: their published resize, crop and interpolation)."""

    input_size: int | tuple[int, int]  # a square's side, or (H, W)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float = 1.0
    interpolation: str = "bilinear"

    @classmethod
    def from_meta(cls, meta: dict) -> Preprocess:
        return cls(
            as_size(meta["input_size"]),
            tuple(meta["mean"]),
            tuple(meta["std"]),
            float(meta.get("crop_pct", 1.0)),
            str(meta.get("interpolation", "bilinear")),
        )

    @classmethod
    def from_cfg(cls, cfg: ModelCfg) -> Preprocess:
        """The eval transform the reference weights of a model were published with."""
        return cls(as_size(cfg.input_size), cfg.mean, cfg.std, cfg.crop_pct, cfg.interpolation)

    def __call__(self, batch_u8: torch.Tensor) -> torch.Tensor:

        return eval_transform(
            batch_u8, self.input_size, self.mean, self.std, self.crop_pct, self.interpolation
        )


def autocast(device: torch.device, dtype: torch.dtype | None):
    """bf16/fp16 autocast on `device`, or nothing when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def check_flip_tta(meta: dict) -> None:
    """Flip test-time augmentation only for models that saw mirrored images in training."""
    if not (meta.get("recipe") or {}).get("hflip", True):
        raise CnnzooError(
            "--tta averages over mirrored images, but this model was trained without "
            "horizontal flips (mirrors may change its classes); leave --tta out"
        )


def forward(model: nn.Module, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """Logits of a preprocessed batch; with `tta`, the mean over the batch and its mirror."""
    if not tta:
        return model(x)
    return (model(x) + model(x.flip(-1))) / 2


@torch.no_grad()
def compute_logits(
    model: nn.Module,
    images: torch.Tensor,
    preprocess: Preprocess,
    batch_size: int = 256,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    tta: bool = False,
) -> torch.Tensor:
    """float32 logits [N, classes] on the CPU for uint8 images [N, C, H, W] (any device);
    `tta`: averaged with the logits of the mirrored images."""
    # a model with no parameters (an onnxruntime session behind a module) takes CPU input
    device = next(model.parameters(), torch.empty(0)).device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, images.shape[0], batch_size):
        x = preprocess(images[i : i + batch_size].to(device, non_blocking=True))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp_dtype):
            out.append(forward(model, x, tta).float().cpu())
    model.train(was_training)
    if not out:
        return torch.zeros(0, 0)
    return torch.cat(out)


@dataclass
class Scores:
    n: int
    loss: float
    top1: float  # percent
    top5: float  # percent; top-k with k = min(5, classes)
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> acc %, n
    confusion: list[list[int]] = field(default_factory=list)  # [true][predicted]

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "loss": self.loss,
            "top1": self.top1,
            "top5": self.top5,
            "per_class": self.per_class,
            "confusion": self.confusion,
        }


def score(logits: torch.Tensor, labels: torch.Tensor, classes: list[str] | None = None) -> Scores:
    """Loss and accuracies of `logits` against `labels`; per-class figures when `classes`."""
    labels = labels.cpu().long()
    n = int(labels.shape[0])
    if n == 0:
        return Scores(0, float("nan"), float("nan"), float("nan"))
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hit1 = top[:, 0] == labels
    hitk = (top == labels[:, None]).any(dim=1)
    s = Scores(
        n,
        float(F.cross_entropy(logits, labels)),
        100.0 * float(hit1.float().mean()),
        100.0 * float(hitk.float().mean()),
    )
    if classes is not None:
        c = len(classes)
        conf = torch.bincount(labels * c + top[:, 0], minlength=c * c).view(c, c)
        s.confusion = conf.tolist()
        for i, name in enumerate(classes):
            total = int(conf[i].sum())
            acc = 100.0 * int(conf[i, i]) / total if total else float("nan")
            s.per_class[name] = {"acc": acc, "n": total}
    return s


def check_classes(data_classes: list[str], ckpt_classes: list[str], data: str) -> None:
    """The data must name the same classes, in the same order, as the checkpoint."""
    if list(data_classes) == list(ckpt_classes):
        return
    only_data = [c for c in data_classes if c not in ckpt_classes]
    only_ckpt = [c for c in ckpt_classes if c not in data_classes]
    if only_data or only_ckpt:
        detail = (
            f"only in data: {', '.join(only_data[:5]) or '-'}; "
            f"only in checkpoint: {', '.join(only_ckpt[:5]) or '-'}"
        )
    else:
        detail = "same names in another order"
    raise CnnzooError(
        f"classes of {data} ({len(data_classes)}) do not match the checkpoint's "
        f"({len(ckpt_classes)}): {detail}"
    )


@dataclass
class EvalSet:
    """A checkpoint's model and the images to score it on, as `prepare_evaluation` found them:
    `model` is the model as loaded (what Grad-CAM differentiates), `path` what runs the
    scoring (the fast inference form, or the exact model)."""

    model: nn.Module
    meta: dict
    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor
    data: str
    split: str  # as asked: train, val or test
    split_name: str  # what it is: val, test, held-out 10% of train, all images
    same: bool  # the data the checkpoint was trained on
    path: InferencePath
    paths: list[str] | None = None  # source file of each image, when known

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess.from_meta(self.meta)


def prepare_evaluation(
    checkpoint: str,
    data: str | None = None,
    *,
    split: str = "val",
    data_dir: str | None = None,
    device: str | torch.device = "cpu",
    val_split: float | None = None,
    seed: int | None = None,
    progress: bool = True,
    tta: bool = False,
    loaded: tuple[nn.Module, dict] | None = None,
    precision: str = "auto",
    backend: str = "auto",
    engines: dict[str, Builder] | None = None,
) -> EvalSet:
    """Load a checkpoint and the split of `data` to score it on (see `checkpoint_split`).
    `tta`: refuse, before loading any data, a model trained without flips. `loaded`: the
    (model, sidecar) to score instead of loading `checkpoint` (e.g. an exported file in another
    runtime). `backend`, `precision` and `engines` pick the engine as `Predictor` does
    (infer/engines.py; "fp32" is the exact model)."""

    if split not in ("train", "val", "test"):
        raise CnnzooError(f"--split must be train, val or test (got {split!r})")
    model, meta = loaded if loaded is not None else load_checkpoint(checkpoint, device)
    if tta:
        check_flip_tta(meta)
    part, data, split_name, same = checkpoint_split(
        meta, data, split=split, data_dir=data_dir, val_split=val_split, seed=seed,
        progress=progress,
    )  # fmt: skip
    device = next(model.parameters(), torch.empty(0)).device
    example = Preprocess.from_meta(meta)(part.images[:8]).to(device)
    path = prepare_inference(model, example, precision, backend=backend, engines=engines)
    return EvalSet(
        model, meta, part.images, part.labels, data, split, split_name, same, path, part.paths
    )


def checkpoint_split(
    meta: dict,
    data: str | None = None,
    *,
    split: str = "val",
    data_dir: str | None = None,
    val_split: float | None = None,
    seed: int | None = None,
    progress: bool = True,
):
    """The images a checkpoint is scored on: `split` of `data`. The data it was trained on (the
    default) is split the same way, so `val` holds no training image; other data is scored on
    its own val/test folder, or whole when it has none. Returns (images, data, split name,
    whether it is the training data)."""

    trained_on = meta.get("data", {})
    data = data or trained_on.get("source")
    if not data:
        raise CnnzooError("--data is needed: the checkpoint does not say what it was trained on")
    same = canonical_source(data) == canonical_source(trained_on.get("source") or "")
    recipe = meta.get("recipe") or {}
    trained_split = trained_on.get("val_split", 0.1)
    if same:
        if data_dir is None:
            data_dir = recipe.get("data_dir")
        if val_split is not None and val_split != trained_split and split == "val":
            raise CnnzooError(
                f"--val-split {val_split} differs from the training run's {trained_split}: "
                "that split would score images the model was trained on"
            )
        val_split = trained_split
    elif val_split is None:
        val_split = 0.0  # another dataset: its own val/test folder, else all of it
    bundle = load_data(
        data,
        data_dir=data_dir,
        image_size=trained_on.get("load_size"),
        val_split=val_split,
        seed=seed if seed is not None else trained_on.get("seed", 0),
        progress=progress,
    )
    check_classes(bundle.classes, meta["classes"], data)
    part, split_name = (
        (bundle.train, "train") if split == "train" else (bundle.val, bundle.val_name)
    )
    # runs from before val and test were told apart validated on test/: their val split is it
    old_val = split == "val" and same and trained_on.get("val_name") == "test"
    if bundle.test is not None and (split == "test" or old_val):
        part, split_name = bundle.test, "test"
    elif split == "test" and bundle.val_name != "test":
        raise CnnzooError(
            f"{data} has no test/ folder (its held-out images are: {bundle.val_name}); "
            "use --split val"
        )
    if split == "val" and len(part) == 0 and not same:
        part, split_name = bundle.train, "all images"
    if len(part) == 0:
        hint = "pass --split train, or --data with a val or test split"
        raise CnnzooError(f"{data} has no {split} images the run held out ({hint})")
    return part, data, split_name, same


def evaluate_checkpoint(
    checkpoint: str, data: str | None = None, *, batch_size: int = 256, **options: Any
) -> tuple[Scores, dict]:
    """Score a checkpoint on a split of `data`; `options` are `prepare_evaluation`'s (split,
    data_dir, device, val_split, seed, progress, tta, loaded, precision). Returns the scores and
    a JSON-able report (its "inference_path" says which path ran)."""
    ev = prepare_evaluation(checkpoint, data, **options)
    tta = options.get("tta", False)
    logits = compute_logits(ev.path.model, ev.images, ev.preprocess, batch_size, tta=tta)
    return score_report(checkpoint, ev, logits, tta)


def score_report(
    checkpoint: str, ev: EvalSet, logits: torch.Tensor, tta: bool
) -> tuple[Scores, dict]:
    s = score(logits, ev.labels, list(ev.meta["classes"]))
    report = {
        "checkpoint": str(checkpoint),
        "model": ev.meta["model"],
        "epoch": ev.meta.get("epoch"),
        "data": ev.data,
        "split": ev.split,
        "split_name": ev.split_name,
        "same_data_as_training": ev.same,
        "tta": "flip" if tta else None,
        "inference": ev.path.describe(),
        "inference_path": ev.path.name,
        "classes": list(ev.meta["classes"]),
        **s.to_dict(),
    }
    if len(report["classes"]) <= 5:  # top-5 of five classes or fewer is always 100%
        report["top5"] = None
    return s, report
