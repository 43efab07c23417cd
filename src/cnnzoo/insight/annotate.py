"""Images with words on them: a prediction's label, the true label in green or red, a heat map.

Small images (CIFAR's 32 px, digits' 8 px) are enlarged by a whole factor with nearest
neighbours, so every pixel stays a sharp square, to at least `MIN_SIDE`; the text size follows
the picture's width, so it reads the same on a 64 px and a 1000 px image.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from cnnzoo.infer.predict import Prediction

MIN_SIDE = 224
GREEN, RED, YELLOW = (40, 200, 60), (230, 40, 40), (255, 230, 0)


def to_pil(image: torch.Tensor) -> Image.Image:
    """uint8 [C, H, W] (C = 1 or 3) as an RGB picture."""
    arr = image.detach().cpu().permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).convert("RGB")


def enlarge(im: Image.Image, min_side: int = MIN_SIDE) -> Image.Image:
    """A whole-number nearest-neighbour enlargement to at least `min_side` (no blur)."""
    if min(im.size) >= min_side:
        return im
    scale = -(-min_side // min(im.size))
    return im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)


def font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def draw_lines(im: Image.Image, lines: list[tuple[str, tuple[int, int, int]]]) -> Image.Image:
    """Write each (text, colour) line at the top left on a dark box; text height ~ width / 14."""
    im = im.copy()
    draw = ImageDraw.Draw(im)
    size = max(12, im.width // 14)
    f = font(size)
    pad = max(2, size // 5)
    y = pad
    for text, colour in lines:
        box = draw.textbbox((pad, y), text, font=f)
        draw.rectangle((box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad), fill=(0, 0, 0))
        draw.text((pad, y), text, fill=colour, font=f)
        y = box[3] + 2 * pad
    return im


def label_lines(
    predicted: str, prob: float, true: str | None = None
) -> list[tuple[str, tuple[int, int, int]]]:
    """The prediction (yellow when the truth is unknown), then the truth: green when the
    prediction is right, red when wrong."""
    if true is None:
        return [(f"{predicted} {100 * prob:.1f}%", YELLOW)]
    colour = GREEN if predicted == true else RED
    return [(f"{predicted} {100 * prob:.1f}%", colour), (f"true: {true}", colour)]


def heat_overlay(image: torch.Tensor, cam: torch.Tensor, alpha: float = 0.45) -> Image.Image:
    """`image` (uint8 [C, H, W]) blended with the 'jet' colouring of `cam` ([H, W] in [0, 1]),
    the image enlarged without blur, the smooth map bilinearly."""
    from matplotlib import colormaps

    base = enlarge(to_pil(image))
    colours = colormaps["jet"](cam.clamp(0, 1).numpy())[..., :3]
    heat = Image.fromarray((colours * 255).astype("uint8")).resize(
        base.size, Image.Resampling.BILINEAR
    )
    return Image.blend(base, heat, alpha)


def save(im: Image.Image, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def draw_prediction(
    image: torch.Tensor, pred: Prediction, path: str | Path, true: str | None = None
) -> None:
    """Save `image` (uint8 [C, H, W]) with its top class and probability written on it, and
    the true class when known (green when right, red when wrong). Small images are enlarged
    by a whole factor without blur; the text follows the picture's size."""
    name, _, prob = pred.top[0]
    save(draw_lines(enlarge(to_pil(image)), label_lines(name, prob, true)), path)
