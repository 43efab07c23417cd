"""A --batch-size the user gave that is larger than the training data is refused in one line
naming the data's size; the recipe's default is cut to the data, so tiny folders still train."""

from __future__ import annotations

import pytest

from cnnzoo.cli.main import main
from cnnzoo.errors import CnnzooError
from cnnzoo.train import train
from tests.helpers import cfg, make_bundle, write_folder

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_given_batch_larger_than_the_data_is_one_line(tmp_path, capsys):
    write_folder(tmp_path / "data", 5, seed=0)  # 15 images, 12 of them for training
    args = ["train", "--model", "resnet20", "--data", str(tmp_path / "data"), "--image-size",
            "16", "--epochs", "1", "--threads", "1", "--no-progress"]  # fmt: skip
    assert main([*args, "--batch-size", "64", "--out", str(tmp_path / "big")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--batch-size 64 is larger than the 12 training images" in err, err
    assert len(err.splitlines()) == 1 and not (tmp_path / "big").exists()
    # the recipe's default (128 for small images) is cut to the data: it trains
    assert main([*args, "--out", str(tmp_path / "default")]) == 0
    assert (tmp_path / "default" / "last.safetensors").is_file()


def test_the_python_api_refuses_it_too(tmp_path):
    with pytest.raises(CnnzooError, match="choose at most 10"):
        train(cfg(tmp_path, batch_size=32), make_bundle(4), progress=False)
