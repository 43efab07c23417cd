"""`cnnzoo models` lists stored figures: they must be what the models measure today."""

from __future__ import annotations

import pytest
import torch

import cnnzoo
from cnnzoo.cli.main import main
from cnnzoo.zoo_table import ZOO_TABLE


def test_the_table_lists_exactly_the_registered_models():
    assert sorted(ZOO_TABLE) == cnnzoo.list_models()


@pytest.mark.parametrize("name", sorted(ZOO_TABLE))
def test_stored_figures_match_a_freshly_built_model(name):
    cfg = cnnzoo.get_model_cfg(name)
    with torch.device("meta"):
        model = cnnzoo.create_model(name)
    size = cfg.input_size
    s = cnnzoo.summary(model, (1, 3, size, size), depth=1, device="meta")
    assert ZOO_TABLE[name] == (cfg.family, size, s.total_params, s.macs), (
        f"update {name} in src/cnnzoo/zoo_table.py"
    )


def test_models_command_prints_the_stored_rows(capsys):
    assert main(["models", "resnet5*"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["model", "resnet50", "resnet56"]
    assert "25,557,032" in lines[1] and "4.089" in lines[1] and "80.86" in lines[1]
    assert main(["models", "nothing*"]) == 2
