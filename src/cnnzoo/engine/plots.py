"""PNG figures (matplotlib, Agg backend): training curves and confusion matrices."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: list[dict], path: str | Path) -> None:
    """Loss (left) and accuracy (right) per epoch, train and validation (and EMA)."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    series = [
        ("train", "train_loss", "train_acc"),
        ("val", "val_loss", "val_acc"),
        ("val (EMA)", "ema_val_loss", "ema_val_acc"),
    ]
    for label, loss_key, acc_key in series:
        if any(r.get(loss_key) is not None for r in history):
            ax_loss.plot(epochs, [r.get(loss_key) for r in history], marker=".", label=label)
            ax_acc.plot(epochs, [r.get(acc_key) for r in history], marker=".", label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="top-1 accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(confusion: list[list[int]], classes: list[str], path: str | Path) -> None:
    """Row-normalised confusion matrix (true class by row), counts written in the cells when
    there are few classes."""
    import numpy as np

    plt = _pyplot()
    m = np.asarray(confusion, dtype=float)
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    c = len(classes)
    side = min(4 + 0.35 * c, 30)
    fig, ax = plt.subplots(figsize=(side, side))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    if c <= 30:
        ax.set_xticks(range(c), classes, rotation=90)
        ax.set_yticks(range(c), classes)
        for i in range(c):
            for j in range(c):
                if m[i, j]:
                    color = "white" if frac[i, j] > 0.5 else "black"
                    ax.text(j, i, int(m[i, j]), ha="center", va="center", color=color, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_accuracy_vs_speed(
    points: list[tuple[str, str, float, float, int]], path: str | Path, subtitle: str = ""
) -> None:
    """Published ImageNet top-1 against measured images/s (log scale), one named point per
    (model, family, images/s, top-1 %, parameters), coloured by family; the area of a point
    grows with its parameters."""
    plt = _pyplot()
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
    fig.savefig(path, dpi=110)
    plt.close(fig)
