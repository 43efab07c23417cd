"""Training: the loss falls, resume is bit-identical, EMA / mixup / cutmix / freezing do what
they say, the schedule and parameter groups are right. All on small generated data (or the
bundled digits), resnet20, CPU."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from helpers import CLASSES, cfg, make_bundle, saved_weights
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from cnnzoo import create_model
from cnnzoo.artifacts.sidecar import save_checkpoint
from cnnzoo.train import TrainConfig, Trainer, train
from cnnzoo.train.ema import ModelEma
from cnnzoo.train.mix import mix_batch
from cnnzoo.train.optim import lr_factor, param_groups

pytestmark = pytest.mark.usefixtures("one_thread")


def test_two_epochs_loss_falls_and_run_folder(tmp_path):
    r = train(cfg(tmp_path, epochs=3, batch_size=16), make_bundle(), progress=False)
    losses = [h["train_loss"] for h in r.history]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    assert r.epochs_done == 3
    for name in (
        "last.safetensors",
        "last.json",
        "best.safetensors",
        "best.json",
        "state.safetensors",
        "metrics.csv",
        "curves.png",
        "config.json",
    ):
        assert (r.run_dir / name).is_file(), name
    lines = (r.run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]
    csv_lines = (r.run_dir / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,") and len(csv_lines) == 4
    side = json.loads((r.run_dir / "last.json").read_text())
    assert side["classes"] == CLASSES and side["epoch"] == 3
    assert side["recipe"]["lr"] == 0.05 and side["recipe"]["model"] == "resnet20"


def _all_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    out = {f"last/{k}": v for k, v in load_file(run_dir / "last.safetensors").items()}
    out.update({f"state/{k}": v for k, v in load_file(run_dir / "state.safetensors").items()})
    return out


def test_resume_is_bit_identical(tmp_path):
    """2 epochs straight == 1 epoch, stop, resume, 1 epoch: every weight, optimiser buffer,
    EMA weight and RNG state equal, and the same metrics. EMA, mixup, cutmix and label
    smoothing are on so their state is covered too."""
    bundle = make_bundle()
    opts = dict(ema=0.9, mixup=0.2, cutmix=1.0, label_smoothing=0.1, opt="adamw", lr=2e-3)
    straight = train(cfg(tmp_path, "straight", **opts), bundle, progress=False)
    first = train(cfg(tmp_path, "split", **opts), bundle, stop_after=1, progress=False)
    assert first.epochs_done == 1
    resumed = train(resume=tmp_path / "split", bundle=bundle, progress=False)
    assert resumed.epochs_done == 2
    a, b = _all_tensors(straight.run_dir), _all_tensors(resumed.run_dir)
    assert a.keys() == b.keys()
    assert any(k.startswith("state/optim/") for k in a) and any("ema/" in k for k in a)
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert diff == []
    skip = {"images_per_s", "epoch_time"}
    rows = lambda r: [{k: v for k, v in h.items() if k not in skip} for h in r.history]  # noqa: E731
    assert rows(straight) == rows(resumed)
    lines = (resumed.run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2


def test_training_a_finished_run_longer_restarts_its_schedule_bit_exactly(tmp_path):
    """A finished 2-epoch run resumed with --epochs 4 trains epochs 3-4 on a schedule of their
    own (peak lr again, annealed over the two), not at the spent ~0 lr of a stretched cosine;
    stopped and resumed inside that segment, it ends bit-identical to the straight extension."""
    bundle = make_bundle(20)
    for name in ("straight", "split"):
        train(cfg(tmp_path, name, epochs=2, batch_size=8), bundle, progress=False)
    longer = TrainConfig(epochs=4, threads=1)
    straight = train(longer, bundle, resume=tmp_path / "straight", progress=False)
    train(longer, bundle, resume=tmp_path / "split", stop_after=1, progress=False)
    resumed = train(resume=tmp_path / "split", bundle=bundle, progress=False)
    lrs = [h["lr"] for h in straight.history]
    # the run's own end is annealed; its first added epoch is back near the peak (0.05)
    assert lrs[1] < 0.05 * 0.05 and lrs[2] > 0.6 * 0.05 and lrs[3] < lrs[2]
    a, b = _all_tensors(straight.run_dir), _all_tensors(resumed.run_dir)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    skip = {"images_per_s", "epoch_time"}
    rows = lambda r: [{k: v for k, v in h.items() if k not in skip} for h in r.history]  # noqa: E731
    assert rows(straight) == rows(resumed)


def test_resume_of_finished_run_does_nothing_and_refuses_overwrite(tmp_path):
    bundle = make_bundle(14)
    train(cfg(tmp_path, epochs=1), bundle, progress=False)
    again = train(resume=tmp_path / "run", bundle=bundle, progress=False)
    assert again.epochs_done == 1 and len(again.history) == 1
    from cnnzoo import CnnzooError

    with pytest.raises(CnnzooError, match="--resume"):
        train(cfg(tmp_path, epochs=1), bundle, progress=False)


def test_state_file_is_plain_safetensors(tmp_path):
    train(cfg(tmp_path, epochs=1), make_bundle(14), progress=False)
    with safe_open(str(tmp_path / "run" / "state.safetensors"), "pt") as f:
        meta = json.loads(f.metadata()["cnnzoo"])
        rng = f.get_tensor("rng/data")
    assert rng.dtype == torch.uint8
    assert meta["epoch"] == 1 and meta["config"]["model"] == "resnet20"


def test_ema_tracks_and_is_evaluated(tmp_path):
    r = train(cfg(tmp_path, ema=0.9), make_bundle(), progress=False)
    assert all("ema_val_acc" in h for h in r.history)
    state = load_file(r.run_dir / "state.safetensors")
    key = "conv1.weight"
    assert not torch.equal(state[f"ema/{key}"], state[f"model/{key}"])
    side = json.loads((r.run_dir / "last.json").read_text())
    last = r.history[-1]
    # the checkpoint holds whichever of the two scored better (the EMA on a tie)
    assert side["weights"] == ("ema" if last["ema_val_acc"] >= last["val_acc"] else "model")


def test_ema_update_rule():
    m = torch.nn.Linear(2, 1)
    ema = ModelEma(m, decay=0.5)
    before = ema.module.weight.clone()
    with torch.no_grad():
        m.weight.add_(1.0)
    ema.update(m, step=100)  # decay_at(100) = min(0.5, 101/110) = 0.5
    assert torch.allclose(ema.module.weight, 0.5 * before + 0.5 * m.weight)
    assert ema.decay_at(0) == pytest.approx(0.1)


def test_mixup_and_cutmix_targets():
    x = torch.stack([torch.zeros(3, 8, 8), torch.ones(3, 8, 8)])
    labels = torch.tensor([0, 1])
    for mixup, cutmix in ((0.4, 0.0), (0.0, 1.0)):
        g = torch.Generator().manual_seed(3)
        out, t, _ = mix_batch(x, labels, 2, mixup, cutmix, 0.0, g)
        assert torch.allclose(t.sum(1), torch.ones(2))
        # image 0 (zeros) holds its partner (ones) exactly in the share its target gives it
        assert out[0].mean().item() == pytest.approx(t[0, 1].item(), abs=1e-6)
        assert out.shape == x.shape
    # the same generator state gives the same mix
    a = mix_batch(x, labels, 2, 0.4, 1.0, 0.1, torch.Generator().manual_seed(5))
    b = mix_batch(x, labels, 2, 0.4, 1.0, 0.1, torch.Generator().manual_seed(5))
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))


def test_freeze_backbone_trains_only_the_head(tmp_path):
    w = saved_weights(tmp_path, "resnet20")
    t = Trainer(cfg(tmp_path, freeze="backbone", epochs=1, weights=w), make_bundle(14),
                progress=False)  # fmt: skip
    before = {k: v.clone() for k, v in t.setup.model.state_dict().items()}
    t.train_one_epoch()
    after = t.setup.model.state_dict()
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["fc.bias", "fc.weight"]  # BN statistics of the backbone stay too


def test_frozen_backbone_keeps_bn_stats_but_head_dropout_works(tmp_path):
    w = saved_weights(tmp_path, "mobilenet_v2")
    t = Trainer(cfg(tmp_path, model="mobilenet_v2", freeze="backbone", epochs=1, weights=w),
                make_bundle(14), progress=False)  # fmt: skip
    t.set_train_mode()
    bns = [m for m in t.setup.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert t.setup.model.classifier[0].training  # the head's dropout still drops while it trains
    # a backbone lr of 0 freezes it just the same: its BN statistics must not drift either
    t = Trainer(cfg(tmp_path, "lr0", backbone_lr_scale=0.0, epochs=1), make_bundle(14),
                progress=False)  # fmt: skip
    before = {k: v.clone() for k, v in t.setup.model.state_dict().items()}
    t.train_one_epoch()
    after = t.setup.model.state_dict()
    assert sorted(k for k in before if not torch.equal(before[k], after[k])) == [
        "fc.bias",
        "fc.weight",
    ]


def test_param_groups_decay_and_backbone_lr(tmp_path):
    model = create_model("resnet20", num_classes=3)
    groups = param_groups(model, weight_decay=0.1, backbone_lr_scale=0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    for g in groups:
        for p in g["params"]:
            n = names[id(p)]
            assert g["weight_decay"] == (0.1 if p.ndim > 1 else 0.0), n
            assert g["lr_scale"] == (1.0 if n.startswith("fc.") else 0.1), n
    assert sum(len(g["params"]) for g in groups) == len(names)
    t = Trainer(cfg(tmp_path, backbone_lr_scale=0.1, epochs=1), make_bundle(14), progress=False)
    t.train_one_epoch()
    lrs = {g["lr_scale"]: g["lr"] for g in t.optimizer.param_groups}
    assert lrs[0.1] == pytest.approx(0.1 * lrs[1.0])


def test_lr_schedules():
    warm = [lr_factor(s, 100, 10) for s in range(100)]
    assert all(a < b for a, b in zip(warm[:10], warm[1:11], strict=True))  # rises in warm-up
    assert warm[10] == pytest.approx(1.0) and warm[-1] < 0.01
    assert all(a >= b for a, b in zip(warm[10:], warm[11:], strict=False))  # then only falls
    one = [lr_factor(s, 100, 0, "onecycle") for s in range(100)]
    assert one[0] == pytest.approx(1 / 25) and max(one) == pytest.approx(1.0, abs=1e-3)
    assert one[-1] < 0.01 and lr_factor(50, 100, 0, "constant") == 1.0
    flat = [lr_factor(s, 100, 5, "flatcos") for s in range(100)]
    assert flat[0] < flat[4] < 1.0 and flat[5:75] == [1.0] * 70  # warm-up, then the peak held
    assert all(a > b for a, b in zip(flat[75:], flat[76:], strict=False)) and flat[-1] < 0.01
    assert not any(math.isnan(v) for v in warm + one + flat)


def test_crop_pad_option_sets_the_shift():
    from cnnzoo.errors import CnnzooError
    from cnnzoo.train.config import validate_config
    from cnnzoo.train.setup import augment_cfg

    base = dict(model="resnet18", data="x", image_size=32, hflip=True, augment="light")
    assert augment_cfg(TrainConfig(**base), (0.5,) * 3, (0.5,) * 3).pad == 4  # 32 // 8
    cfg = augment_cfg(TrainConfig(**base, crop_pad=2), (0.5,) * 3, (0.5,) * 3)
    assert cfg.pad == 2 and cfg.crop == "pad-crop" and cfg.hflip
    with pytest.raises(CnnzooError, match="--crop-pad"):
        validate_config(TrainConfig(**base, crop_pad=-1))


def test_finetune_from_weights_replaces_the_classifier(tmp_path):
    src = create_model("resnet20", num_classes=10)
    path = tmp_path / "pretrained.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    t = Trainer(cfg(tmp_path, weights=str(path), epochs=1), make_bundle(14), progress=False)
    assert t.cfg.recipe == "finetune"
    assert torch.equal(t.setup.model.conv1.weight, src.conv1.weight)
    assert t.setup.model.fc.weight.shape == (3, 64)
    assert t.setup.mean == tuple(src.cfg.mean)  # pretrained weights keep their normalisation
    # a cnnzoo checkpoint says which normalisation its weights were trained with
    own = tmp_path / "own.safetensors"
    save_checkpoint(own, src, {"mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6]})
    t = Trainer(cfg(tmp_path, "own", weights=str(own), epochs=1), make_bundle(14), progress=False)
    assert t.setup.mean == (0.1, 0.2, 0.3) and t.setup.std == (0.4, 0.5, 0.6)


def test_digits_learns_fast(tmp_path):
    """The README's first command in small: digits from sklearn, a few epochs."""
    r = train(
        TrainConfig(
            model="resnet20", data="digits", out=str(tmp_path / "d"), epochs=3, device="cpu"
        ),
        progress=False,
    )
    assert r.history[-1]["val_acc"] > 90, r.history


