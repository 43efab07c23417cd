"""PNG figures (matplotlib, Agg backend): training curves and confusion matrices."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cnnzoo.artifacts.files import staged
from cnnzoo.errors import CnnzooError


def pyplot():
    # matplotlib is slow to import; only pictures need it
    import matplotlib

    matplotlib.use("Agg", force=True)
    # matplotlib is slow to import; only pictures need it
    import matplotlib.pyplot as plt

    return plt


def run_title(
    model: str, data: str, history: list[dict], best_val_acc: float, best_epoch: int
) -> str:
    """'MODEL on DATA: best val acc X% (epoch N)' for a run's curves."""
    title = f"{model} on {Path(data).name or data}"
    if math.isfinite(best_val_acc) and history and history[-1].get("val_acc") is not None:
        title += f": best val acc {best_val_acc:.2f}% (epoch {best_epoch})"
    return title


def plot_curves(history: list[dict], path: str | Path, title: str = "") -> None:
    """Save `curves_figure` as a PNG."""
    save_figure(curves_figure(history, title), path)


def save_figure(fig, path: str | Path, **kwargs) -> None:
    """`fig` written to `path` through the one file writer (temp file, checks, rename); the
    format is the suffix's (png without one)."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    try:
        with staged(path, hint="then try again") as tmp:
            fig.savefig(tmp, format=fmt, dpi=100, **kwargs)
    except ValueError as e:  # a format matplotlib does not write
        raise CnnzooError(f"cannot write {path}: {str(e).splitlines()[0]}") from None
    finally:
        pyplot().close(fig)


def _mark_crop_sizes(ax, history: list[dict]) -> None:
    """With --progressive: the accuracy panel's epoch ticks sit where the training crop side
    changes and name it (why the early epochs look the way they do)."""
    changes, last = [], None
    for r in history:
        size = r.get("train_size")
        if size and size != last:
            changes.append((r["epoch"], size))
        last = size
    if changes:
        ax.set_xticks([e for e, _ in changes], labels=[f"{e}\n{s}px" for e, s in changes])
        ax.set_xlabel("epoch, training crop side")


def curves_figure(history: list[dict], title: str = ""):
    """Loss, accuracy and learning rate per epoch (train, validation, EMA), whole-number
    epoch ticks, `title` above (model, data, best accuracy)."""
    # matplotlib is slow to import; only pictures need it
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(
        1, 3, figsize=(14, 4.2), gridspec_kw={"width_ratios": [1, 1, 0.7]}
    )
    series = [
        ("train", "train_loss", "train_acc"),
        ("val", "val_loss", "val_acc"),
        ("val (EMA)", "ema_val_loss", "ema_val_acc"),
    ]
    for label, loss_key, acc_key in series:
        if any(r.get(loss_key) is not None for r in history):
            ax_loss.plot(epochs, [r.get(loss_key) for r in history], marker=".", label=label)
            ax_acc.plot(epochs, [r.get(acc_key) for r in history], marker=".", label=label)
    best = [r for r in history if r.get("is_best") and r.get("val_acc") is not None]
    if best:
        b = best[-1]
        acc = max(b.get("val_acc") or -1, b.get("ema_val_acc") or -1)
        ax_acc.plot([b["epoch"]], [acc], "*", color="C3", ms=12, label=f"best {acc:.2f}%")
    ax_lr.plot(epochs, [r.get("lr") for r in history], marker=".", color="C4")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="top-1 accuracy")
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="learning rate (last step)")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    _mark_crop_sizes(ax_acc, history)
    ax_loss.legend()
    ax_acc.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion(
    confusion: list[list[int]],
    classes: list[str],
    path: str | Path,
    title: str = "confusion matrix",
    normalise: bool = True,
) -> None:
    """Save `confusion_figure` as a PNG."""
    save_figure(confusion_figure(confusion, classes, title, normalise), path)


def confusion_figure(
    confusion: list[list[int]],
    classes: list[str],
    title: str = "confusion matrix",
    normalise: bool = True,
):
    """Confusion matrix, true class by row. `normalise`: each row as fractions of its true
    class (colour and cell text); else the image counts. Cells are written when there are
    at most 30 classes."""

    plt = pyplot()
    m = np.asarray(confusion, dtype=float)
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    shown = frac if normalise else m
    c = len(classes)
    side = min(3.5 + 0.33 * c, 30)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    vmax = 1.0 if normalise else max(1.0, float(m.max()))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=vmax)
    if c <= 30:
        ax.set_xticks(range(c), classes, rotation=90)
        ax.set_yticks(range(c), classes)
        for i in range(c):
            for j in range(c):
                if m[i, j]:
                    text = f"{frac[i, j]:.2f}" if normalise else str(int(m[i, j]))
                    color = "white" if shown[i, j] > 0.5 * vmax else "black"
                    size = 9 if c <= 12 else 7
                    ax.text(j, i, text, ha="center", va="center", color=color, fontsize=size)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("fraction of the true class's images" if normalise else "images")
    fig.tight_layout()
    return fig


def plot_accuracy_vs_speed(
    points: list[tuple[str, str, float, float, int]], path: str | Path, subtitle: str = ""
) -> None:
    """Published ImageNet top-1 against measured images/s (log scale), one named point per
    (model, family, images/s, top-1 %, parameters), coloured by family; the area of a point
    grows with its parameters."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 7))
    families = sorted({family for _, family, *_ in points})
    palette = [*plt.cm.tab10.colors, *plt.cm.Dark2.colors]  # 18 distinct colours
    colors = {f: palette[i % len(palette)] for i, f in enumerate(families)}
    for family in families:
        mine = [p for p in points if p[1] == family]
        ax.scatter(
            [p[2] for p in mine],
            [p[3] for p in mine],
            s=[p[4] / 2e5 for p in mine],
            color=colors[family],
            alpha=0.6,
            edgecolors="k",
            label=family,
        )
        for name, _, speed, top1, _ in mine:
            ax.annotate(name, (speed, top1), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set(
        xlabel="measured throughput (images/s, log scale)",
        ylabel="published ImageNet-1K top-1 (%)",
        title="accuracy against speed" + (f"\n{subtitle}" if subtitle else ""),
    )
    ax.grid(alpha=0.3, which="both")
    legend = ax.legend(loc="lower left", fontsize=8, markerscale=0.5)
    for handle in legend.legend_handles:
        handle.set_sizes([30])
    fig.tight_layout()
    save_figure(fig, path)


def accuracy_cost_figure(points: list[tuple[str, str, float, float, int]], subtitle: str = ""):
    """Seed 004's classic picture of the zoo: published ImageNet top-1 against multiply-adds
    per image (log scale), one bubble per (model, family, GMACs, top-1 %, parameters), its
    area the parameters, coloured (and shaped) by family; each bubble named, the names placed
    where they overlap the fewest others."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(16, 10))
    families = sorted({family for _, family, *_ in points})
    palette = [*plt.cm.tab10.colors, *plt.cm.Dark2.colors, *plt.cm.Set1.colors]
    per_param = 3000 / max(p[4] for p in points)  # pt^2: the largest model's bubble 3000
    shapes = "oooooooooosssssssssDDDDDDDDD"  # a second shape where the colours come round again
    for i, family in enumerate(families):
        mine = [p for p in points if p[1] == family]
        ax.scatter(
            [p[2] for p in mine],
            [p[3] for p in mine],
            s=[p[4] * per_param for p in mine],
            color=palette[i % len(palette)],
            marker=shapes[i % len(shapes)],
            alpha=0.55,
            edgecolors="k",
            linewidths=0.6,
            label=family,
            zorder=2,
        )
    ax.set_xscale("log")
    ax.margins(x=0.06, y=0.06)
    ax.set(
        xlabel="multiply-adds per image at the model's native input size (GMACs, log scale)",
        ylabel="published ImageNet-1K top-1 (%)",
        title="accuracy against cost: the zoo\n"
        + (subtitle or "bubble area: parameters; top-1 of each model's default published weights"),
    )
    ax.grid(alpha=0.3, which="both")
    legend = ax.legend(
        loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9, title="family", frameon=False
    )
    for handle in legend.legend_handles:
        handle.set_sizes([50])
    fig.tight_layout()
    _place_labels(fig, ax, [(p[0], p[2], p[3], p[4] * per_param) for p in points])
    return fig


def plot_accuracy_vs_cost(
    points: list[tuple[str, str, float, float, int]], path: str | Path, subtitle: str = ""
) -> None:
    """Save `accuracy_cost_figure` as a PNG."""
    save_figure(accuracy_cost_figure(points, subtitle), path)


def _place_labels(fig, ax, items: list[tuple[str, float, float, float]]) -> None:
    """Name each point (name, x, y, marker area in pt^2): of a few places around it, the one
    whose text box overlaps the fewest already placed names and other points' markers (and
    stays inside the axes), greedy from the most crowded points first. matplotlib has no
    placement of its own; this keeps an 80-point figure readable."""
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    box = ax.get_window_extent(renderer)
    scale = fig.dpi / 72
    centres = np.array([to_px((x, y)) for _, x, y, _ in items])
    radii = np.array([math.sqrt(area / math.pi) * scale for *_, area in items])

    def crowd(i):
        d = np.hypot(*(centres - centres[i]).T)
        return int((d < 60 * scale).sum())

    placed: list[tuple[float, float, float, float]] = []
    for i in sorted(range(len(items)), key=crowd, reverse=True):
        name, x, y, _ = items[i]
        r = radii[i] / scale + 1.5  # points
        best = None
        for dx, dy, ha, va in _label_places(r):
            t = ax.annotate(name, (x, y), xytext=(dx, dy), textcoords="offset points",
                            fontsize=7, ha=ha, va=va, zorder=3)  # fmt: skip
            e = t.get_window_extent(renderer)
            t.remove()
            x0, y0, x1, y1 = e.x0, e.y0, e.x1, e.y1
            cost = sum(
                max(0, min(x1, a1) - max(x0, a0)) * max(0, min(y1, b1) - max(y0, b0))
                for a0, b0, a1, b1 in placed
            )
            for j, (cx, cy) in enumerate(centres):
                if j != i:  # a marker under the text: its overlap with the text box
                    ox = max(0, min(x1, cx + radii[j]) - max(x0, cx - radii[j]))
                    oy = max(0, min(y1, cy + radii[j]) - max(y0, cy - radii[j]))
                    cost += 0.5 * ox * oy
            if x0 < box.x0 or x1 > box.x1 or y0 < box.y0 or y1 > box.y1:
                cost += 1e6
            if best is None or cost < best[0]:
                best = (cost, dx, dy, ha, va, (x0, y0, x1, y1))
            if cost == 0:
                break
        _, dx, dy, ha, va, extent = best
        far = math.hypot(dx, dy) > r * 1.5 + 1  # away from its bubble: a thin line to it
        line = {"arrowprops": {"arrowstyle": "-", "lw": 0.4, "color": "0.4"}} if far else {}
        ax.annotate(name, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=7,
                    ha=ha, va=va, zorder=3, **line)  # fmt: skip
        placed.append(extent)


def _label_places(r: float) -> list[tuple[float, float, str, str]]:
    """Offsets (points) and alignments for a name beside a bubble of radius `r` points:
    the four diagonals and above / below first, then the same further out."""
    places = []
    for gap in (0, 10, 22, 36):
        d = r + gap
        places += [
            (d * 0.9, d * 0.3, "left", "bottom"),
            (d * 0.9, -d * 0.3, "left", "top"),
            (-d * 0.9, d * 0.3, "right", "bottom"),
            (-d * 0.9, -d * 0.3, "right", "top"),
            (0, d, "center", "bottom"),
            (0, -d, "center", "top"),
            (d * 0.7, d * 0.7, "left", "bottom"),
            (-d * 0.7, -d * 0.7, "right", "top"),
            (d * 0.7, -d * 0.7, "left", "top"),
            (-d * 0.7, d * 0.7, "right", "bottom"),
        ]
    return places
