"""An exported ONNX file is enough: its metadata carries every preprocessing rule as typed
values, and a client that cannot import cnnzoo or torch (tests/onnx_client.py: onnxruntime,
Pillow, numpy) reproduces `cnnzoo predict`'s probabilities within 1e-4 on awkward images:
EXIF-rotated JPEGs, RGBA and palette PNGs, grey, CMYK, 16-bit, a long strip, small pictures
that are enlarged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnzoo import create_model
from cnnzoo.artifacts.sidecar import save_checkpoint
from cnnzoo.cli.main import main

pytest.importorskip("onnxruntime")
CLIENT = Path(__file__).with_name("onnx_client.py")
CLASSES = ["a", "b", "c", "d"]
# the client runs where torch and cnnzoo cannot be imported at all
GUARD = (
    "import runpy, sys\n"
    "sys.modules['torch'] = None\n"
    "sys.modules['cnnzoo'] = None\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n"
)


def _images(root: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    base = np.zeros((45, 61, 3), np.uint8)  # smooth gradients plus noise: resizing matters
    base[..., 0] = np.linspace(0, 255, 61)[None, :]
    base[..., 1] = np.linspace(255, 0, 45)[:, None]
    base[..., 2] = rng.integers(0, 256, (45, 61))
    rgb = Image.fromarray(base)
    files = {}
    rgb.save(root / "photo.jpg", quality=95)
    files["photo"] = root / "photo.jpg"
    for orientation in (3, 6, 8):  # rotated 180, 90 and 270 by the EXIF tag only
        exif = Image.Exif()
        exif[0x0112] = orientation
        files[f"exif{orientation}"] = root / f"exif{orientation}.jpg"
        rgb.save(files[f"exif{orientation}"], quality=95, exif=exif)
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.fromarray(rng.integers(0, 256, (45, 61), dtype=np.uint8)))
    files["rgba"] = root / "rgba.png"
    rgba.save(files["rgba"])
    pal = rgb.quantize(16)
    files["palette"] = root / "palette.png"
    pal.save(files["palette"])
    files["palette_transparent"] = root / "palette_t.png"
    pal.save(files["palette_transparent"], transparency=3)
    files["grey"] = root / "grey.png"
    rgb.convert("L").save(files["grey"])
    files["cmyk"] = root / "cmyk.jpg"
    rgb.convert("CMYK").save(files["cmyk"], quality=95)
    wide = (np.linspace(0, 65535, 45 * 61).reshape(45, 61)).astype(np.uint16)
    files["16bit"] = root / "wide16.png"
    Image.fromarray(wide).save(files["16bit"])
    files["strip"] = root / "strip.png"
    Image.fromarray(rng.integers(0, 256, (30, 151, 3), dtype=np.uint8)).save(files["strip"])
    files["small"] = root / "small.png"
    rgb.resize((23, 17)).save(files["small"])
    return list(files.values())


@pytest.mark.parametrize(
    ("interpolation", "size"),
    # squares, and rectangles: wide, tall, and one wider than the long-strip cut's 2:1
    [("bicubic", 32), ("bilinear", 32), ("bicubic", [24, 40]), ("bilinear", [40, 24]),
     ("bilinear", [16, 56])],
)  # fmt: skip
def test_onnx_client_without_torch_reproduces_predict(tmp_path, interpolation, size, capsys):
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=len(CLASSES)).eval()
    with torch.no_grad():  # spread the logits, so that a wrong rule shows in the probabilities
        model.fc.weight.mul_(30)
    run = tmp_path / "run"
    run.mkdir()
    info = {"model": "resnet20", "model_overrides": {}, "num_classes": 4, "in_chans": 3,
            "classes": CLASSES, "input_size": size, "crop_pct": 0.875,
            "interpolation": interpolation, "mean": [0.45, 0.5, 0.55], "std": [0.2, 0.25, 0.3]}  # fmt: skip
    save_checkpoint(run / "best.safetensors", model, info)
    onnx_file = tmp_path / "model.onnx"
    assert main(["export", "-c", str(run), "-o", str(onnx_file), "--no-progress"]) == 0
    files = _images(tmp_path)
    capsys.readouterr()
    assert (
        main(
            [
                "predict",
                str(onnx_file),
                *map(str, files),
                "--json",
                "--topk",
                "4",
                "--precision",
                "fast-fp32",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert not out["errors"]
    ours = []
    for r in out["results"]:
        probs = [0.0] * len(CLASSES)
        for p in r["predictions"]:
            probs[p["index"]] = p["prob"]
        ours.append(probs)

    cmd = [sys.executable, "-c", GUARD, str(CLIENT), str(onnx_file), *map(str, files)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={"PATH": ""})
    assert p.returncode == 0, p.stderr
    theirs = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(theirs) == len(files)
    for f, a, b in zip(files, ours, theirs, strict=True):
        assert np.abs(np.array(a) - np.array(b)).max() <= 1e-4, (f.name, a, b)
    # the rules matter: the same pixels without the EXIF rotation give other probabilities
    by_name = dict(zip((f.name for f in files), theirs, strict=True))
    assert np.abs(np.array(by_name["photo.jpg"]) - np.array(by_name["exif6.jpg"])).max() > 1e-3


def test_metadata_values_are_typed(tmp_path):
    """ONNX metadata_props: every value one JSON value; TorchScript's preprocessing.json: one
    typed JSON object (no JSON inside JSON strings). A rectangle's sizes are [H, W] lists."""
    import onnx

    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=2).eval()
    run = tmp_path / "run"
    run.mkdir()
    info = {"model": "resnet20", "model_overrides": {}, "num_classes": 2, "in_chans": 3,
            "classes": ["x", "y"], "input_size": 32, "crop_pct": 0.9, "interpolation": "bicubic",
            "mean": [0.5] * 3, "std": [0.25] * 3}  # fmt: skip
    save_checkpoint(run / "best.safetensors", model, info)
    assert main(["export", "-c", str(run), "-o", str(tmp_path / "m.onnx"), "--no-progress"]) == 0
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    facts = {k: json.loads(v) for k, v in props.items()}
    assert facts["input_size"] == 32 and facts["resize"] == 35 and facts["crop_pct"] == 0.9
    assert facts["interpolation"] == "bicubic" and facts["classes"] == ["x", "y"]
    rules = facts["preprocessing"]
    assert rules["resize"] == {**rules["resize"], "shorter_side": 35, "interpolation": "bicubic",
                               "antialias": True, "clamp": [0, 255]}  # fmt: skip
    assert rules["decode"]["orientation"] == "exif"
    assert rules["decode"]["alpha"]["composite_on"] == [255, 255, 255]
    assert rules["crop"]["height"] == 32 and rules["mean"] == [0.5] * 3

    pt = tmp_path / "m.pt"
    assert main(["export", "-c", str(run), "-f", "torchscript", "-o", str(pt),
                 "--no-progress"]) == 0  # fmt: skip
    extra = {"preprocessing.json": ""}
    torch.jit.load(str(pt), _extra_files=extra)
    typed = json.loads(extra["preprocessing.json"])
    assert typed["resize"] == 35 and typed["mean"] == [0.5] * 3 and typed["crop"] == 32
    assert typed["preprocessing"] == rules

    info.update(input_size=[24, 40])
    save_checkpoint(run / "best.safetensors", model, info)
    rect = tmp_path / "rect.onnx"
    assert main(["export", "-c", str(run), "-o", str(rect), "--no-progress"]) == 0
    facts = {p.key: json.loads(p.value) for p in onnx.load(str(rect)).metadata_props}
    assert facts["input_size"] == [24, 40] and facts["crop"] == [24, 40]
    assert facts["resize"] == [26, 44] and facts["input_shape"] == [1, 3, 24, 40]
    rules = facts["preprocessing"]
    assert rules["resize"]["box"] == [26, 44] and rules["resize"]["shorter_side"] is None
    assert (rules["crop"]["height"], rules["crop"]["width"]) == (24, 40)
    assert facts["cnnzoo"]["input_size"] == [24, 40]  # the sidecar, as the checkpoint has it
