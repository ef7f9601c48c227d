"""PNG plots of a training run (matplotlib, Agg canvas): loss and mIoU curves, per-class IoU, confusion."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from fast_scnn_core.atomic import atomic_path

# Figures are built with matplotlib's object API (no pyplot): no global backend state, no GUI,
# the Agg canvas renders the PNG.


def _save(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")


def plot_curves(history: dict[str, Any], path: Path) -> None:
    """Training loss per logged iteration (left) and validation mIoU / category mIoU (right)."""
    fig = Figure(figsize=(11, 4))
    ax_loss, ax_miou = fig.subplots(1, 2)
    if history["train"]:
        iterations, losses = zip(*history["train"], strict=True)
        ax_loss.plot(iterations, losses, lw=1)
    ax_loss.set(xlabel="iteration", ylabel="training loss (main + 0.4 aux)", title="loss")
    ax_loss.grid(alpha=0.3)
    val = history["val"]
    if val:
        iterations = [v["iteration"] for v in val]
        ax_miou.plot(iterations, [100 * v["miou"] for v in val], "o-", label="class mIoU")
        if not all(math.isnan(v["category_miou"]) for v in val):
            ax_miou.plot(iterations, [100 * v["category_miou"] for v in val], "s-", label="category mIoU")
        ax_miou.legend()
    ax_miou.set(xlabel="iteration", ylabel="%", title="validation mIoU", ylim=(0, 100))
    ax_miou.grid(alpha=0.3)
    _save(fig, path)


def plot_class_iou(class_iou: dict[str, float], path: Path, title: str = "per-class IoU") -> None:
    """Horizontal bars of IoU per class (classes without pixels shown as n/a)."""
    names = list(class_iou)
    values = [0.0 if math.isnan(v) else 100 * v for v in class_iou.values()]
    fig = Figure(figsize=(7, 0.3 * len(names) + 1))
    ax = fig.subplots()
    ax.barh(range(len(names)), values, color="tab:blue")
    for i, v in enumerate(class_iou.values()):
        ax.text(1, i, "n/a" if math.isnan(v) else f"{100 * v:.1f}", va="center", fontsize=8)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set(xlim=(0, 100), xlabel="IoU %", title=title)
    _save(fig, path)


def plot_confusion(confusion: np.ndarray, names: list[str], path: Path) -> None:
    """Row-normalised confusion matrix (rows = ground truth), so each row shows where a class goes."""
    confusion = np.asarray(confusion, dtype=np.float64)
    rows = confusion.sum(1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    size = 0.4 * len(names) + 2
    fig = Figure(figsize=(size + 1, size))
    ax = fig.subplots()
    image = ax.imshow(normalised, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="prediction", ylabel="ground truth", title="confusion (row-normalised)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    _save(fig, path)
