"""Every family exports to ONNX and runs in onnxruntime within 1e-4 of PyTorch (fp32).

Weights are seeded and scaled so every layer carries signal (`signal_weights_`: fresh
initialisations leave some families' logits near 1e-9, where any tolerance holds trivially);
each test asserts that the logits are far from that before comparing them. The largest models
run at a reduced input size to keep the suite fast; the graph is the same at any size.
"""

from __future__ import annotations

import ctypes
import gc

import numpy as np
import pytest
import torch

import cnnzoo
from cnnzoo.benchmark import signal_weights_
from cnnzoo.export.writers import write_onnx
from cnnzoo.infer.metadata import export_metadata
from cnnzoo.infer.runtime import OnnxModule

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytestmark = pytest.mark.usefixtures("one_thread")

# one model per family: (name, input size tested; None = native)
FAMILIES = [
    ("resnet18", None),
    ("resnet20", None),  # the CIFAR ResNet
    ("seresnet50", 128),
    ("resnetv2_50", 128),
    ("convnext_tiny", 128),
    ("mobilenet_v2", None),
    ("mobilenet_v3_small", None),
    ("efficientnet_b0", None),
    ("shufflenet_v2_x0_5", None),
    ("densenet121", 128),
    ("googlenet", None),
    ("inception_v3", None),
    ("inception_v4", 160),
    ("inception_resnet_v2", 160),
    ("resnet18d", None),  # ResNet-D
    ("regnet_y_400mf", None),
    ("efficientnet_v2_s", 128),
    ("mnasnet0_5", None),
    # AlexNet's 6x6 adaptive pool exports where the last map's side divides it or is a
    # multiple of it: 1x1 here (6x6 at 224). VGG shares its head code (models/vgg.py) and its
    # plain conv stacks are every family's: its 500 MB export would add ~40 s and test nothing
    # more
    ("alexnet", 64),
    ("squeezenet1_1", None),
    ("mobilenetv1_100", None),
    ("shufflenet_v1_x0_5_g3", None),
    ("lenet5", None),
]


@pytest.fixture(autouse=True)
def give_memory_back():
    """Large models and their ONNX copies come and go here: hand the freed heap back to the
    system after each, so later tests that bound the process's resident memory see theirs."""
    yield
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def export_and_compare(name: str, height: int, width: int, batches: tuple[int, ...], tmp_path):
    model = signal_weights_(cnnzoo.create_model(name, num_classes=10))
    meta = {"model": name, "classes": [str(i) for i in range(10)], "input_size": height}
    meta |= {"num_classes": 10, "mean": [0.5] * 3, "std": [0.5] * 3}
    example = torch.zeros(1, 3, height, width)
    props = export_metadata(
        meta,
        export_format="onnx",
        precision="fp32",
        input_shape=tuple(example.shape),
        dynamic_batch=True,
    )
    path = tmp_path / f"{name}.onnx"
    write_onnx(model, path, example, props, dynamic_batch=True)
    runtime = OnnxModule(path)
    assert runtime.fixed_batch is None  # the batch axis is symbolic
    g = torch.Generator().manual_seed(1)
    for n in batches:
        x = torch.randn(n, 3, height, width, generator=g)
        with torch.no_grad():
            ref = model(x)
        got = runtime(x)
        scale = max(1.0, float(ref.abs().max()))
        assert float(ref.std()) > 0.05, f"{name}: logits carry no signal ({ref.std():.1e})"
        diff = float((got - ref).abs().max())
        assert got.shape == ref.shape == (n, 10)
        assert diff <= 1e-4 * scale, f"{name} at {height}x{width}, batch {n}: diff {diff:.2e}"
        assert np.array_equal(got.argmax(1).numpy(), ref.argmax(1).numpy())


@pytest.mark.parametrize("name,size", FAMILIES, ids=[n for n, _ in FAMILIES])
def test_family_exports_to_onnx_within_1e4(name, size, tmp_path):
    size = size or cnnzoo.get_model_cfg(name).input_size
    export_and_compare(name, size, size, (2,), tmp_path)


def test_non_square_input_with_dynamic_batch(tmp_path):
    # traced at batch 1, run at batches 1 and 3 on a 96 x 128 input
    export_and_compare("mobilenet_v3_small", 96, 128, (1, 3), tmp_path)
