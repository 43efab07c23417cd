"""Run folders, --resume options, recipes, devices and output paths: the ways a run can lose
work or silently do something other than what the user asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import write_folder

from cnnzoo.cli.main import main
from cnnzoo.errors import CnnzooError
from cnnzoo.infer.machine import resolve_device
from cnnzoo.train import TrainConfig
from cnnzoo.train import setup as setup_mod
from cnnzoo.train.config import resolve_config
from cnnzoo.train.setup import augment_cfg, claim_run_dir

pytestmark = pytest.mark.usefixtures("one_thread")

MEAN, STD = (0.5,) * 3, (0.5,) * 3


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(setup_mod, "default_run_dir", lambda cfg: tmp_path / "runs" / "r")
    cfg = TrainConfig(model="resnet20", data="digits")
    first, made1 = claim_run_dir(None, cfg)
    second, made2 = claim_run_dir(None, cfg)
    assert first != second and second.name == "r-2" and made1 and made2
    assert first.is_dir() and second.is_dir()


def test_failed_start_leaves_no_empty_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "resnet20", "--data", str(tmp_path / "nothing"),
                 "--out", str(out), "--no-progress"]) == 2  # fmt: skip
    assert "nothing" in error_line(capsys) and not out.exists()


def test_out_that_is_a_file_is_one_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    base = ["train", "--model", "resnet20", "--data", "digits", "--no-progress"]
    assert main([*base, "--out", str(afile)]) == 2
    assert "is a file" in error_line(capsys)
    assert main([*base, "--out", str(afile / "sub")]) == 2
    assert str(afile) in error_line(capsys)
    assert afile.read_text() == "x"


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("resume") / "run"
    args = ["train", "--model", "resnet20", "--data", "digits", "--epochs", "2",
            "--stop-after", "1", "--data-dir", "rel/dir", "--out", str(run), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    return run


def test_resume_refuses_options_it_would_ignore(digits_run, capsys):
    before = (digits_run / "state.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["train", "--resume", str(digits_run), "--wd", "5", "--ema", "0.99"]) == 2
    line = error_line(capsys)
    assert "--wd" in line and "--ema" in line and "cannot change" in line
    assert (digits_run / "state.safetensors").read_bytes() == before  # nothing touched


def test_resume_accepts_the_runs_own_options_again(digits_run, capsys):
    cmd = ["train", "--resume", str(digits_run), "--model", "resnet20", "--data", "digits",
           "--epochs", "2", "--no-progress"]  # fmt: skip
    assert main(cmd) == 0
    metrics = (digits_run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in metrics] == [1, 2]


def test_data_dir_is_recorded_absolute(digits_run):
    saved = json.loads((digits_run / "config.json").read_text())
    assert Path(saved["data_dir"]).is_absolute() and saved["data_dir"].endswith("rel/dir")


def test_flips_follow_the_preset_unless_asked():
    def aug(**kw):
        cfg = resolve_config(TrainConfig(model="resnet18", data="x", **kw), 32)
        return cfg, augment_cfg(cfg, MEAN, STD)

    cfg, a = aug(augment="shift")
    assert not cfg.hflip and not a.hflip and a.crop == "pad-crop"
    cfg, a = aug(augment="shift", hflip=True)  # asked for: kept, and recorded for --tta
    assert cfg.hflip and a.hflip
    cfg, a = aug(augment="none", hflip=True)  # flips only
    assert a.crop == "none" and a.hflip
    cfg, a = aug()
    assert cfg.augment == "light" and a.hflip


def test_finetune_keeps_the_datas_own_augmentation():
    digits = resolve_config(TrainConfig(model="resnet20", data="digits", weights="w.pth"), 8)
    assert digits.recipe == "finetune" and digits.augment == "none" and not digits.hflip
    small = resolve_config(TrainConfig(model="resnet20", data="f", weights="w.pth"), 32)
    assert small.augment == "light" and small.hflip
    large = resolve_config(TrainConfig(model="resnet20", data="f", weights="w.pth"), 160)
    assert large.augment == "standard" and large.hflip


@pytest.mark.parametrize("name", ["mps", "xpu", "cuda:7", "gpu", "meta"])
def test_unavailable_devices_are_user_errors(name):
    if name.startswith("cuda"):
        import torch

        if torch.cuda.device_count() > 7:
            pytest.skip("this machine has a cuda:7")
    with pytest.raises(CnnzooError, match="device"):
        resolve_device(name)


def test_empty_weights_file_says_so(tmp_path, capsys):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert main(["train", "--model", "resnet20", "--data", "digits", "--weights", str(empty),
                 "--out", str(tmp_path / "r"), "--no-progress"]) == 2  # fmt: skip
    assert "empty" in error_line(capsys)


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    write_folder(root / "data", 20, seed=0)
    run = root / "run"
    args = ["train", "--model", "resnet20", "--data", str(root / "data"), "--out", str(run),
            "--epochs", "1", "--batch-size", "16", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    return root, run


def test_eval_on_another_folder_scores_all_of_it(folder_run, capsys, tmp_path):
    _, run = folder_run
    n = len(write_folder(tmp_path / "other", 5, seed=3))
    capsys.readouterr()
    assert main(["eval", "-c", str(run), "--data", str(tmp_path / "other"), "--no-progress",
                 "--out", str(tmp_path / "r.json")]) == 0  # fmt: skip
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n"] == n and report["split_name"] == "all images"


def test_eval_refuses_a_split_that_holds_training_images(folder_run, capsys):
    _, run = folder_run
    capsys.readouterr()
    assert main(["eval", "-c", str(run), "--val-split", "0.3", "--no-progress"]) == 2
    assert "trained on" in error_line(capsys)


def test_output_paths_under_a_file_are_one_line(folder_run, capsys, tmp_path):
    root, run = folder_run
    afile = tmp_path / "afile"
    afile.write_text("x")
    image = next((root / "data").rglob("*.png"))
    for cmd in (
        ["eval", "-c", str(run), "--out", str(afile / "x.json"), "--no-progress"],
        ["predict", "-c", str(run), str(image), "--save-vis", str(afile)],
        ["data", str(root / "data"), "--export", str(afile / "sub")],
    ):
        capsys.readouterr()
        assert main(cmd) == 2, cmd
        assert str(afile) in error_line(capsys)


def test_weights_from_a_run_folder(folder_run, tmp_path):
    root, run = folder_run
    out = tmp_path / "ft"
    assert main(["train", "--model", "resnet20", "--data", str(root / "data"), "--weights",
                 str(run), "--out", str(out), "--epochs", "1", "--no-progress"]) == 0  # fmt: skip
    saved = json.loads((out / "config.json").read_text())
    assert saved["weights"].endswith("best.safetensors") and saved["recipe"] == "finetune"


def test_every_train_option_is_one_config_field():
    """The command line is generated from TrainConfig: each field parses back to itself, so a
    new option written once in engine/config.py reaches `cnnzoo train` unchanged."""
    import argparse
    import dataclasses

    from cnnzoo.cli.train import add_arguments, config_from_args
    from cnnzoo.train.config import TrainConfig

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args([])) == TrainConfig()
    samples = {int: "3", float: "0.25", str: None}
    for f in dataclasses.fields(TrainConfig):
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        if f.name == "model_opts":
            args, want = [flag, "drop_rate=0.5"], {"drop_rate": 0.5}
        elif f.metadata.get("choices"):
            want = f.metadata["choices"][-1]
            args = [flag, want]
        elif isinstance(f.default, bool) or "bool" in str(f.type):
            args, want = [flag], True
        else:
            kind = int if "int" in str(f.type) else float if "float" in str(f.type) else str
            text = samples[kind] or "some-value"
            args, want = [flag, text], kind(text)
            if f.metadata.get("nargs") == "+" and f.name != "image_size":  # --mean R G B
                want = [want]  # (one --image-size number is a square's side, an int)
        got = getattr(config_from_args(parser.parse_args(args)), f.name)
        assert got == want, (f.name, got, want)


def test_resume_from_python_obeys_the_same_rules(digits_run):
    """`cnnzoo.engine.train(cfg, resume=...)` refuses the changes the CLI refuses."""
    from cnnzoo.errors import CnnzooError
    from cnnzoo.train import TrainConfig, train

    before = (digits_run / "state.safetensors").read_bytes()
    with pytest.raises(CnnzooError, match="--wd cannot change"):
        train(TrainConfig(wd=5.0), resume=digits_run, progress=False)
    with pytest.raises(CnnzooError, match="less than the"):
        train(TrainConfig(epochs=0), resume=digits_run, progress=False)
    assert (digits_run / "state.safetensors").read_bytes() == before