def test_resume_of_a_finetune_needs_not_the_weights_file(tmp_path):
    src = create_model("resnet20", num_classes=10)
    path = tmp_path / "pretrained.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    bundle = make_bundle(14)
    first = train(cfg(tmp_path, weights=str(path), freeze="backbone"), bundle, stop_after=1,
                  progress=False)  # fmt: skip
    path.unlink()
    done = train(resume=first.run_dir, bundle=bundle, progress=False)
    assert done.epochs_done == 2
    state = load_file(done.run_dir / "state.safetensors")
    assert torch.equal(state["model/conv1.weight"], src.conv1.weight)  # frozen all along


def test_keep_chooses_the_checkpoints_and_the_size_line_says_what_weighs(tmp_path):
    from cnnzoo.train.records import folder_size_line

    bundle = make_bundle(14)
    r = train(cfg(tmp_path, "best", epochs=2, keep="best"), bundle, stop_after=1, progress=False)
    assert (r.run_dir / "best.safetensors").is_file() and (r.run_dir / "best.json").is_file()
    assert not (r.run_dir / "last.safetensors").exists()
    # a resume may change --keep: the checkpoint no longer kept goes, no stale copy stays
    r = train(TrainConfig(keep="last", threads=1), bundle, resume=r.run_dir, progress=False)
    assert (r.run_dir / "last.safetensors").is_file() and (r.run_dir / "last.json").is_file()
    assert not (r.run_dir / "best.safetensors").exists() and not (r.run_dir / "best.json").exists()
    assert r.best_checkpoint == r.run_dir / "last.safetensors"
    line = folder_size_line(r.run_dir)
    model = (r.run_dir / "last.safetensors").stat().st_size / 1e6
    total = sum(f.stat().st_size for f in r.run_dir.rglob("*") if f.is_file()) / 1e6
    assert line.startswith(f"run folder: {total:.1f} MB (model {model:.1f} MB: 1 checkpoint(s)")
    assert "resume state" in line and "--keep" not in line
