"""Watching a run while it trains: `train_batch.png`, a grid of augmented training images as
the model gets them (written when a run starts, as Ultralytics does), `curves.png` redrawn
after the epochs (so a running or stopped run has one), and with `--log tensorboard` or
`--log mlflow` the epoch's numbers (the columns of metrics.jsonl: losses, accuracies, lr,
images/s; the test score at the end) and the grid in those tools' own files, written by their
own libraries (optional extras: `pip install 'cnnzoo[watch]'`).

TensorBoard: RUN/tensorboard/ (`tensorboard --logdir RUN`). MLflow: the tracking server or
database that MLFLOW_TRACKING_URI names, else a file store in RUN/mlruns (`mlflow ui
--backend-store-uri RUN/mlruns`); a resumed run goes on logging into the same MLflow run.
Only rank 0 watches.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from cnnzoo.artifacts.files import write_json
from cnnzoo.artifacts.sidecar import CURVES_FILE, TRAIN_BATCH_FILE
from cnnzoo.errors import CnnzooError
from cnnzoo.insight.annotate import YELLOW, draw_lines, enlarge, save, to_pil
from cnnzoo.insight.explain import seen_images
from cnnzoo.insight.plots import plot_curves, run_title
from cnnzoo.insight.report import grid
from cnnzoo.train.lr_find import trainer_batches

if TYPE_CHECKING:  # annotations only: the trainer imports this module
    from cnnzoo.train.trainer import Trainer

log = logging.getLogger("cnnzoo")

LOGGERS = ("none", "tensorboard", "mlflow")
MLFLOW_FILE = "mlflow.json"  # the MLflow run a resumed run goes on logging into
CURVES_EVERY_S = 10.0  # curves.png at most this often while training (a redraw takes ~0.5 s)
GRID_IMAGES = 16


def train_batch_grid(trainer: Trainer) -> np.ndarray:
    """uint8 [H, W, 3]: the first GRID_IMAGES images of an augmented training batch, each
    labelled with its class, drawn from generators of their own (the run's are untouched)."""
    x, y = next(trainer_batches(trainer, trainer.cfg.seed + 29))
    setup = trainer.setup
    images = seen_images(x[:GRID_IMAGES].float(), setup.mean, setup.std).cpu()
    tiles = [
        draw_lines(enlarge(to_pil(im), 128), [(setup.classes[int(label)], YELLOW)])
        for im, label in zip(images, y[:GRID_IMAGES].tolist(), strict=True)
    ]
    return np.asarray(grid(tiles, columns=4))


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics row (not the epoch and step counters, not flags)."""
    return {
        k: float(v)
        for k, v in row.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
        and k not in ("epoch", "step") and math.isfinite(v)
    }  # fmt: skip


class _TensorBoard:
    def __init__(self, run_dir: Path) -> None:
        try:  # optional dependency: only --log tensorboard needs it
            # optional: the watch extra (tensorboard)
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise CnnzooError(
                "--log tensorboard needs the tensorboard package; pip install tensorboard "
                "(or 'cnnzoo[watch]'), or leave --log out"
            ) from None
        self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def start(self, config: dict[str, Any], image: np.ndarray) -> None:
        self.writer.add_text("config", f"```\n{json.dumps(config, indent=1)}\n```")
        self.writer.add_image("train_batch", image, 0, dataformats="HWC")

    def epoch(self, numbers: dict[str, float], epoch: int) -> None:
        for key, value in numbers.items():
            self.writer.add_scalar(key, value, epoch)
        self.writer.flush()

    def close(self, finished: bool) -> None:
        self.writer.close()


class _MLflow:
    def __init__(self, run_dir: Path) -> None:
        try:  # optional dependency: only --log mlflow needs it
            # optional: the watch extra (mlflow)
            import mlflow
        except ImportError:
            raise CnnzooError(
                "--log mlflow needs the mlflow package; pip install mlflow-skinny (or "
                "'cnnzoo[watch]'), or leave --log out"
            ) from None
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:  # a file store in the run folder, which MLflow 3 allows when asked
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            uri = (run_dir / "mlruns").resolve().as_uri()
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        self.record = run_dir / MLFLOW_FILE
        self.run_id = self._reopen(uri)
        if self.run_id is None:
            found = self.client.get_experiment_by_name("cnnzoo")
            exp = found.experiment_id if found else self.client.create_experiment("cnnzoo")
            self.run_id = self.client.create_run(exp, run_name=run_dir.name).info.run_id
            write_json(self.record, {"tracking_uri": uri, "run_id": self.run_id})

    def _reopen(self, uri: str) -> str | None:
        """The MLflow run of a resumed run, set running again; None for a new run."""
        try:
            saved = json.loads(self.record.read_text())
        except (OSError, ValueError):
            return None
        if saved.get("tracking_uri") != uri:
            return None
        try:
            self.client.update_run(saved["run_id"], status="RUNNING")
        except Exception:  # gone from the store: a new MLflow run
            return None
        return saved["run_id"]

    def start(self, config: dict[str, Any], image: np.ndarray) -> None:
        for key, value in config.items():
            self.client.log_param(self.run_id, key, json.dumps(value)[:500])
        self.client.log_image(self.run_id, image, TRAIN_BATCH_FILE)

    def epoch(self, numbers: dict[str, float], epoch: int) -> None:
        stamp = int(time.time() * 1000)
        for key, value in numbers.items():
            self.client.log_metric(self.run_id, key, value, timestamp=stamp, step=epoch)

    def close(self, finished: bool) -> None:
        self.client.set_terminated(self.run_id, "FINISHED" if finished else "KILLED")


class RunWatch:
    """What a run shows while it trains (rank 0; nothing on the other ranks)."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.on = trainer.dist.is_main
        self.drawn = -math.inf  # when curves.png was last drawn
        kind = trainer.cfg.log
        self.backend = None
        if self.on and kind == "tensorboard":
            self.backend = _TensorBoard(trainer.setup.run_dir)
        elif self.on and kind == "mlflow":
            self.backend = _MLflow(trainer.setup.run_dir)

    def start(self) -> None:
        """A new run: train_batch.png, and the config and the grid to the logger."""
        if not self.on:
            return
        image = train_batch_grid(self.trainer)
        save(Image.fromarray(image), self.trainer.setup.run_dir / TRAIN_BATCH_FILE)
        if self.backend is not None:
            self.backend.start(self.trainer.cfg.to_dict(), image)

    def epoch(self, row: dict[str, Any]) -> None:
        """An epoch is done: its numbers to the logger, curves.png redrawn (at most every
        CURVES_EVERY_S seconds while training; always when the run ends)."""
        if not self.on:
            return
        if self.backend is not None:
            self.backend.epoch(_numbers(row), int(row["epoch"]))
        if time.monotonic() - self.drawn >= CURVES_EVERY_S:
            self._curves()

    def close(self, finished: bool, ok: bool = True) -> None:
        """The run ends (finished, stopped, or failed: `ok` False draws nothing more)."""
        if not self.on:
            return
        history = self.trainer.loop.history
        try:
            if ok and history:
                self._curves()
                if self.backend is not None and "test_acc" in history[-1]:
                    test = {k: v for k, v in history[-1].items() if k.startswith("test_")}
                    self.backend.epoch(_numbers(test), int(history[-1]["epoch"]))
        finally:
            if self.backend is not None:
                self.backend.close(finished)

    def _curves(self) -> None:
        t, loop = self.trainer, self.trainer.loop
        title = run_title(
            t.cfg.model, t.setup.bundle.name, loop.history, loop.best_val_acc, loop.best_epoch
        )
        plot_curves(loop.history, t.setup.run_dir / CURVES_FILE, title)
        self.drawn = time.monotonic()
