"""`explain`: class-activation maps of a checkpoint on image files, drawn over the images as
the model saw them (resized and cropped), with the class and its probability written on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from cnnzoo.data import load_image
from cnnzoo.errors import CnnzooError
from cnnzoo.infer.predict import Predictor
from cnnzoo.insight.annotate import draw_lines, heat_overlay, label_lines, save
from cnnzoo.insight.cam import CamExplainer


@dataclass
class Explanation:
    file: str
    class_name: str
    prob: float
    out: Path


def seen_images(x: torch.Tensor, mean, std) -> torch.Tensor:
    """Undo the normalisation of a preprocessed batch: uint8 [N, C, H, W] as the model saw it."""
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x * s + m).mul(255).round().clamp(0, 255).to(torch.uint8)


def class_index(classes: list[str], name: str | None) -> int | None:
    if name is None:
        return None
    if name in classes:
        return classes.index(name)
    shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
    raise CnnzooError(f"--class {name!r} is not one of the model's classes: {shown}")


def explain_images(
    predictor: Predictor,
    images: list[torch.Tensor],
    *,
    target: int | None = None,
    method: str = "gradcam",
    layer: str | None = None,
    explainer: CamExplainer | None = None,
):
    """(maps [N, H, W], seen uint8 images, CamResult) for uint8 [C, H, W] images of any size."""
    explainer = explainer or CamExplainer(predictor.model, layer, method)
    x = predictor.inputs(images)
    targets = None if target is None else torch.full((len(images),), target)
    result = explainer(x, targets)
    pre = predictor.preprocess
    return seen_images(x, pre.mean, pre.std).cpu(), result


def explain_files(
    predictor: Predictor,
    files: list[str],
    out_dir: str | Path,
    *,
    class_name: str | None = None,
    method: str = "gradcam",
    layer: str | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> tuple[list[Explanation], list[tuple[str, str]], str]:
    """Write OUT/NNNNN_STEM.png for each readable file: the image with its map and label (and
    the true class, green or red, for a file in a folder named after a class).
    Returns the explanations, the (file, reason) of unreadable files and the layer used."""

    target = class_index(predictor.classes, class_name)
    explainer = CamExplainer(predictor.model, layer, method)
    out_dir = Path(out_dir)
    done: list[Explanation] = []
    errors: list[tuple[str, str]] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(files), desc="explain", unit="image", leave=False)
    for start in range(0, len(files), batch_size):
        names, images = [], []
        for f in files[start : start + batch_size]:
            try:
                images.append(load_image(f))
                names.append(f)
            except CnnzooError as e:
                errors.append((f, str(e)))
        if images:
            seen, r = explain_images(predictor, images, target=target, explainer=explainer)
            for i, f in enumerate(names):
                name = predictor.classes[int(r.classes[i])]
                # a file in a folder named after a class: its true class, green or red
                true = Path(f).parent.name if Path(f).parent.name in predictor.classes else None
                lines = label_lines(name, float(r.probs[i]), true if target is None else None)
                picture = draw_lines(heat_overlay(seen[i], r.maps[i]), lines)
                path = out_dir / f"{len(done):05d}_{Path(f).stem}.png"
                save(picture, path)
                done.append(Explanation(f, name, float(r.probs[i]), path))
        if bar is not None:
            bar.update(len(files[start : start + batch_size]))
    if bar is not None:
        bar.close()
    return done, errors, explainer.layer or ""
