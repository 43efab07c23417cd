"""The training loop. A run is set up once (`setup.prepare_run`: run folder, data, model, fixed
for the run) and then trained by a `Trainer`, which owns the loop's state: optimiser, EMA, grad
scaler, both RNG generators and `LoopState` (epoch, step, the position inside the epoch, running
sums, best metric, history). `state_tensors()` / `load_state()` round-trip all of it, so a run
resumed from any saved step is bit-identical to one that never stopped (the schedule is a pure
function of the step; data order and augmentation come only from the trainer's generators, and
the epoch's permutation is redrawn from the generator state saved at its start).

Data are whole uint8 tensors on the device; each epoch draws one permutation of the training
set, slices global batches from it and augments each batch in one call. Under torchrun each
process takes its contiguous share of every global batch (so the union over processes is the
single-process batch) and DistributedDataParallel averages the gradients; `--accum-steps` splits
each share further into micro-batches. `train_model` is what the forward pass uses (the model,
its DDP wrapper, or torch.compile of either), `model` the raw module whose state dict is saved.

Nothing non-finite is ever saved: a NaN/inf loss or gradient stops the run (or is skipped, up to
`--skip-nonfinite`), and weights, EMA weights and BatchNorm statistics are checked before every
save. SIGTERM / SIGINT / SIGHUP end the run after the step in progress, with its state saved.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cnnzoo.artifacts.files import WriteError, previous_path, remove_temp_files, write_json
from cnnzoo.artifacts.sidecar import BEST_FILE, CONFIG_FILE, LAST_FILE
from cnnzoo.artifacts.tensors import read_newest_good, save_tensors
from cnnzoo.cfg import size_value
from cnnzoo.data.cache import check_mapped
from cnnzoo.data.transforms import train_transform
from cnnzoo.data.types import DataBundle
from cnnzoo.errors import CnnzooError
from cnnzoo.infer.evaluate import autocast
from cnnzoo.train import checks, distributed, run_state
from cnnzoo.train.checks import chance_warning
from cnnzoo.train.config import TrainConfig, apply_resume_changes, changed_fields, progressive_aug
from cnnzoo.train.divergence import diverged, nonfinite_problem
from cnnzoo.train.early_stop import patience_reason
from cnnzoo.train.ema import ModelEma
from cnnzoo.train.fingerprint import record_data
from cnnzoo.train.imbalance import (
    balanced_order,
    inverse_frequency_weights,
    weighted_soft_cross_entropy,
)
from cnnzoo.train.loop_state import LoopState
from cnnzoo.train.lr_find import auto_lr
from cnnzoo.train.mix import mix_batch, smooth_one_hot, soft_cross_entropy
from cnnzoo.train.optim import (
    build_optimizer,
    head_prefix,
    restart_schedule,
    run_lr_factor,
    set_lr,
    set_train_mode,
)
from cnnzoo.train.precision import autocast_dtype, check_precision, choose_for_run
from cnnzoo.train.records import (
    EpochBar,
    epoch_line,
    resume_line,
    save_checkpoints,
    sidecar_info,
    start_line,
    write_metrics,
)
from cnnzoo.train.setup import STATE_FILE, RunSetup, prepare_run
from cnnzoo.train.signals import StopRequests
from cnnzoo.train.threads import run_thread_policy
from cnnzoo.train.validation import score_test, validate
from cnnzoo.train.watch import RunWatch

log = logging.getLogger("cnnzoo")


@dataclass
class RunResult:
    run_dir: Path
    epochs_done: int
    best_epoch: int
    best_val_acc: float
    last_metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    interrupted: str | None = None  # the signal that stopped the run (its state is saved)
    step: int = 0
    stopped_early: str | None = None  # why --patience ended the run before cfg.epochs
    test: dict[str, Any] | None = None  # the test split's score at the end (`score_test`)

    @property
    def best_checkpoint(self) -> Path:
        """best.safetensors (last.safetensors under --keep last)."""
        best = self.run_dir / BEST_FILE
        return (
            best
            if best.is_file() or not (self.run_dir / LAST_FILE).is_file()
            else (self.run_dir / LAST_FILE)
        )


class Trainer:
    """One training run. `Trainer(cfg).fit()` trains; `Trainer.resume(run_dir).fit()` goes on."""

    def __init__(
        self,
        cfg: TrainConfig,
        bundle: DataBundle | None = None,
        *,
        progress: bool = True,
        dist: distributed.Dist | None = None,
        _state: tuple[dict, dict] | None = None,
        _run_dir: Path | None = None,
    ) -> None:
        self.dist = dist if dist is not None else distributed.current()
        self.progress = progress and self.dist.is_main
        self.setup: RunSetup = prepare_run(
            cfg,
            bundle,
            dist=self.dist,
            progress=self.progress,
            saved=_state[1] if _state is not None else None,
            run_dir=_run_dir,
        )
        # the config in force: the setup's, with the lr lr-find picks when asked for "auto"
        self.cfg: TrainConfig = self.setup.cfg
        try:
            self._init_loop(_state)
        except BaseException:
            run_dir = self.setup.run_dir
            if _run_dir is None and self.dist.is_main and not any(run_dir.iterdir()):
                run_dir.rmdir()  # nothing was written: leave no empty folder behind
            raise
        if self.dist.is_main:
            removed = remove_temp_files(self.setup.run_dir)
            if removed:
                log.info("removed %d temp file(s) left by a killed write", len(removed))

    # ------------------------------------------------------------------ loop state
    def _init_loop(self, state: tuple[dict, dict] | None) -> None:
        cfg, dist, dev = self.cfg, self.dist, self.setup.device
        n = len(self.setup.train_labels)
        self.batch_size = min(cfg.batch_size, n)  # the global batch of one optimiser step
        self.steps_per_epoch = max(1, n // cfg.batch_size)
        parts = dist.world * cfg.accum_steps
        if self.batch_size % parts:
            raise CnnzooError(
                f"a batch of {self.batch_size} images does not split evenly into {dist.world} "
                f"process(es) x {cfg.accum_steps} accumulation step(s); choose a --batch-size "
                f"that is a multiple of {parts}"
            )
        try:
            self.optimizer = build_optimizer(  # (the lr is set at every step)
                self.setup.model, cfg.opt, 1e-3 if cfg.lr == "auto" else cfg.lr, cfg.wd, cfg.momentum,
                cfg.backbone_lr_scale,
            )  # fmt: skip
        except ValueError as e:
            raise CnnzooError(str(e)) from None
        self.ema = ModelEma(self.setup.model, cfg.ema) if cfg.ema > 0 else None
        tiny = cfg.recipe == "digits"
        self.threads = run_thread_policy(cfg.threads, dev, tiny, dist.world, dist.enabled)
        if cfg.precision is None:  # recorded, so that a resumed run keeps the choice
            cfg.precision = (
                choose_for_run(
                    self.setup.model,
                    cfg,
                    int(self.setup.train_images.shape[1]),
                    len(self.setup.classes),
                    dev,
                    self.threads,
                )  # fmt: skip
                if cfg.amp
                else "fp32"
            )
        check_precision(cfg.precision, dev)
        self.amp_dtype = autocast_dtype(cfg.precision)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

        # generators: data order on the CPU (the same on every rank: it picks the global
        # batches), augmentation and mixing where the batch lives (one stream per rank)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.order_state = self.gen.get_state()  # at the start of the epoch in progress
        self.aug_gen = torch.Generator(dev).manual_seed(cfg.seed + 1 + 1_000_003 * dist.rank)
        self.loop = LoopState()
        self.loss_sum = torch.zeros((), device=dev)  # sums of the epoch in progress
        self.correct = torch.zeros((), device=dev, dtype=torch.long)
        self.saved_step: int | None = None  # the step of the newest state on disk
        self.stop_now = False
        self.last_lr = 0.0
        self._chance_warned = False
        self.stops = StopRequests()
        self.stopped_early: str | None = None
        self.class_weights = None
        if cfg.class_weights == "auto":
            labels = self.setup.train_labels.cpu()
            self.class_weights = inverse_frequency_weights(labels, len(self.setup.classes)).to(dev)
        head = head_prefix(self.setup.model)  # --freeze-epochs: what waits while the head learns
        self.backbone_params = [
            p
            for n, p in self.setup.model.named_parameters()
            if p.requires_grad and not n.startswith(head)
        ]
        self.lr_find: dict[str, Any] | None = None
        self.watch: RunWatch | None = None  # what `fit` shows while it trains
        if state is not None:
            self.load_state(*state)
            record_data(self.setup.run_dir, self.setup.data_record)  # the state fits: record
        self.train_model: nn.Module = self.setup.model
        if dist.enabled:
            ids = [dev.index] if dev.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.setup.model, device_ids=ids)
        if cfg.compile:
            self.train_model = torch.compile(self.train_model)
        if cfg.lr == "auto":  # the range test's suggestion becomes the run's lr
            lr, self.lr_find = auto_lr(self)
            self.cfg = replace(cfg, lr=lr)

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        bundle: DataBundle | None = None,
        *,
        changes: dict[str, Any] | None = None,
        progress: bool = True,
        dist: distributed.Dist | None = None,
    ) -> Trainer:
        """The trainer of `run_dir` as its last save left it (an epoch's end, or any step with
        --checkpoint-every). `changes` (TrainConfig field -> value) may extend the run
        (`epochs`: a finished run trains the added epochs on a schedule of their own,
        `optim.restart_schedule`; a run stopped early stretches its schedule), move it (`device`), say where a
        named dataset is now (`data_dir`), lower the lr after a divergence (`lr`), change
        how often it saves (`checkpoint_every`), what it tolerates (`skip_nonfinite`), where
        and how its disk cache lives (`cache`, `cache_dir`, `cache_ram`) and how many threads
        it uses (`threads`): `config.RESUMABLE_CHANGES`. Any other change is refused (`config.apply_resume_changes`), from Python as from the
        command line. A damaged state file is named and its previous copy used."""
        run_dir = Path(run_dir)
        path = run_dir / STATE_FILE
        if not path.is_file() and not previous_path(path).is_file():
            raise CnnzooError(f"nothing to resume: {path} not found")
        tensors, meta, used = read_newest_good(path)
        checks.check_state(meta, used)
        saved = TrainConfig.from_dict(meta["config"])
        cfg = apply_resume_changes(saved, changes or {}, int(meta["epoch"]))
        if cfg.lr != saved.lr:
            log.info("resuming with peak lr %g instead of %g", cfg.lr, saved.lr)
        return cls(
            cfg, bundle, progress=progress, dist=dist, _state=(tensors, meta), _run_dir=run_dir
        )

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The whole resumable state (`run_state.gather`; a collective under DDP)."""
        return run_state.gather(self)

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Continue from a saved state of this run (`run_state.restore`)."""
        run_state.restore(self, tensors, meta)
        restart_schedule(self.loop, self.cfg, int(meta["config"]["epochs"]))  # trained longer

    def save_state(self) -> None:
        """Check that nothing is non-finite, then write the state (rank 0; the previous copy
        stays beside it). A failed write stops every rank with rank 0's one-line error."""
        self._check_finite()
        tensors, meta = self.state_tensors()
        error = None
        if self.dist.is_main:
            try:
                save_tensors(self.setup.run_dir / STATE_FILE, tensors, meta, keep_previous=True)
            except CnnzooError as e:
                error = str(e)
        error = self.dist.broadcast(error)
        if error is not None:
            raise WriteError(error)
        self.saved_step = self.loop.step

    def _check_finite(self) -> None:
        problem = nonfinite_problem(self.setup.model, self.ema.module if self.ema else None)
        if problem:
            self._diverged(problem)

    def _diverged(self, what: str, at_step: int | None = None) -> None:
        loop, cfg = self.loop, self.cfg
        raise diverged(
            what, step=loop.step, epoch=loop.epoch, lr=cfg.lr * self._lr_factor(),
            peak_lr=cfg.lr, saved_step=self.saved_step, run_dir=self.setup.run_dir,
            at_step=at_step,
        )  # fmt: skip

    def checkpoint_info(self, row: dict[str, Any], weights_kind: str) -> dict[str, Any]:
        """The sidecar of a checkpoint saved after the epoch `row` describes."""
        return sidecar_info(self.setup, self.cfg, row, weights_kind, self.lr_find)

    # ------------------------------------------------------------------ training
    def set_train_mode(self) -> None:
        """Train mode for the epoch in progress (what --freeze / --freeze-epochs hold still
        stays in eval mode); lr-find trains in the same mode."""
        loop = self.loop
        set_train_mode(self.setup.model, self.cfg, loop.epoch, loop.batch, self.backbone_params)

    def _lr_factor(self) -> float:
        return run_lr_factor(self.loop.step, self.steps_per_epoch, self.cfg, self.loop.segment)

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The training loss: against soft `targets` (mixing) or the labels, smoothed and
        class-weighted as the config says."""
        smoothing = self.cfg.label_smoothing
        if targets is None:
            if not smoothing and self.class_weights is None:
                return F.cross_entropy(logits.float(), labels)
            targets = smooth_one_hot(labels, len(self.setup.classes), smoothing or 0.0)
        if self.class_weights is not None:
            return weighted_soft_cross_entropy(logits, targets, self.class_weights)
        return soft_cross_entropy(logits, targets)

    def _train_step(self, global_idx: torch.Tensor, params: list[nn.Parameter]) -> bool:
        """One optimiser step on this rank's share of a global batch (in --accum-steps
        micro-batches). Returns whether the run must stop now (a signal, on any rank)."""
        cfg, dev, dist = self.cfg, self.setup.device, self.dist
        share = global_idx.numel() // dist.world
        mine = global_idx[dist.rank * share : (dist.rank + 1) * share]
        micro = mine.split(share // cfg.accum_steps)
        self.last_lr = set_lr(self.optimizer, cfg.lr, self._lr_factor())
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum = torch.zeros((), device=dev)
        hits = torch.zeros((), device=dev, dtype=torch.long)
        for i, part in enumerate(micro):
            idx = part.to(dev, non_blocking=True)
            labels = self.setup.train_labels[idx]
            x = train_transform(self.setup.train_images[idx], self.epoch_aug, self.aug_gen)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            targets, hit_labels = None, labels
            if cfg.mixup > 0 or cfg.cutmix > 0:
                x, targets, hit_labels = mix_batch(
                    x, labels, len(self.setup.classes), cfg.mixup, cfg.cutmix,
                    cfg.label_smoothing, self.aug_gen,
                )  # fmt: skip
            # gradients are averaged over ranks once, after the last micro-batch
            last = i == len(micro) - 1
            sync = contextlib.nullcontext()
            if dist.enabled and not last:
                sync = self.train_model.no_sync()
            with sync:
                with autocast(dev, self.amp_dtype):
                    logits = self.train_model(x)
                loss = self.loss(logits, labels, targets)
                scaled = loss / cfg.accum_steps if cfg.accum_steps > 1 else loss
                self.scaler.scale(scaled).backward()
            loss_sum += loss.detach() * labels.shape[0]
            hits += (logits.detach().argmax(1) == hit_labels).sum()
        if cfg.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
        elif not self.scaler.is_enabled():  # fp16's scaler skips inf gradients itself
            grads = [p.grad for p in params if p.grad is not None]
            gnorm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
        else:
            gnorm = torch.zeros((), device=dev)
        bad = ~(torch.isfinite(loss_sum) & torch.isfinite(gnorm.to(dev)))
        signal = self.stops.received is not None
        flags = torch.stack([bad.float(), torch.tensor(float(signal), device=dev)])
        bad, stop = (v > 0 for v in dist.max_(flags).tolist())
        if bad:
            self._skip_nonfinite(loss_sum)
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.loop.step += 1
            if self.ema is not None:
                self.ema.update(self.setup.model, self.loop.step)
            self.loss_sum += loss_sum
            self.correct += hits
            self.loop.seen += share
        return stop

    def _skip_nonfinite(self, loss_sum: torch.Tensor) -> None:
        """A step whose loss or gradients are NaN/inf: stop, or skip it (--skip-nonfinite)."""
        loop = self.loop
        loss = float(loss_sum)
        what = f"the loss is {loss}" if not math.isfinite(loss) else "the gradients are NaN/inf"
        if loop.skipped_nonfinite >= self.cfg.skip_nonfinite:
            self._diverged(what, at_step=loop.step + 1)
        self.optimizer.zero_grad(set_to_none=True)
        loop.skipped_nonfinite += 1
        loop.step += 1  # the batch is used up and the schedule moves on
        log.warning(
            "step %d: %s; skipped (%d of %d allowed by --skip-nonfinite)",
            loop.step,  # just counted: the 1-based number of the skipped step
            what,
            loop.skipped_nonfinite,
            self.cfg.skip_nonfinite,
        )

    @property
    def epoch_aug(self):
        """The augmentation of the epoch in progress (with --progressive, smaller crops early)."""
        return progressive_aug(self.setup.aug, self.cfg, self.loop.epoch)

    def train_one_epoch(self) -> dict[str, float] | None:
        """Train the epoch in progress to its end (from the batch a resumed state left);
        None when a stop signal ended it early (the state is saved)."""
        cfg, loop = self.cfg, self.loop
        self.set_train_mode()
        n = len(self.setup.train_labels)
        self.order_state = self.gen.get_state()
        if self.cfg.sampler == "balanced":
            perm = balanced_order(self.setup.train_labels, len(self.setup.classes), self.gen)
        else:
            perm = torch.randperm(n, generator=self.gen)
        bs, steps = self.batch_size, self.steps_per_epoch
        if loop.batch == 0:
            self.loss_sum.zero_()
            self.correct.zero_()
            loop.seen, loop.elapsed = 0, 0.0
        params = [p for p in self.setup.model.parameters() if p.requires_grad]
        bar = EpochBar(steps, f"epoch {loop.epoch + 1}/{cfg.epochs}", self.progress, loop.batch)
        start = time.perf_counter() - loop.elapsed
        while loop.batch < steps:
            b = loop.batch
            self.stop_now = self._train_step(perm[b * bs : (b + 1) * bs], params)
            loop.batch += 1
            loop.elapsed = time.perf_counter() - start
            bar.step(b, loop, self.loss_sum, self.correct, self.dist.world)
            if loop.batch < steps:  # the epoch's end saves anyway
                every = cfg.checkpoint_every
                if self.stop_now or (every and loop.step % every == 0):
                    self.save_state()
                if self.stop_now:
                    bar.close()
                    return None
        bar.close()
        sums = torch.stack(
            [self.loss_sum.double().cpu(), self.correct.double().cpu(), torch.tensor(loop.seen)]
        ).double()
        self.dist.sum_(sums)
        loss_total, correct, seen = sums.tolist()
        train_loss = loss_total / seen if seen else math.nan
        if not math.isfinite(train_loss):
            self._diverged(f"the epoch's training loss is {train_loss}")
        return {
            "lr": self.last_lr,
            "train_loss": train_loss,
            "train_acc": 100.0 * correct / seen,
            "images_per_s": seen / max(loop.elapsed, 1e-9),
            "epoch_time": loop.elapsed,
            **({"train_size": size_value(self.epoch_aug.image_size)} if cfg.progressive else {}),
        }

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Loss and accuracies of `model` on the validation split (all ranks' shares)."""
        cfg = self.cfg
        return validate(
            model, self.setup.bundle.val, self.setup.preprocess, self.dist,
            max(256, 2 * cfg.batch_size), self.amp_dtype, cfg.channels_last,
        )  # fmt: skip

    def close(self) -> None:
        """Give the run folder back to other processes (a resume may take it now); the run
        can still be read, and `Trainer.resume` takes the folder again."""
        self.setup.release()

    def fit(self, stop_after: int | None = None, handle_signals: bool = True) -> RunResult:
        """Train until `cfg.epochs` (or `stop_after` more epochs, as if stopped there). With
        `handle_signals` (in the main thread), SIGTERM / SIGINT / SIGHUP save the state after
        the step in progress and return a result whose `interrupted` names the signal."""
        self.stops = StopRequests()
        with self.stops if handle_signals else contextlib.nullcontext():
            return self._fit(stop_after)

    def _fit(self, stop_after: int | None) -> RunResult:
        cfg, loop = self.cfg, self.loop
        show_log_lines()
        if self.dist.is_main:
            write_json(self.setup.run_dir / CONFIG_FILE, cfg.to_dict())
        self.watch = RunWatch(self)  # curves, train_batch.png, --log tensorboard / mlflow
        if loop.epoch == 0 and loop.step == 0:
            log.info(start_line(self.setup, cfg, self.dist.world))
            self.watch.start()
        else:
            log.info(resume_line(self.setup.run_dir, loop, cfg.epochs, self.steps_per_epoch))
        threads_before = torch.get_num_threads()
        try:
            interrupted = self._epochs(stop_after)
            done = not interrupted and (loop.epoch >= cfg.epochs or bool(self.stopped_early))
            test = score_test(self) if done else None  # once, at the end: never for selection
        except BaseException:
            self.watch.close(finished=False, ok=False)
            raise
        finally:  # a run from Python leaves torch's thread count as it found it
            torch.set_num_threads(threads_before)
        self.watch.close(finished=done)
        if interrupted:
            return self._result(interrupted=self.stops.received or "a stop signal")
        return replace(self._result(), test=test)

    def _epochs(self, stop_after: int | None) -> bool:
        """Train epochs until the end, `stop_after` of them, or a stop signal (True)."""
        cfg, loop = self.cfg, self.loop
        done_now = 0
        while loop.epoch < cfg.epochs and (stop_after is None or done_now < stop_after):
            self.threads.apply()
            check_mapped()  # a disk cache cut short would end the epoch with SIGBUS
            stats = self.train_one_epoch()
            if stats is None:
                return True
            self._end_epoch(stats)
            done_now += 1
            if self.stop_now and loop.epoch < cfg.epochs:
                return True
            self.stopped_early = patience_reason(loop.history, loop.best_epoch, cfg.patience)
            if self.stopped_early:
                log.info("stopped early: %s", self.stopped_early)
                return False
        return False

    def _warn_if_at_chance(self, row: dict[str, Any]) -> None:
        if not self._chance_warned:
            message = chance_warning(row, len(self.setup.classes), self.loop.epoch, self.cfg.epochs)
            if message:
                self._chance_warned = True
                log.warning(message)

    def _end_epoch(self, stats: dict[str, float]) -> None:
        """Validate, record and save the epoch just trained."""
        loop = self.loop
        row: dict[str, Any] = {"epoch": loop.epoch + 1, "step": loop.step, **stats}
        self._check_finite()  # before validating: name the weights, not the loss they give
        check_mapped()  # the validation rows may live in the disk cache too
        kind, weights = "model", self.setup.model
        v = self.validate(self.setup.model)
        if v:
            row.update(val_loss=v["loss"], val_acc=v["acc"], val_top5=v["top5"])
        if self.ema is not None:
            ve = self.validate(self.ema.module)
            if ve:
                row.update(ema_val_loss=ve["loss"], ema_val_acc=ve["acc"], ema_val_top5=ve["top5"])
                if ve["acc"] >= v["acc"]:
                    kind, weights = "ema", self.ema.module
            else:
                kind, weights = "ema", self.ema.module
        if v and not math.isfinite(v["loss"]):
            self._diverged(f"the validation loss is {v['loss']}")
        metric = max(row.get("val_acc", -math.inf), row.get("ema_val_acc", -math.inf))
        loop.end_epoch(row, metric, validated=bool(v))
        # order matters for a kill at any point: checkpoints first, then the state that
        # would make a resumed run skip this epoch
        if self.dist.is_main:
            info = self.checkpoint_info(row, kind)
            save_checkpoints(self.setup.run_dir, weights, info, row["is_best"], self.cfg.keep)
            write_metrics(self.setup.run_dir, loop.history)
        self.save_state()
        if self.watch is not None:
            self.watch.epoch(row)
        log.info(epoch_line(row, self.cfg.epochs))
        self._warn_if_at_chance(row)

    def _result(self, interrupted: str | None = None) -> RunResult:
        loop = self.loop
        return RunResult(
            self.setup.run_dir,
            loop.epoch,
            loop.best_epoch,
            loop.best_val_acc,
            loop.history[-1] if loop.history else {},
            list(loop.history),
            interrupted=interrupted,
            step=loop.step,
            stopped_early=self.stopped_early,
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
    With `resume`, `cfg` holds the changes to the run (only `config.RESUMABLE_CHANGES` may
    differ from its own settings, as with `cnnzoo train --resume`). Under torchrun, every process calls this and trains its share.
    """
    dist = distributed.init_from_env(cfg.device if cfg is not None else "auto")
    if resume is not None:
        changes = changed_fields(cfg) if cfg is not None else {}
        trainer = Trainer.resume(resume, bundle, changes=changes, progress=progress, dist=dist)
    elif cfg is None:
        raise ValueError("train() needs a TrainConfig or a run folder to resume")
    else:
        trainer = Trainer(cfg, bundle, progress=progress, dist=dist)
    try:
        return trainer.fit(stop_after=stop_after)
    finally:
        trainer.close()
