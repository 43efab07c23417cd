"""`cnnzoo models` lists stored figures: they must be what the models measure today."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cnnzoo
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


def test_listing_the_zoo_imports_no_torch():
    # what makes `cnnzoo models` take a tenth of a second instead of seconds
    code = (
        "import sys\n"
        "from cnnzoo.cli.main import main\n"
        "assert main(['models']) == 0\n"
        "assert 'torch' not in sys.modules, 'cnnzoo models imported torch'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(cnnzoo.__file__).parents[1])}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.splitlines()) == 1 + len(ZOO_TABLE)
