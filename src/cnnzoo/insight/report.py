"""The error report of an evaluation: per-class precision / recall / F1, the most confused class
pairs, the images with the highest loss (with their class-activation maps), and one
self-contained HTML page (every picture embedded) that puts them together with the run's
training curves and confusion matrices."""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnzoo.artifacts.sidecar import CURVES_FILE
from cnnzoo.insight.annotate import draw_lines, enlarge, heat_overlay, label_lines, to_pil
from cnnzoo.insight.cam import CamExplainer
from cnnzoo.insight.explain import seen_images
from cnnzoo.insight.plots import plot_confusion


def class_metrics(confusion: list[list[int]], classes: list[str]) -> dict[str, dict[str, float]]:
    """name -> precision, recall, f1 (percent; NaN when undefined) and support (true images);
    plus 'macro avg' over the classes that have images."""
    m = torch.tensor(confusion, dtype=torch.float64)
    tp = m.diag()
    predicted, actual = m.sum(0), m.sum(1)
    out: dict[str, dict[str, float]] = {}
    for i, name in enumerate(classes):
        p = 100 * float(tp[i] / predicted[i]) if predicted[i] else math.nan
        r = 100 * float(tp[i] / actual[i]) if actual[i] else math.nan
        f1 = (
            2 * p * r / (p + r)
            if p == p and r == r and p + r > 0
            else (0.0 if p == p else math.nan)
        )
        out[name] = {"precision": p, "recall": r, "f1": f1, "support": int(actual[i])}
    rows = [v for v in out.values() if v["support"]]
    if rows:
        mean = lambda k: sum(0.0 if math.isnan(v[k]) else v[k] for v in rows) / len(rows)  # noqa: E731
        out["macro avg"] = {k: mean(k) for k in ("precision", "recall", "f1")}
        out["macro avg"]["support"] = sum(v["support"] for v in rows)
    return out


def confused_pairs(confusion: list[list[int]], classes: list[str], k: int = 10) -> list[dict]:
    """The `k` largest off-diagonal cells: true class, predicted class, images, and the share of
    the true class's images that went there."""
    m = torch.tensor(confusion, dtype=torch.long)
    off = m.clone()
    off.fill_diagonal_(0)
    flat = off.flatten()
    order = flat.argsort(descending=True, stable=True)[:k]
    c = len(classes)
    pairs = []
    for idx in order.tolist():
        n = int(flat[idx])
        if n == 0:
            break
        t, p = divmod(idx, c)
        pairs.append({"true": classes[t], "predicted": classes[p], "count": n,
                      "share": 100.0 * n / max(1, int(m[t].sum()))})  # fmt: skip
    return pairs


@dataclass
class TopLoss:
    index: int  # into the evaluated images
    true: int
    predicted: int
    prob: float  # of the predicted class
    true_prob: float
    loss: float


def top_losses(logits: torch.Tensor, labels: torch.Tensor, k: int = 16) -> list[TopLoss]:
    """The `k` images the model is most wrong about (highest cross-entropy), worst first."""
    labels = labels.cpu().long()
    losses = F.cross_entropy(logits, labels, reduction="none")
    probs = logits.softmax(1)
    out = []
    for i in losses.argsort(descending=True)[:k].tolist():
        pred = int(probs[i].argmax())
        out.append(TopLoss(i, int(labels[i]), pred, float(probs[i, pred]),
                           float(probs[i, labels[i]]), float(losses[i])))  # fmt: skip
    return out


def top_loss_tiles(images: torch.Tensor, losses: list[TopLoss], classes: list[str]) -> list:
    """One labelled picture per top loss: predicted class and probability, then the truth
    (red when wrong, green when right)."""

    tiles = []
    for t in losses:
        lines = label_lines(classes[t.predicted], t.prob, classes[t.true])
        tiles.append(draw_lines(enlarge(to_pil(images[t.index])), lines))
    return tiles


