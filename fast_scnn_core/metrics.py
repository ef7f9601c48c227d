"""Segmentation metrics: confusion matrix -> class IoU, class mIoU, category mIoU, pixel accuracy.

One implementation scores validation in training and `fast-scnn eval` (train/validate.py fills the
matrix). Protocol (Cityscapes' evaluation): IoU = TP / (TP + FP + FN) over the whole split, pixels
labelled 255 are ignored, a class with neither ground truth nor prediction is left out of the mean
(NaN). Category IoU merges classes into their categories (flat, construction, ...) before scoring.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch

from fast_scnn_core.labels import IGNORE_INDEX, ClassSet


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, C) int64 counts, rows = ground truth, columns = prediction; target 255 is ignored."""
    valid = target != IGNORE_INDEX
    index = target[valid].long() * num_classes + pred[valid].long()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_per_class(confusion: torch.Tensor) -> list[float]:
    """TP / (TP + FP + FN) per class; NaN where a class has no ground truth and no prediction."""
    confusion = confusion.double()
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    return [float(t / u) if u > 0 else math.nan for t, u in zip(tp.tolist(), union.tolist(), strict=True)]


def nanmean(values: list[float]) -> float:
    """Mean of the values that are not NaN (classes that were scored); NaN when there are none."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def category_confusion(confusion: torch.Tensor, categories: tuple[str, ...]) -> tuple[list[str], torch.Tensor]:
    """Merge class rows and columns into their categories (first-seen order)."""
    names = list(dict.fromkeys(categories))
    merge = torch.zeros(len(categories), len(names), dtype=confusion.dtype, device=confusion.device)
    for i, category in enumerate(categories):
        merge[i, names.index(category)] = 1
    return names, merge.T @ confusion @ merge


def metrics_from_confusion(confusion: torch.Tensor, classes: ClassSet) -> dict[str, Any]:
    """Class mIoU, category mIoU (when the class set has categories), per-class IoU and pixel accuracy."""
    confusion = confusion.cpu()
    class_iou = iou_per_class(confusion)
    total = int(confusion.sum())
    metrics: dict[str, Any] = {
        "miou": nanmean(class_iou),
        "category_miou": math.nan,
        "pixel_accuracy": float(confusion.diag().sum()) / total if total else math.nan,
        "class_iou": dict(zip(classes.names, class_iou, strict=True)),
        "category_iou": {},
        "pixels": total,
    }
    if classes.categories:
        names, merged = category_confusion(confusion, classes.categories)
        category_iou = iou_per_class(merged)
        metrics["category_iou"] = dict(zip(names, category_iou, strict=True))
        metrics["category_miou"] = nanmean(category_iou)
    return metrics


def no_labelled_pixels(split: str) -> str:
    """What a score over a split whose labels are all 255 means (Cityscapes withholds its test labels)."""
    return (
        f"the {split} split has no labelled pixels (every label is {IGNORE_INDEX}, as in Cityscapes' test split, "
        "whose labels are withheld): no mIoU; score a split with labels (val), or submit test predictions "
        "to the benchmark server"
    )


def format_table(metrics: dict[str, Any]) -> str:
    """Per-class IoU, then the summary, as a plain-text table."""

    def pct(v: float) -> str:
        return "   n/a" if math.isnan(v) else f"{100 * v:6.2f}"

    width = max(len(n) for n in [*metrics["class_iou"], "category mIoU"])
    lines = [f"{'class':<{width}}  IoU %", "-" * (width + 8)]
    lines += [f"{name:<{width}}  {pct(v)}" for name, v in metrics["class_iou"].items()]
    lines.append("-" * (width + 8))
    if metrics["category_iou"]:
        lines += [f"{name:<{width}}  {pct(v)}" for name, v in metrics["category_iou"].items()]
        lines.append("-" * (width + 8))
    lines.append(f"{'class mIoU':<{width}}  {pct(metrics['miou'])}")
    if metrics["category_iou"]:
        lines.append(f"{'category mIoU':<{width}}  {pct(metrics['category_miou'])}")
    lines.append(f"{'pixel accuracy':<{width}}  {pct(metrics['pixel_accuracy'])}")
    return "\n".join(lines)


def to_json(metrics: dict[str, Any]) -> str:
    """JSON with NaN written as null (strict JSON has no NaN)."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(metrics), indent=2) + "\n"
