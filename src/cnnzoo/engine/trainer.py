"""The training loop. `Trainer` owns all of a run's state in one place: model, optimiser,
schedule position (epoch, step), EMA, grad scaler, both RNG generators, best metric and history.
`state_tensors()` / `load_state()` round-trip all of it, so a resumed run is bit-identical to
one that never stopped (the schedule is a pure function of the step; data order and
augmentation come only from the trainer's generators).

Data are whole uint8 tensors on the device; each epoch draws one permutation, slices batches
from it and augments each batch in one call. `train_model` is what the forward pass uses (the
model itself, or its torch.compile wrapper; a DDP wrapper would go there too), while `model`
is always the raw module whose state dict is saved.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.types import DataBundle
from ..errors import CnnzooError
from . import checkpoint as ck
from . import checks
from .config import (
    TrainConfig,
    apply_resume_changes,
    changed_fields,
    resolve_config,
    validate_config,
)
from .early_stop import patience_reason
from .ema import ModelEma
from .evaluate import Preprocess, autocast, compute_logits, score
from .imbalance import balanced_order, inverse_frequency_weights, weighted_soft_cross_entropy
from .mix import mix_batch, smooth_one_hot, soft_cross_entropy
from .optim import build_optimizer, freeze_backbone, head_prefix, lr_factor, set_lr
from .precision import autocast_dtype, check_precision, choose_precision
from .records import epoch_line, write_metrics
from .threads import ThreadPolicy

log = logging.getLogger("cnnzoo")

STATE_FILE = "state.safetensors"
# a loss at or above this share of ln(classes), a quarter into the run, is worth a warning
CHANCE_LOSS, CHANCE_CHECK = 0.97, 0.25


@dataclass
class RunResult:
    run_dir: Path
    epochs_done: int
    best_epoch: int
    best_val_acc: float
    last_metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: str | None = None  # why --patience ended the run before cfg.epochs

    @property
    def best_checkpoint(self) -> Path:
        return self.run_dir / "best.safetensors"

    @property
    def last_checkpoint(self) -> Path:
        return self.run_dir / "last.safetensors"


def resolve_device(name: str) -> torch.device:
    """auto (the first CUDA GPU, else the CPU), cpu, cuda or cuda:N, checked to exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise CnnzooError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise CnnzooError(f"--device {name} asked for, but no CUDA GPU is available")
        if dev.index is not None and dev.index >= count:
            raise CnnzooError(f"--device {name}: this machine has {count} GPU(s), cuda:0..")
    return dev


def default_run_dir(cfg: TrainConfig) -> Path:
    data = Path(cfg.data).name or "data"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.model}-{data}-{stamp}"


def claim_run_dir(out: str | None, cfg: TrainConfig) -> tuple[Path, bool]:
    """The run folder, created now (before any data loads) so that no other run takes it:
    --out as given (refused when it holds a run), else runs/MODEL-DATA-TIME with -2, -3...
    when two runs start in the same second. Returns (folder, whether it was created here)."""
    if out is not None:
        run_dir = Path(out)
        if run_dir.exists() and not run_dir.is_dir():
            raise CnnzooError(f"--out {run_dir} is a file; choose a folder")
        if (run_dir / STATE_FILE).exists():
            raise CnnzooError(
                f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                "or choose another --out"
            )
        created = not run_dir.exists()
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir, created
    base = default_run_dir(cfg)
    base.parent.mkdir(parents=True, exist_ok=True)
    for i in range(1, 1000):
        run_dir = base if i == 1 else base.with_name(f"{base.name}-{i}")
        try:
            run_dir.mkdir()
            return run_dir, True
        except FileExistsError:
            continue
    raise CnnzooError(f"could not create a run folder next to {base}; pass --out")