def grid(tiles: list, columns: int = 4, gap: int = 4):
    """Tiles of one size side by side, `columns` per row, on white."""
    from PIL import Image

    if not tiles:
        return Image.new("RGB", (1, 1), "white")
    w, h = tiles[0].size
    rows = -(-len(tiles) // columns)
    cols = min(columns, len(tiles))
    out = Image.new("RGB", (cols * w + (cols - 1) * gap, rows * h + (rows - 1) * gap), "white")
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        out.paste(tile.resize((w, h)), (c * (w + gap), r * (h + gap)))
    return out


def cam_tiles(ev, losses: list[TopLoss], classes: list[str]) -> tuple[list[tuple], str | None]:
    """(map of the predicted class, map of the true class) over each top-loss image, and the
    layer the maps were read at."""

    model = ev.model
    if (
        not losses
        or not isinstance(model, torch.nn.Module)
        or next(model.parameters(), None) is None
    ):
        return [], None  # nothing to explain, or a model run by another runtime (ONNX)
    dev = next(model.parameters()).device
    x = ev.preprocess(ev.images[[t.index for t in losses]].to(dev))
    explainer = CamExplainer(model)
    pred = explainer(x, torch.tensor([t.predicted for t in losses]))
    true = explainer(x, torch.tensor([t.true for t in losses]))
    seen = seen_images(x, ev.preprocess.mean, ev.preprocess.std).cpu()
    out = []
    white = (255, 255, 255)
    for i, t in enumerate(losses):
        a = draw_lines(heat_overlay(seen[i], pred.maps[i]), [(classes[t.predicted] + "?", white)])
        b = draw_lines(heat_overlay(seen[i], true.maps[i]), [(classes[t.true] + "?", white)])
        out.append((a, b))
    return out, explainer.layer


def png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1180px;color:#222;padding:0 16px}
h1{font-size:24px;margin-bottom:4px} h2{font-size:19px;margin-top:32px;border-bottom:1px solid #ddd}
.sub{color:#666;margin-top:0} table{border-collapse:collapse;font-size:14px}
td,th{padding:3px 10px;text-align:right;border-bottom:1px solid #eee} th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left} .big{font-size:30px;font-weight:600}
.cards{display:flex;gap:28px;flex-wrap:wrap} .card{min-width:120px}
.card .label{color:#666;font-size:13px} img{max-width:100%;height:auto}
.losses{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:14px}
.loss{border:1px solid #ddd;padding:6px;border-radius:6px} .loss img{width:32%;image-rendering:pixelated}
.loss p{margin:4px 0;font-size:13px} .wrong{color:#c22} .pair{display:flex;gap:20px;flex-wrap:wrap}
.pair img{max-width:560px}
"""

# counts the pictures that decoded, so a headless browser can tell (in the title) that all did
SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;
  document.title = document.title + ' [' + ok + '/' + imgs.length + ' images]';
});
"""


def render_html(report: dict, pictures: dict[str, bytes], losses: list[dict]) -> str:
    """The page: headline figures, per-class table, confused pairs, curves, confusion
    matrices, top losses (image, map of the predicted class, map of the true class)."""
    e = html.escape
    title = f"{report['model']} on {Path(report['data']).name or report['data']}: {report['split_name']}"
    cards = [("top-1 accuracy", f"{report['top1']:.2f}%"), ("images", f"{report['n']:,}"),
             ("loss", f"{report['loss']:.4f}")]  # fmt: skip
    if report.get("top5") is not None:
        cards.insert(1, ("top-5 accuracy", f"{report['top5']:.2f}%"))
    macro = report["class_metrics"].get("macro avg")
    if macro:
        cards.append(("macro F1", f"{macro['f1']:.1f}%"))
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>",
        f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p class='sub'>checkpoint {e(str(report['checkpoint']))}, epoch {report.get('epoch')}"
        + (", flip TTA" if report.get("tta") else "")
        + "</p><div class='cards'>",
        *[
            f"<div class='card'><div class='label'>{k}</div><div class='big'>{v}</div></div>"
            for k, v in cards
        ],  # fmt: skip
        "</div><h2>Per class</h2><table><tr><th>class</th><th>precision %</th><th>recall %</th>"
        "<th>F1 %</th><th>images</th></tr>",
    ]
    for name, m in report["class_metrics"].items():
        row = f"<td>{e(name)}</td>" + "".join(
            f"<td>{_fmt(m[k])}</td>" for k in ("precision", "recall", "f1")
        )
        parts.append(f"<tr>{row}<td>{m['support']:,}</td></tr>")
    parts.append("</table><h2>Most confused pairs</h2>")
    if report["confused_pairs"]:
        parts.append("<table><tr><th>true class</th><th>predicted as</th><th>images</th>"
                     "<th>% of the true class</th></tr>")  # fmt: skip
        for p in report["confused_pairs"]:
            parts.append(f"<tr><td>{e(p['true'])}</td><td>{e(p['predicted'])}</td>"
                         f"<td>{p['count']}</td><td>{p['share']:.1f}</td></tr>")  # fmt: skip
        parts.append("</table>")
    else:
        parts.append("<p>No mistakes.</p>")
    if "curves" in pictures:
        parts += [
            "<h2>Training</h2>",
            f"<img alt='training curves' src='{data_uri(pictures['curves'])}'>",
        ]
    parts += ["<h2>Confusion matrix</h2><div class='pair'>"]
    for key, alt in (
        ("confusion", "normalised confusion matrix"),
        ("confusion_counts", "confusion matrix, counts"),
    ):
        if key in pictures:
            parts.append(f"<img alt='{alt}' src='{data_uri(pictures[key])}'>")
    parts.append("</div>")
    if losses:
        layer = report.get("cam_layer")
        where = f" (Grad-CAM at {e(layer)})" if layer else ""
        parts.append(f"<h2>Top losses: the images the model is most wrong about{where}</h2>"
                     "<p>Each: the image; where the model found its prediction; where it found "
                     "the true class.</p><div class='losses'>")  # fmt: skip
        for item in losses:
            imgs = "".join(f"<img alt='{e(a)}' src='{data_uri(b)}'>" for a, b in item["pictures"])
            cls = "wrong" if item["true"] != item["predicted"] else ""
            parts.append(
                f"<div class='loss'>{imgs}<p class='{cls}'>true <b>{e(item['true'])}</b>, "
                f"predicted <b>{e(item['predicted'])}</b> {100 * item['prob']:.1f}% "
                f"(true class {100 * item['true_prob']:.1f}%, loss {item['loss']:.2f})</p></div>"
            )
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_error_report(ev, logits: torch.Tensor, report: dict, stem: Path, top_k: int = 16) -> dict:
    """Add the error analysis to `report` and write its pictures and page beside `stem`:
    STEM-confusion.png (normalised), STEM-confusion-counts.png, STEM-top-losses.png and
    STEM.html. Returns the report."""

    classes = report["classes"]
    report["class_metrics"] = class_metrics(report["confusion"], classes)
    report["confused_pairs"] = confused_pairs(report["confusion"], classes)
    losses = top_losses(logits, ev.labels, top_k)
    report["top_losses"] = [
        {"index": t.index, "true": classes[t.true], "predicted": classes[t.predicted],
         "prob": t.prob, "true_prob": t.true_prob, "loss": t.loss,
         "file": _source_file(ev, t.index)}
        for t in losses
    ]  # fmt: skip
    files = {
        "confusion": stem.with_name(stem.name + "-confusion.png"),
        "confusion_counts": stem.with_name(stem.name + "-confusion-counts.png"),
        "top_losses": stem.with_name(stem.name + "-top-losses.png"),
        "html": stem.with_name(stem.name + ".html"),
    }
    tta = ", flip TTA" if report.get("tta") else ""
    name = Path(report["data"]).name or report["data"]
    head = f"{report['model']} on {name} {report['split_name']}{tta}: top-1 {report['top1']:.2f}%"
    plot_confusion(report["confusion"], classes, files["confusion"], head, normalise=True)
    plot_confusion(report["confusion"], classes, files["confusion_counts"], head, normalise=False)
    tiles = top_loss_tiles(ev.images, losses, classes)
    grid(tiles).save(files["top_losses"])
    cams, layer = cam_tiles(ev, losses[:12], classes)
    report["cam_layer"] = layer
    pictures = {k: files[k].read_bytes() for k in ("confusion", "confusion_counts")}
    curves = Path(report["checkpoint"]).parent / CURVES_FILE
    if curves.is_file():
        pictures["curves"] = curves.read_bytes()
    cards = []

    for item, t, pair in zip(report["top_losses"], losses, cams, strict=False):
        plain = enlarge(to_pil(ev.images[t.index]))
        shots = [("image", png_bytes(plain)), ("map of the predicted class", png_bytes(pair[0])),
                 ("map of the true class", png_bytes(pair[1]))]  # fmt: skip
        cards.append({**item, "pictures": shots})
    report["files"] = {k: str(v) for k, v in files.items()}
    files["html"].write_text(render_html(report, pictures, cards), encoding="utf-8")
    return report


def _source_file(ev, index: int) -> str | None:
    paths = getattr(ev, "paths", None)
    return paths[index] if paths else None
