"""A consumer of a `cnnzoo export` ONNX file that knows nothing of cnnzoo or torch: it reads
the typed preprocessing rules from the file's metadata and follows them with onnxruntime,
Pillow and numpy alone. `python onnx_client.py MODEL.onnx IMAGE...` prints one JSON list of
class probabilities per image (tests/test_export_client.py runs it with torch unimportable)."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def decode(path: str, rules: dict) -> Image.Image:
    """The file as 8-bit RGB, by the `decode` rules and the long-strip cut."""
    dec = rules["decode"]
    im = Image.open(path)
    im.load()
    if dec["orientation"] == "exif":
        im = ImageOps.exif_transpose(im)
    w, h = im.size
    shorter, longer = min(w, h), max(w, h)
    keep = max(1, int(shorter * rules["max_aspect"]))
    if longer > keep:
        keep += (longer - keep) % 2
        off = (longer - keep) // 2
        im = im.crop((off, 0, off + keep, h) if w > h else (0, off, w, off + keep))
    mode = im.mode
    if mode == "P":
        mode = "RGBA" if "transparency" in im.info else "RGB"
        im = im.convert(mode)
    if mode in dec["alpha"]["modes"]:
        rgba = im.convert("RGBA")
        out = Image.new("RGB", rgba.size, tuple(dec["alpha"]["composite_on"]))
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    if mode.startswith("I") or mode == "F":
        a = np.asarray(im)
        wide = dec["wide"]
        if mode == "F":
            a = a.astype(np.float64)
            if a.size and (a.min() < 0 or a.max() > 1):
                a = (a - a.min()) / max(float(a.max() - a.min()), 1e-12)
            a = a * wide["float_scale"]
        elif mode.startswith("I;16") or (a.size and a.max() > 255):
            a = np.clip(a.astype(np.float64), 0, 65535) / wide["integer_divisor"]
        im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    return im.convert("RGB")


def to_input(im: Image.Image, rules: dict) -> np.ndarray:
    """float32 [3, height, width]: resized, cropped and normalised by the rules."""
    rs, crop = rules["resize"], rules["crop"]
    w, h = im.size
    # cover the box with the aspect kept (rules version 1 had only the square's shorter side)
    bh, bw = rs["box"] if "box" in rs else (rs["shorter_side"], rs["shorter_side"])
    if bh * w >= bw * h:
        nh, nw = bh, max(bw, round(w * bh / h))
    else:
        nh, nw = max(bh, round(h * bw / w)), bw
    planes = [Image.fromarray(np.asarray(im)[..., c].astype(np.float32), "F") for c in range(3)]
    if (nh, nw) != (h, w):
        planes = [p.resize((nw, nh), FILTERS[rs["interpolation"]]) for p in planes]
    x = np.stack([np.asarray(p, dtype=np.float32) for p in planes])
    if rs["clamp"] is not None:
        x = np.clip(x, *rs["clamp"])
    top = (x.shape[1] - crop["height"]) // 2
    left = (x.shape[2] - crop["width"]) // 2
    x = x[:, top : top + crop["height"], left : left + crop["width"]]
    mean = np.asarray(rules["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(rules["std"], dtype=np.float32)[:, None, None]
    return ((x / np.float32(rules["scale"]) - mean) / std).astype(np.float32)


def main(model: str, images: list[str]) -> None:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    rules = json.loads(props["preprocessing"])
    assert rules["layout"] == "NCHW" and rules["channel_order"] == "RGB", rules
    for path in images:
        x = to_input(decode(path, rules), rules)[None]
        (logits,) = session.run([rules["output"]], {rules["input"]: x})
        z = logits[0].astype(np.float64)
        p = np.exp(z - z.max())
        print(json.dumps((p / p.sum()).tolist()))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