def augment_cfg(cfg: TrainConfig, mean, std):
    """The AugmentCfg for a preset: none | shift | light | standard | strong."""
    from ..data.transforms import default_augment

    base = default_augment(cfg.image_size, tuple(mean), tuple(std), hflip=bool(cfg.hflip))
    pad = max(1, cfg.image_size // 8) if cfg.crop_pad is None else cfg.crop_pad
    presets = {  # flips as cfg.hflip says (resolve_config: off for none and shift)
        "none": dict(crop="none"),
        "shift": dict(crop="pad-crop", pad=pad),
        "light": dict(crop="pad-crop", pad=pad),
        "standard": dict(crop="random-resized", scale=(cfg.crop_scale, 1.0)),
        "strong": dict(
            crop="random-resized",
            scale=(cfg.crop_scale, 1.0),
            auto_augment="trivial",
            random_erasing=0.25,
        ),
    }
    return dataclasses.replace(base, **presets[cfg.augment])


class Trainer:
    """One training run. `Trainer(cfg).fit()` trains; `Trainer.resume(run_dir).fit()` goes on."""

    def __init__(
        self,
        cfg: TrainConfig,
        bundle: DataBundle | None = None,
        *,
        progress: bool = True,
        _state: tuple[dict, dict] | None = None,
        _run_dir: Path | None = None,
    ) -> None:
        from ..registry import get_entry

        # cheap checks first: a typo should not wait for the data to load
        self.progress = progress
        validate_config(cfg)
        from ..data.load import canonical_source

        # paths absolute, so that eval and --resume work from any folder
        data_dir = str(Path(cfg.data_dir).resolve()) if cfg.data_dir else None
        cfg = dataclasses.replace(cfg, data=canonical_source(cfg.data), data_dir=data_dir)
        get_entry(cfg.model)
        # a resumed run takes its weights from the state: the original file may be gone
        load_weights = cfg.weights if _state is None else None
        if load_weights is not None:
            if Path(load_weights).is_dir():  # a cnnzoo run folder: its best checkpoint
                load_weights = str(ck.resolve_checkpoint(load_weights))
                cfg = dataclasses.replace(cfg, weights=load_weights)
            if not Path(load_weights).is_file():
                raise CnnzooError(f"weights file not found: {cfg.weights}")
        self.device = resolve_device(cfg.device)
        if _run_dir is not None:
            self.run_dir, created = Path(_run_dir), False
        else:
            self.run_dir, created = claim_run_dir(cfg.out, cfg)
        try:
            self._build(cfg, bundle, _state, load_weights)
        except BaseException:
            if created and not any(self.run_dir.iterdir()):
                self.run_dir.rmdir()  # nothing was written: leave no empty folder behind
            raise

    def _build(
        self, cfg: TrainConfig, bundle: DataBundle | None, _state, load_weights: str | None
    ) -> None:
        progress = self.progress
        if bundle is None:
            from ..data import load_data

            bundle = load_data(
                cfg.data,
                data_dir=cfg.data_dir,
                image_size=cfg.load_size,
                val_split=cfg.val_split,
                seed=cfg.seed,
                download=cfg.download,
                progress=progress,
                cache=cfg.cache,
                cache_dir=cfg.cache_dir,
                ram_share=cfg.cache_ram,
            )
        if len(bundle.train) == 0:
            raise CnnzooError(f"{cfg.data}: no training images")
        self.bundle = bundle
        self.cfg = cfg = resolve_config(cfg, bundle.image_size)
        self.classes = list(bundle.classes)
        checks.before_training(cfg, bundle, self.run_dir)

        # model: seeded so that the same config gives the same initial weights
        from ..registry import create_model

        torch.manual_seed(cfg.seed)
        in_chans = int(bundle.train.images.shape[1])
        self.model: nn.Module = create_model(
            cfg.model,
            num_classes=len(self.classes),
            in_chans=in_chans,
            weights=load_weights,
            **cfg.model_opts,
        )
        # pretrained weights keep the normalisation they were trained with: a cnnzoo
        # checkpoint's own, else the model's reference one (ImageNet's, mostly)
        self.mean, self.std = tuple(bundle.mean), tuple(bundle.std)
        if _state is not None and "mean" in _state[1]:
            self.mean, self.std = tuple(_state[1]["mean"]), tuple(_state[1]["std"])
        elif cfg.stats:  # asked for: the data's own, measured on its training images
            from ..data.stats import channel_stats

            self.mean, self.std = channel_stats(bundle.train.images)
        elif cfg.weights is not None and in_chans == 3:
            facts = ck.checkpoint_facts(cfg.weights)
            self.mean = tuple(facts.get("mean") or self.model.cfg.mean)
            self.std = tuple(facts.get("std") or self.model.cfg.std)
        self.crop_pct = 0.875 if cfg.augment in ("standard", "strong") else 1.0
        self.preprocess = Preprocess(cfg.image_size, self.mean, self.std, self.crop_pct)
        self.aug = augment_cfg(cfg, self.mean, self.std)
        if cfg.freeze == "backbone":
            freeze_backbone(self.model)
        self.model.to(self.device)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        try:
            self.optimizer = build_optimizer(  # (the lr is set at every step)
                self.model, cfg.opt, 1e-3 if cfg.lr == "auto" else cfg.lr, cfg.wd, cfg.momentum,
                cfg.backbone_lr_scale,
            )  # fmt: skip
        except ValueError as e:
            raise CnnzooError(str(e)) from None
        self.ema = ModelEma(self.model, cfg.ema) if cfg.ema > 0 else None
        self.threads = ThreadPolicy(cfg.threads, self.device, tiny=cfg.recipe == "digits")
        if cfg.precision is None:  # recorded, so that a resumed run keeps the choice
            cfg.precision = self._choose_precision() if cfg.amp else "fp32"
        check_precision(cfg.precision, self.device)
        self.amp_dtype = autocast_dtype(cfg.precision)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

        # generators: data order on the CPU, augmentation and mixing where the batch lives
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.aug_gen = torch.Generator(self.device).manual_seed(cfg.seed + 1)
        self.epoch = 0
        self.step = 0
        self.best_val_acc = -math.inf
        self.best_epoch = 0
        self.history: list[dict[str, Any]] = []
        self._chance_warned = False

        self.train_images = bundle.train.images.to(self.device)
        self.train_labels = bundle.train.labels.to(self.device)
        self.steps_per_epoch = max(1, len(bundle.train) // cfg.batch_size)
        self.class_weights = None
        if cfg.class_weights == "auto":
            self.class_weights = inverse_frequency_weights(bundle.train.labels, len(self.classes))
            self.class_weights = self.class_weights.to(self.device)
        head = head_prefix(self.model)  # --freeze-epochs: what waits while the head learns
        self.backbone_params = [
            p
            for n, p in self.model.named_parameters()
            if p.requires_grad and not n.startswith(head)
        ]
        self.lr_find: dict[str, Any] | None = None
        if _state is not None:
            try:
                self.load_state(*_state)
            except (KeyError, IndexError, RuntimeError, TypeError, ValueError) as e:
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
                raise CnnzooError(
                    f"{self.run_dir / STATE_FILE} does not fit this run ({first}); "
                    "the file is damaged or belongs to another run"
                ) from None
        self.train_model: nn.Module = self.model
        if cfg.compile:
            self.train_model = torch.compile(self.model)
        if self.cfg.lr == "auto":
            from .lr_find import use_lr_find

            use_lr_find(self)

    def _choose_precision(self) -> str:
        """--amp: bf16 where it is measured (or known, on CUDA) to pay, else fp32; said."""
        cfg, n = self.cfg, self.bundle.train.images.shape[1]
        previous = torch.get_num_threads()
        self.threads.apply()  # timed with the threads the run will use
        x = torch.randn(cfg.batch_size, n, cfg.image_size, cfg.image_size, device=self.device)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        precision, why = choose_precision(self.model, x, len(self.classes))
        torch.set_num_threads(previous)
        log.info("--amp: %s autocast (%s)", precision, why)
        return precision

    # ------------------------------------------------------------------ state
    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        bundle: DataBundle | None = None,
        *,
        changes: dict[str, Any] | None = None,
        progress: bool = True,
    ) -> Trainer:
        """The trainer of `run_dir` as its last completed epoch left it. `changes` (TrainConfig
        field -> value) may extend the run (`epochs`; its schedule then changes from here on),
        move it (`device`) or say where a named dataset is now (`data_dir`); any other change
        is refused (`config.apply_resume_changes`), from Python as from the command line."""
        run_dir = Path(run_dir)
        path = run_dir / STATE_FILE
        if not path.is_file():
            raise CnnzooError(f"nothing to resume: {path} not found")
        tensors, meta = ck.read_tensors(path)
        checks.check_state(meta, path)
        saved = TrainConfig.from_dict(meta["config"])
        cfg = apply_resume_changes(saved, changes or {}, meta["epoch"])
        return cls(cfg, bundle, progress=progress, _state=(tensors, meta), _run_dir=run_dir)

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        opt_t, opt_meta = ck.optimizer_tensors(self.optimizer)
        tensors = {
            **ck.prefixed("model", self.model.state_dict()),
            **ck.prefixed("optim", opt_t),
            "rng/data": self.gen.get_state(),
            "rng/aug": self.aug_gen.get_state(),
            "rng/torch": torch.get_rng_state(),
        }
        if self.ema is not None:
            tensors.update(ck.prefixed("ema", self.ema.state_dict()))
        if self.device.type == "cuda":
            tensors["rng/cuda"] = torch.cuda.get_rng_state(self.device)
        meta = {
            "config": self.cfg.to_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "best_val_acc": self.best_val_acc if math.isfinite(self.best_val_acc) else None,
            "best_epoch": self.best_epoch,
            "history": self.history,
            "mean": list(self.mean),
            "std": list(self.std),
            "optimizer": opt_meta,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
        }
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.model.load_state_dict(ck.unprefixed("model", tensors))
        ck.load_optimizer(self.optimizer, ck.unprefixed("optim", tensors), meta["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(ck.unprefixed("ema", tensors))
        self.gen.set_state(tensors["rng/data"])
        aug_state = tensors["rng/aug"]
        if aug_state.numel() == self.aug_gen.get_state().numel():  # same device kind
            self.aug_gen.set_state(aug_state)
        torch.set_rng_state(tensors["rng/torch"])
        if self.device.type == "cuda" and "rng/cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng/cuda"], self.device)
        if meta.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(meta["scaler"])
        self.epoch, self.step = int(meta["epoch"]), int(meta["step"])
        best = meta.get("best_val_acc")
        self.best_val_acc = -math.inf if best is None else float(best)
        self.best_epoch = int(meta.get("best_epoch", 0))
        self.history = list(meta.get("history", []))

    def save_state(self) -> None:
        ck.save_tensors(self.run_dir / STATE_FILE, *self.state_tensors())

    def checkpoint_info(self, row: dict[str, Any], weights_kind: str) -> dict[str, Any]:
        """The sidecar: everything predict and eval need, plus where the weights came from."""
        from .. import __version__

        cfg = self.cfg
        return {
            "model": cfg.model,
            "model_overrides": cfg.model_opts,
            "num_classes": len(self.classes),
            "in_chans": int(self.train_images.shape[1]),
            "classes": self.classes,
            "input_size": cfg.image_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "crop_pct": self.crop_pct,
            "interpolation": self.preprocess.interpolation,
            "data": {
                "source": cfg.data,
                "name": self.bundle.name,
                "load_size": self.bundle.image_size,
                "val_split": cfg.val_split,
                "seed": cfg.seed,
                "val_name": self.bundle.val_name,
            },
            "epoch": row["epoch"],
            "weights": weights_kind,
            "metrics": row,
            "recipe": cfg.to_dict(),
            "lr_find": self.lr_find,
            "cnnzoo_version": __version__,
            "saved": datetime.now().isoformat(timespec="seconds"),
        }

    # ------------------------------------------------------------------ training
    def backbone_frozen(self) -> bool:
        cfg = self.cfg
        return (
            cfg.freeze == "backbone" or cfg.backbone_lr_scale == 0 or self.epoch < cfg.freeze_epochs
        )

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The training loss: against soft `targets` (mixing) or the labels, smoothed and
        class-weighted as the config says."""
        smoothing = self.cfg.label_smoothing
        if targets is None:
            if not smoothing and self.class_weights is None:
                return F.cross_entropy(logits.float(), labels)
            targets = smooth_one_hot(labels, len(self.classes), smoothing or 0.0)
        if self.class_weights is not None:
            return weighted_soft_cross_entropy(logits, targets, self.class_weights)
        return soft_cross_entropy(logits, targets)

    def _set_train_mode(self) -> None:
        self.model.train()
        if self.cfg.freeze_epochs:  # the head alone first, then everything
            for p in self.backbone_params:
                p.requires_grad_(self.epoch >= self.cfg.freeze_epochs)
            if self.epoch == self.cfg.freeze_epochs:
                log.info("epoch %d: the backbone joins the training", self.epoch + 1)
        if self.backbone_frozen():
            # a frozen backbone keeps its BN statistics too; only its norm layers go to eval
            # mode, so the head's dropout (EfficientNet, MobileNet, Inception) still works
            head = head_prefix(self.model)
            for name, m in self.model.named_modules():
                if isinstance(m, nn.modules.batchnorm._NormBase) and not (name + ".").startswith(
                    head
                ):
                    m.eval()

    def _lr_factor(self) -> float:
        total = self.steps_per_epoch * self.cfg.epochs
        warmup = int(round(self.cfg.warmup_epochs * self.steps_per_epoch))
        return lr_factor(self.step, total, warmup, self.cfg.sched, self.cfg.min_lr_ratio)

    def train_one_epoch(self) -> dict[str, float]:
        cfg, dev = self.cfg, self.device
        self._set_train_mode()
        n = len(self.train_labels)
        if cfg.sampler == "balanced":
            perm = balanced_order(self.train_labels, len(self.classes), self.gen)
        else:
            perm = torch.randperm(n, generator=self.gen)
        bs = min(cfg.batch_size, n)
        num_classes = len(self.classes)
        mixing = cfg.mixup > 0 or cfg.cutmix > 0
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        seen = 0
        lr = 0.0
        params = [p for p in self.model.parameters() if p.requires_grad]
        bar = _progress_bar(
            self.steps_per_epoch, f"epoch {self.epoch + 1}/{cfg.epochs}", self.progress
        )
        start = time.perf_counter()
        for b in range(self.steps_per_epoch):
            idx = perm[b * bs : (b + 1) * bs].to(dev, non_blocking=True)
            labels = self.train_labels[idx]
            x = _train_transform(self.train_images[idx], self.aug, self.aug_gen)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            targets = None
            hit_labels = labels
            if mixing:
                x, targets, hit_labels = mix_batch(
                    x,
                    labels,
                    num_classes,
                    cfg.mixup,
                    cfg.cutmix,
                    cfg.label_smoothing,
                    self.aug_gen,
                )
            lr = set_lr(self.optimizer, cfg.lr, self._lr_factor())
            with autocast(dev, self.amp_dtype):
                logits = self.train_model(x)
            loss = self.loss(logits, labels, targets)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.clip_grad > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.step += 1
            if self.ema is not None:
                self.ema.update(self.model, self.step)
            loss_sum += loss.detach() * labels.shape[0]
            correct += (logits.detach().argmax(1) == hit_labels).sum()
            seen += labels.shape[0]
            if bar is not None and (b % 5 == 0 or b == self.steps_per_epoch - 1):
                elapsed = time.perf_counter() - start
                bar.set_postfix(
                    loss=f"{float(loss_sum) / seen:.4f}",
                    acc=f"{100.0 * float(correct) / seen:.1f}%",
                    img_s=f"{seen / max(elapsed, 1e-9):.0f}",
                    refresh=False,
                )
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - start
        train_loss = float(loss_sum) / seen
        if not math.isfinite(train_loss):
            raise CnnzooError(
                f"the loss became {train_loss} in epoch {self.epoch + 1}; lower --lr, "
                "or add --clip-grad 1.0"
            )
        return {
            "lr": lr,
            "train_loss": train_loss,
            "train_acc": 100.0 * float(correct) / seen,
            "images_per_s": seen / max(elapsed, 1e-9),
            "epoch_time": elapsed,
        }

    def validate(self, model: nn.Module) -> dict[str, float]:
        val = self.bundle.val
        if len(val) == 0:
            return {}
        logits = compute_logits(
            model,
            val.images,
            self.preprocess,
            max(256, 2 * self.cfg.batch_size),
            self.amp_dtype,
            self.cfg.channels_last,
        )
        s = score(logits, val.labels)
        return {"loss": s.loss, "acc": s.top1, "top5": s.top5}

    def fit(self, stop_after: int | None = None) -> RunResult:
        """Train until `cfg.epochs` (or `stop_after` more epochs, as if stopped there)."""
        cfg = self.cfg
        show_log_lines()
        ck.write_json(self.run_dir / "config.json", cfg.to_dict())
        if self.epoch == 0:
            log.info(
                "training %s on %s: %d train / %d %s images, %d classes, %dpx, recipe %s, "
                "%d epochs, batch %d, %s lr %g wd %g, %s, on %s -> %s",
                cfg.model,
                self.bundle.name,
                len(self.bundle.train),
                len(self.bundle.val),
                self.bundle.val_name,
                len(self.classes),
                cfg.image_size,
                cfg.recipe,
                cfg.epochs,
                cfg.batch_size,
                cfg.opt,
                cfg.lr,
                cfg.wd,
                cfg.precision,
                self.device,
                self.run_dir,
            )
        else:
            log.info("resuming %s at epoch %d/%d", self.run_dir, self.epoch, cfg.epochs)
        threads_before = torch.get_num_threads()
        try:
            stopped = self._epochs(stop_after)
        finally:  # a run from Python leaves torch's thread count as it found it
            torch.set_num_threads(threads_before)
        if (self.epoch >= cfg.epochs or stopped) and self.history:
            from .plots import plot_curves, run_title

            plot_curves(self.history, self.run_dir / "curves.png", run_title(self))
        last = self.history[-1] if self.history else {}
        return RunResult(
            self.run_dir,
            self.epoch,
            self.best_epoch,
            self.best_val_acc,
            last,
            list(self.history),
            stopped,
        )

    def _epochs(self, stop_after: int | None) -> str | None:
        """Train epoch after epoch; returns why --patience ended the run early, else None."""
        cfg = self.cfg
        done_now = 0
        while self.epoch < cfg.epochs and (stop_after is None or done_now < stop_after):
            self.threads.apply()
            row: dict[str, Any] = {"epoch": self.epoch + 1, "step": 0}
            row.update(self.train_one_epoch())
            self.epoch += 1
            done_now += 1
            row["step"] = self.step
            kind, weights = "model", self.model
            v = self.validate(self.model)
            if v:
                row.update(val_loss=v["loss"], val_acc=v["acc"], val_top5=v["top5"])
            if self.ema is not None:
                ve = self.validate(self.ema.module)
                if ve:
                    row.update(
                        ema_val_loss=ve["loss"], ema_val_acc=ve["acc"], ema_val_top5=ve["top5"]
                    )
                    if ve["acc"] >= v["acc"]:
                        kind, weights = "ema", self.ema.module
                else:
                    kind, weights = "ema", self.ema.module
            metric = max(row.get("val_acc", -math.inf), row.get("ema_val_acc", -math.inf))
            # no validation split: the last epoch is the best one
            row["is_best"] = metric > self.best_val_acc or not v
            if row["is_best"]:
                self.best_val_acc, self.best_epoch = metric, self.epoch
            row["best_val_acc"] = self.best_val_acc if math.isfinite(self.best_val_acc) else None
            self.history.append(row)
            # order matters for a kill at any point: checkpoints first, then the state that
            # would make a resumed run skip this epoch
            info = self.checkpoint_info(row, kind)
            ck.save_checkpoint(self.run_dir / "last.safetensors", weights, info)
            if row["is_best"]:
                ck.save_checkpoint(self.run_dir / "best.safetensors", weights, info)
            write_metrics(self.run_dir, self.history)
            self.save_state()
            log.info(epoch_line(row, cfg.epochs))
            self._warn_if_at_chance(row)
            stopped = patience_reason(self.history, self.best_epoch, cfg.patience)
            if stopped:
                log.info("stopped early: %s", stopped)
                return stopped
        return None

    def _warn_if_at_chance(self, row: dict[str, Any]) -> None:
        """Say so, once, when a quarter of the run is done and the loss is still that of
        uniform guessing (ln of the class count): the lr, schedule or data need a look."""
        classes = len(self.classes)
        if self._chance_warned or classes < 2 or self.epoch < CHANCE_CHECK * self.cfg.epochs:
            return
        loss = row.get("val_loss", row["train_loss"])
        if loss >= CHANCE_LOSS * math.log(classes):
            self._chance_warned = True
            log.warning(
                "after %d of %d epochs the %s loss is %.3f, chance level (ln %d = %.3f): the "
                "model has learnt nothing yet; check the data and labels, or try another --lr",
                self.epoch,
                self.cfg.epochs,
                "validation" if "val_loss" in row else "training",
                loss,
                classes,
                math.log(classes),
            )


def show_log_lines() -> None:
    """Used from Python with no logging set up, print the lines the command line prints (the
    run's start, one per epoch) to stderr; once logging is set up, leave it to that."""
    if log.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)


def _train_transform(batch: torch.Tensor, aug, generator: torch.Generator) -> torch.Tensor:
    from ..data.transforms import train_transform

    return train_transform(batch, aug, generator)


def _progress_bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True, unit="batch"
    )


def train(
    cfg: TrainConfig | None = None,
    bundle: DataBundle | None = None,
    *,
    resume: str | Path | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> RunResult:
    """Train a model as `cfg` says (or go on with the run in `resume`) and return its results.

    `bundle` replaces `load_data(cfg.data, ...)` (handy for data already in memory);
    `stop_after` ends this call after that many epochs, as if stopped, to be resumed later.
    With `resume`, `cfg` holds the changes to the run (only epochs, device and data_dir may
    differ from its own settings, as with `cnnzoo train --resume`).
    """
    if resume is not None:
        changes = changed_fields(cfg) if cfg is not None else {}
        trainer = Trainer.resume(resume, bundle, changes=changes, progress=progress)
    elif cfg is None:
        raise ValueError("train() needs a TrainConfig or a run folder to resume")
    else:
        trainer = Trainer(cfg, bundle, progress=progress)
    return trainer.fit(stop_after=stop_after)
