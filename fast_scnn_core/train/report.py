"""What a run reports: TensorBoard scalars, metrics.json and PNG plots (loss and mIoU curves, class IoU, confusion).

Figures are built with matplotlib's object API (no pyplot): no global backend state, no GUI, the Agg
canvas renders the PNG. matplotlib is imported by the first plot, so a run with plots=false never loads it.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from fast_scnn_core.atomic import atomic_path, atomic_write_text
from fast_scnn_core.errors import StorageError
from fast_scnn_core.metrics import no_labelled_pixels, to_json


class TensorBoard:
    """run_dir/tensorboard through TensorBoard's SummaryWriter, where a failed write is one StorageError.

    The SummaryWriter writes from a thread of its own: an OSError there (disk full, file system turned
    read-only) is printed as that thread's traceback, then raised again by the next `add_scalar` and by
    `close`. Here it is one StorageError at the next call, like every other failed write of a run, and
    nothing after it (the thread's traceback is not printed; `close` after a failure is quiet).
    """

    def __init__(self, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imported here: tensorboard is slow to import

        self.folder = run_dir / "tensorboard"
        self.failed = False
        self._writer = SummaryWriter(str(self.folder))
        self._thread_hook = threading.excepthook
        threading.excepthook = self._quiet_writer_thread

    def _quiet_writer_thread(self, args: Any) -> None:
        """Leave out the writer thread's OSError traceback: the next call raises it as a StorageError."""
        if isinstance(args.exc_value, OSError) and type(args.thread).__name__ == "_AsyncWriterThread":
            return
        self._thread_hook(args)

    def _guard(self, write: Callable[[], None]) -> None:
        if self.failed:
            return
        try:
            write()
        except OSError as exc:
            self.failed = True
            raise StorageError(
                f"cannot write TensorBoard events in {self.folder}: {exc.strerror or exc}; "
                "the checkpoints written before are intact"
            ) from None

    def scalars(self, prefix: str, values: dict[str, float | None], iteration: int) -> None:
        """Scalars `<prefix>/<name>`; None and NaN (nothing to score) are left out."""

        def write() -> None:
            for name, value in values.items():
                if value is not None and not math.isnan(value):
                    self._writer.add_scalar(f"{prefix}/{name}", value, iteration)

        self._guard(write)

    def flush(self) -> None:
        self._guard(self._writer.flush)

    def close(self) -> None:
        """Flush and close; quiet when a write already failed (that failure is the one reported)."""
        try:
            if self.failed:
                with contextlib.suppress(OSError):
                    self._writer.close()
            else:
                self._guard(self._writer.close)
        finally:
            threading.excepthook = self._thread_hook


def report_validation(
    run_dir: Path,
    metrics: dict[str, Any],
    confusion: torch.Tensor,
    history: dict[str, list],
    writer: TensorBoard,
    plots: bool,
    split: str,
) -> None:
    """After a validation: TensorBoard scalars, metrics.json, plots (when `plots`), a line on stderr."""
    iteration = metrics["iteration"]
    writer.scalars("val", {key: metrics[key] for key in ("miou", "category_miou", "pixel_accuracy")}, iteration)
    writer.scalars("val_iou", metrics["class_iou"], iteration)
    writer.flush()
    latest = {**metrics, "confusion": confusion.cpu().tolist()}
    atomic_write_text(run_dir / "metrics.json", to_json({"latest": latest, "history": history}))
    if plots:
        plot_curves(history, run_dir / "plots" / "curves.png")
        title = f"per-class IoU, iteration {iteration}"
        plot_class_iou(metrics["class_iou"], run_dir / "plots" / "class_iou.png", title)
        plot_confusion(confusion.cpu().numpy(), list(metrics["class_iou"]), run_dir / "plots" / "confusion.png")
    if metrics["pixels"]:
        tqdm.write(f"iteration {iteration}: val mIoU {100 * metrics['miou']:.2f}%", file=sys.stderr)
    else:
        tqdm.write(f"iteration {iteration}: {no_labelled_pixels(split)}", file=sys.stderr)


def _figure(figsize: tuple[float, float]) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")


def plot_curves(history: dict[str, Any], path: Path) -> None:
    """Training loss per logged iteration (left) and validation mIoU / category mIoU (right)."""
    fig = _figure((11, 4))
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
    fig = _figure((7, 0.3 * len(names) + 1))
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
    fig = _figure((size + 1, size))
    ax = fig.subplots()
    image = ax.imshow(normalised, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="prediction", ylabel="ground truth", title="confusion (row-normalised)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    _save(fig, path)
