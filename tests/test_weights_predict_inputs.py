"""The Predictor takes what a Python user has at hand: a file path, a PIL image, a uint8 tensor
(CHW or HWC), a float tensor in 0..1 or a NumPy array, all preprocessed alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnzoo import CnnzooError, create_model
from cnnzoo.infer.predict import Predictor, as_image

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=4)
    meta = {"classes": list("abcd"), "input_size": 24, "mean": [0.4, 0.5, 0.6],
            "std": [0.2, 0.25, 0.3], "crop_pct": 0.875}  # fmt: skip
    return Predictor(model, meta, precision="fp32")  # the exact model: outputs comparable


def test_path_pil_and_tensors_give_identical_outputs(tmp_path, predictor):
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (30, 41, 3), dtype=np.uint8)  # not square: the crop matters
    path = tmp_path / "img.png"
    Image.fromarray(hwc).save(path)
    chw = torch.from_numpy(hwc).permute(2, 0, 1)
    inputs = {
        "path": path,
        "str": str(path),
        "pil": Image.open(path),
        "uint8 chw": chw,
        "uint8 hwc": torch.from_numpy(hwc),
        "float chw": chw.float() / 255,
        "float64 hwc": torch.from_numpy(hwc).double() / 255,
        "numpy hwc": hwc,
    }
    probs = predictor.probabilities(list(inputs.values()))
    for i, name in enumerate(inputs):
        assert torch.equal(probs[i], probs[0]), name
    top = predictor.predict(Image.open(path), topk=2)
    assert top == predictor.top(probs[:1], 2)


def test_grey_inputs_match_their_rgb_file(tmp_path, predictor):
    """A grey picture given as a [H, W] or [1, H, W] tensor or an "L" PIL image is the grey
    file as load_image reads it (grey copied to the three channels)."""
    grey = np.random.default_rng(1).integers(0, 256, (20, 20), dtype=np.uint8)
    path = tmp_path / "grey.png"
    Image.fromarray(grey, "L").save(path)
    t = torch.from_numpy(grey)
    probs = predictor.probabilities([path, Image.fromarray(grey, "L"), t, t[None]])
    assert all(torch.equal(p, probs[0]) for p in probs)


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (torch.rand(3, 8, 8) * 2, "floats in 0..1"),
        (torch.zeros(2, 8, 8, dtype=torch.uint8), "1 or 3 channels"),
        (torch.zeros(8, 8, dtype=torch.bool), "dtype torch.bool"),
        (42, "cannot predict on a int"),
    ],
)
def test_bad_inputs_are_one_line_errors(bad, says):
    with pytest.raises(CnnzooError) as e:
        as_image(bad)
    assert says in str(e.value) and "\n" not in str(e.value)
