"""Every registered model that has a reference: same parameter count, same state-dict schema
(keys and shapes, so reference checkpoints load with strict=True), same outputs on the parity
weights and input, multiply-adds within 2% of the published figure."""

from __future__ import annotations

import pytest
import torch
from conftest import (
    need_reference,
    parity_module,
    parity_outputs,
    published,
    reference_models,
    with_reference,
)

import cnnzoo

REFERENCED = sorted(set(reference_models()) & set(cnnzoo.list_models()))


def _build(name: str, device: str = "cpu"):
    # meta: shapes only, no memory and no init cost (enough for counts, keys and multiply-adds)
    with torch.device(device):
        return cnnzoo.create_model(name, num_classes=1000)


@pytest.mark.parametrize("name", with_reference(REFERENCED))
def test_params_and_schema(name):
    need_reference()
    ref = reference_models()[name]
    model = _build(name, "meta")
    assert sum(p.numel() for p in model.parameters()) == ref["params"]
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: list(s) for k, s in ref["state_dict"]}
    assert sorted(set(ours) - set(theirs))[:5] == [], "keys the reference does not have"
    assert sorted(set(theirs) - set(ours))[:5] == [], "reference keys we lack"
    bad = [k for k in ours if ours[k] != theirs[k]]
    assert bad == [], f"shape mismatch: {[(k, ours[k], theirs[k]) for k in bad[:5]]}"


@pytest.mark.parametrize("name", with_reference(n for n in REFERENCED if n in parity_outputs()))
def test_numeric_parity(name):
    need_reference()
    parity = parity_module()
    ref = reference_models()[name]
    model = _build(name).eval()
    model.load_state_dict(parity.parity_state_dict(ref["state_dict"]), strict=True)
    with torch.no_grad():
        y = model(parity.parity_input(ref["input_size"]))
    expected = parity_outputs()[name]
    assert y.shape == expected.shape
    err = (y - expected).abs().max().item()
    assert err <= 1e-4 * max(1.0, expected.abs().max().item()), f"max abs error {err:.3g}"


@pytest.mark.parametrize("name", with_reference(set(published()) & set(cnnzoo.list_models())))
def test_macs_match_published(name):
    need_reference()
    model = _build(name, "meta")
    size = model.cfg.input_size
    rows = published()[name]  # the weight set evaluated at the model's input size, if one says
    expected = next((r for r in rows if r.get("crop_size") == size), rows[0])["gmacs"]
    got = cnnzoo.summary(model, (1, 3, size, size), device="meta").gmacs
    assert abs(got - expected) <= 0.02 * expected, f"{got:.3f} G vs published {expected} G"


def test_every_reference_model_is_registered():
    """A model dropped from the registry fails here instead of silently going untested."""
    need_reference()
    assert sorted(set(reference_models()) - set(cnnzoo.list_models())) == []


def test_stored_top1_is_the_published_default():
    """zoo_facts' top-1 (what `cnnzoo models` and bench print) is the published accuracy of the
    weights `pretrained=True` loads: the reference's default set (else its best)."""
    from cnnzoo.zoo_facts import PUBLISHED_TOP1

    need_reference()
    for name, rows in published().items():
        if name not in PUBLISHED_TOP1:
            continue
        flagged = [r for r in rows if r.get("default")]
        best = flagged[0] if flagged else max(rows, key=lambda r: r["acc1"])
        assert PUBLISHED_TOP1[name] == best["acc1"], name
