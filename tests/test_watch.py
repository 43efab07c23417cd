"""Watching a run (issue 26): train_batch.png at the start, curves.png after the epochs
(also for a run stopped half-way), and --log tensorboard / mlflow read back from the files
their own libraries wrote (skipped, saying why, when the library is not installed)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from helpers import cfg, make_bundle
from PIL import Image

from cnnzoo.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (make install's dev extra installs it)")


def test_a_stopped_run_has_its_training_images_and_curves(tmp_path):
    r = train(cfg(tmp_path, epochs=3, batch_size=16), make_bundle(14), stop_after=1,
              progress=False)  # fmt: skip
    assert r.epochs_done == 1
    batch = Image.open(r.run_dir / "train_batch.png")
    assert batch.size[0] > 4 * 128 and batch.size[1] > 2 * 128  # 16 labelled tiles, 4 a row
    pixels = np.asarray(batch.convert("L"), dtype=float)
    assert pixels.std() > 20  # pictures, not a blank page
    assert Image.open(r.run_dir / "curves.png").size[0] > 300


def test_tensorboard_gets_every_epoch(tmp_path):
    _need("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    bundle = make_bundle(14)
    r = train(cfg(tmp_path, epochs=3, batch_size=16, log="tensorboard"), bundle,
              stop_after=2, progress=False)  # fmt: skip
    train(TrainConfig(threads=1), bundle, resume=r.run_dir, progress=False)  # goes on logging
    acc = EventAccumulator(str(r.run_dir / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    tags = acc.Tags()
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s"):
        assert key in tags["scalars"], key
    rows = [json.loads(x) for x in (r.run_dir / "metrics.jsonl").read_text().splitlines()]
    logged = acc.Scalars("val_acc")
    assert [e.step for e in logged] == [1, 2, 3]
    assert [e.value for e in logged] == pytest.approx([row["val_acc"] for row in rows])
    assert "train_batch" in tags["images"]


def test_mlflow_gets_params_metrics_and_the_grid(tmp_path, monkeypatch):
    _need("mlflow")
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    bundle = make_bundle(14)
    r = train(cfg(tmp_path, epochs=2, batch_size=16, log="mlflow"), bundle, stop_after=1,
              progress=False)  # fmt: skip
    train(TrainConfig(threads=1), bundle, resume=r.run_dir, progress=False)
    record = json.loads((r.run_dir / "mlflow.json").read_text())
    client = mlflow.MlflowClient(tracking_uri=record["tracking_uri"])
    run = client.get_run(record["run_id"])  # one MLflow run across the resume
    assert run.info.status == "FINISHED" and run.data.params["model"] == '"resnet20"'
    history = client.get_metric_history(record["run_id"], "val_acc")
    rows = [json.loads(x) for x in (r.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m.step for m in history] == [1, 2]
    assert [m.value for m in history] == pytest.approx([row["val_acc"] for row in rows])
    for key in ("train_loss", "lr", "images_per_s"):
        assert len(client.get_metric_history(record["run_id"], key)) == 2, key
    artifacts = [a.path for a in client.list_artifacts(record["run_id"])]
    assert "train_batch.png" in artifacts


def test_a_missing_logger_library_is_one_line_before_anything_is_written(tmp_path, monkeypatch):
    import importlib.util as iu

    from cnnzoo.errors import CnnzooError

    real = iu.find_spec
    monkeypatch.setattr(
        iu, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    with pytest.raises(CnnzooError, match="pip install mlflow-skinny"):
        train(cfg(tmp_path, log="mlflow"), make_bundle(4), progress=False)
    assert not (tmp_path / "run").exists()
