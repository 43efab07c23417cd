"""Every numeric option of every subcommand is checked as a number before anything runs:
NaN, inf, 1e308 and values outside the stated range are one line and exit 2 (the command is
never reached), values inside pass; no value makes the check raise anything else."""

from __future__ import annotations

import argparse
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnzoo.cli import main as cli_main
from cnnzoo.cli.numbers import RANGES, check_numbers
from cnnzoo.errors import CnnzooError

# the least each subcommand needs to parse
REQUIRED = {
    "models": [], "summary": ["resnet20"], "data": ["digits"],
    "train": ["--model", "resnet20", "--data", "digits"], "eval": ["RUN"],
    "predict": ["RUN", "x.png"], "explain": ["RUN", "x.png"],
    "lr-find": ["--model", "resnet20", "--data", "digits"], "bench": ["--model", "resnet20"],
    "export": ["--model", "resnet20"], "serve": ["--checkpoint", "RUN"],
}  # fmt: skip


def numeric_options() -> list[tuple[str, str, str]]:
    parser = cli_main.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = []
    for command, p in sub.choices.items():
        for action in p._actions:
            kind = getattr(action.type, "__name__", "")
            if kind in ("int", "float", "lr_value") and action.option_strings:
                found.append((command, action.option_strings[0], action.dest))
    return found


OPTIONS = numeric_options()


def test_every_numeric_option_has_a_stated_range():
    assert len(OPTIONS) > 60
    assert sorted({d for _, _, d in OPTIONS if d not in RANGES}) == []


@pytest.mark.parametrize(("command", "flag", "dest"), OPTIONS, ids=lambda v: str(v))
def test_non_finite_and_huge_values_never_reach_the_command(command, flag, dest, capsys,
                                                             monkeypatch):  # fmt: skip
    def reached(args):
        raise AssertionError("the command ran with a value it should never see")

    build = cli_main.build_parser
    monkeypatch.setattr(cli_main, "build_parser", lambda: _stubbed(build(), reached))
    for value in ("nan", "inf", "-inf", "1e308", str(10**30), "-1e308", "12abc"):
        try:
            code = cli_main.main([command, *REQUIRED[command], flag, value])
        except SystemExit as e:  # argparse: not a number of the option's type
            code = e.code
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and flag in err[0], (value, err)


def _stubbed(parser, run):
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for p in sub.choices.values():
        p.set_defaults(_run=run)
    return parser


values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, 1, -1, 0.5, 2**31, 2**63, 1e-300]),
)


@settings(max_examples=600, deadline=None, derandomize=True)
@given(st.sampled_from(sorted({d for _, _, d in OPTIONS})), values)
def test_the_check_is_total_and_exact(dest, value):
    args = argparse.Namespace(**{dest: value})
    low, high = RANGES[dest]
    try:
        check_numbers(args)
    except CnnzooError as e:
        assert "\n" not in str(e) and dest.replace("_", "-") in str(e)
        assert not (math.isfinite(value) and low < value < high)
    else:
        assert math.isfinite(value) and low <= value <= high
