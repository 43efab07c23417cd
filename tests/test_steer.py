"""Training a person can steer: --patience stops when validation stalls, --class-weights auto
and --sampler balanced even out imbalanced classes, --freeze-epochs trains the head alone
first, --stats normalises with the data's own statistics."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from test_train import cfg, make_bundle, saved_weights

from cnnzoo.data import DataBundle, ImageTensors
from cnnzoo.data.stats import channel_stats
from cnnzoo.errors import CnnzooError
from cnnzoo.train import Trainer, train
from cnnzoo.train.early_stop import patience_reason
from cnnzoo.train.imbalance import (
    balanced_order,
    imbalance_warning,
    inverse_frequency_weights,
    weighted_soft_cross_entropy,
)
from cnnzoo.train.optim import head_prefix

pytestmark = pytest.mark.usefixtures("one_thread")


def test_patience_stops_when_validation_stalls(tmp_path):
    # a frozen backbone and a vanishing lr: the val accuracy cannot rise after epoch 1
    weights = saved_weights(tmp_path, "resnet20")
    stall = cfg(tmp_path, epochs=10, patience=2, freeze="backbone", lr=1e-9, weights=weights)
    result = train(stall, make_bundle(20), progress=False)
    assert result.stopped_early and "--patience 2" in result.stopped_early
    assert (result.best_epoch, result.epochs_done) == (1, 3)
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert best["epoch"] == 1
    assert (tmp_path / "run" / "curves.png").is_file()  # drawn although the run ended early


def test_patience_counts_epochs_since_the_best():
    rows = [{"epoch": e, "val_acc": a, "best_val_acc": b}
            for e, a, b in [(1, 50.0, 50.0), (2, 60.0, 60.0), (3, 55.0, 60.0), (4, 59.0, 60.0)]]  # fmt: skip
    assert patience_reason(rows[:3], 2, 2) is None
    assert "60.00% at epoch 2" in patience_reason(rows, 2, 2)
    assert patience_reason(rows, 2, 0) is None  # 0: never
    assert patience_reason([{"epoch": 1, "val_acc": None}], 0, 1) is None  # no val split


def imbalanced_labels() -> torch.Tensor:
    return torch.tensor([0] * 90 + [1] * 9 + [2] * 1)


def test_inverse_frequency_weights_even_out_the_classes():
    labels = imbalanced_labels()
    w = inverse_frequency_weights(labels, 4)  # class 3 has no image
    counts = torch.bincount(labels, minlength=4).float()
    share = w * counts
    assert torch.allclose(share[:3], share[0].expand(3)) and w[3] == 0
    assert torch.allclose(share.sum(), counts.sum())  # same total weight as unweighted
    logits = torch.randn(100, 4)
    hard = F.one_hot(labels, 4).float()
    assert torch.allclose(
        weighted_soft_cross_entropy(logits, hard, w), F.cross_entropy(logits, labels, weight=w)
    )


def test_balanced_order_draws_every_class_equally_often():
    labels = imbalanced_labels().repeat(20)
    order = balanced_order(labels, 3, torch.Generator().manual_seed(0))
    assert order.shape == labels.shape
    share = torch.bincount(labels[order], minlength=3).float() / len(order)
    assert torch.allclose(share, torch.full((3,), 1 / 3), atol=0.04), share


def test_imbalance_warning_above_five_to_one():
    names = ["a", "b", "c"]
    assert "a has 90" in imbalance_warning(imbalanced_labels(), names)
    assert imbalance_warning(torch.tensor([0] * 50 + [1] * 10 + [2] * 10), names) is None


def test_class_weights_and_balanced_sampler_in_training(tmp_path):
    b = make_bundle(40)
    keep = torch.cat([torch.nonzero(b.train.labels == c).flatten()[:n] for c, n in
                      enumerate((32, 6, 3))])  # fmt: skip
    b.train = ImageTensors(b.train.images[keep], b.train.labels[keep])
    trainer = Trainer(cfg(tmp_path, epochs=1, class_weights="auto", sampler="balanced",
                          batch_size=8), b, progress=False)  # fmt: skip
    w = trainer.class_weights
    assert w[2] > w[1] > w[0]
    logits, labels = torch.randn(8, 3), torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    assert torch.allclose(trainer.loss(logits, labels), F.cross_entropy(logits, labels, weight=w))
    row = trainer.train_one_epoch()
    assert row["train_loss"] == row["train_loss"] and trainer.step == 5  # 41 images, batch 8


def test_freeze_epochs_train_the_head_alone_first(tmp_path):
    trainer = Trainer(cfg(tmp_path, epochs=2, freeze_epochs=1), make_bundle(), progress=False)
    head = head_prefix(trainer.model)
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit(stop_after=1)
    after_one = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    for k, v in after_one.items():
        if k.startswith(head):
            assert not torch.equal(v, start[k]), f"head {k} did not learn"
        elif "num_batches_tracked" not in k:
            assert torch.equal(v, start[k]), f"backbone {k} changed while frozen"
    trainer.fit()
    moved = [k for k, v in trainer.model.state_dict().items()
             if not k.startswith(head) and not torch.equal(v, after_one[k])]  # fmt: skip
    assert any(k.endswith("conv1.weight") for k in moved)
    assert any(k.endswith("running_mean") for k in moved)  # BN statistics learn again too


def test_freeze_epochs_must_leave_epochs_for_the_whole_network(tmp_path):
    with pytest.raises(CnnzooError, match="--freeze-epochs must be less"):
        Trainer(cfg(tmp_path, epochs=2, freeze_epochs=2), make_bundle(), progress=False)


def test_stats_normalises_with_the_data_s_own(tmp_path):
    b: DataBundle = make_bundle()
    own = channel_stats(b.train.images)
    assert own != (tuple(b.mean), tuple(b.std))  # the bundle says (0.4, 0.3): not its own
    trainer = Trainer(cfg(tmp_path, epochs=1, stats=True), b, progress=False)
    assert (trainer.mean, trainer.std) == own
    trainer.fit()
    sidecar = json.loads((tmp_path / "run" / "best.json").read_text())
    assert (tuple(sidecar["mean"]), tuple(sidecar["std"])) == own
