"""`fast-scnn eval`: confusion matrix -> class IoU, class mIoU, category mIoU, pixel accuracy.

The same functions score validation during training (train.py), so there is one implementation.
Protocol (Cityscapes' evaluation): IoU = TP / (TP + FP + FN) over the whole split, pixels labelled
255 are ignored, a class with neither ground truth nor prediction is left out of the mean (NaN).
Category IoU merges classes into their categories (flat, construction, ...) before scoring.
`--input-scale 0.5` reproduces the paper's Table 7: infer on the downsampled image, score at the
label resolution. `--zero-skip` is the skip-connection ablation (sec. 4.2).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from fast_scnn_core.atomic import atomic_write_text
from fast_scnn_core.data import BUILDERS, DataConfig, build_dataset
from fast_scnn_core.data.dataset import SegmentationDataset, identity_lookup, read_class_ids, worker_error
from fast_scnn_core.data.transforms import normalize
from fast_scnn_core.device import resolve_device
from fast_scnn_core.errors import CheckpointError, ConfigError, DataError
from fast_scnn_core.infer.options import add_option_argument
from fast_scnn_core.labels import IGNORE_INDEX, ClassSet
from fast_scnn_core.model.checkpoint import build_model, class_set_of, load_checkpoint


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


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    dataset: SegmentationDataset,
    device: torch.device,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    input_scale: float = 1.0,
    workers: int = 0,
    progress: bool = False,
) -> torch.Tensor:
    """Confusion matrix of `model` over `dataset` (one full image at a time, scored at label size).

    Under torch.distributed each process scores every world_size-th image and the matrices are summed.
    """
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    indices = list(range(rank, len(dataset), world))
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, sampler=indices, num_workers=workers)
    was_training = model.training
    model.eval()
    num_classes = dataset.classes.num_classes
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    try:
        for image, target in tqdm(loader, desc="eval", disable=not progress, leave=False):
            image, target = image.to(device, non_blocking=True), target.to(device, non_blocking=True)
            x = normalize(image, mean, std)
            size = x.shape[-2:]
            if input_scale != 1.0:
                small = (max(1, round(size[0] * input_scale)), max(1, round(size[1] * input_scale)))
                x = F.interpolate(x, size=small, mode="bilinear", align_corners=False, antialias=True)
            logits = model(x)
            if logits.shape[-2:] != size:
                logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            confusion += confusion_matrix(logits.argmax(1), target, num_classes)
    except DataError as exc:
        raise worker_error(exc) from None
    finally:
        model.train(was_training)
    if world > 1:
        dist.all_reduce(confusion)
    return confusion


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


def score_predictions(dataset: SegmentationDataset, folder: Path) -> torch.Tensor:
    """Confusion matrix of saved predictions over `dataset`, found by name under `folder` (recursively).

    For the image `<name>.<ext>`: `<name>_labels.png` holds class ids (`fast-scnn predict`), or
    `<name>.png` holds ids like the dataset's label files (Cityscapes labelIds: `predict --label-ids`).
    The search by name is cityscapesScripts': the layout under `folder` does not matter.
    """
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.png")):
        if path.name in found:
            raise DataError(f"{folder}: two predictions named {path.name} ({found[path.name]} and {path})")
        found[path.name] = path
    if not found:
        raise DataError(f"{folder}: no prediction PNGs; write them with `fast-scnn predict`")
    num_classes = dataset.classes.num_classes
    class_ids = identity_lookup(dataset.classes)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for pair in tqdm(dataset.pairs, desc="eval", leave=False):
        name = pair.image.stem
        if path := found.get(f"{name}_labels.png"):
            pred = read_class_ids(path, class_ids, f"class ids 0..{num_classes - 1}")
        elif path := found.get(f"{name}.png"):
            pred = dataset.class_ids(path)
        else:
            raise DataError(f"{folder}: no prediction {name}_labels.png or {name}.png for {pair.image}")
        target = dataset.class_ids(pair.label)
        if pred.shape != target.shape:
            raise DataError(
                f"{path}: prediction is {pred.shape[1]}x{pred.shape[0]}, its label {pair.label} is "
                f"{target.shape[1]}x{target.shape[0]}; expected the same size"
            )
        if (pred == IGNORE_INDEX).any():
            raise DataError(
                f"{path}: predicts classes that are not scored (ignored); expected one of the "
                f"{num_classes} classes at every pixel"
            )
        confusion += confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), num_classes)
    return confusion


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default="", help="checkpoint to run (e.g. runs/x/best.pt)")
    parser.add_argument(
        "--predictions",
        default="",
        help="score saved predictions instead of running a checkpoint: a folder of `fast-scnn predict` outputs "
        "(<image name>_labels.png, or <image name>.png from --label-ids), searched recursively",
    )
    parser.add_argument("--data", required=True, help="dataset root (Cityscapes layout or images/ + masks/)")
    parser.add_argument("--format", choices=tuple(BUILDERS), default="cityscapes", help="dataset layout")
    parser.add_argument("--split", default="val", help="split to score (default: val)")
    parser.add_argument("--classes", default="", help="folder format: class YAML (default: the checkpoint's classes)")
    parser.add_argument(
        "--input-scale",
        type=float,
        default=1.0,
        help="infer on the image resized by this factor, score at label resolution (paper Table 7: 0.5, 0.25)",
    )
    parser.add_argument("--zero-skip", action="store_true", help="zero the skip connection (ablation, sec. 4.2)")
    add_option_argument(parser, "device")
    parser.add_argument("--workers", type=int, default=2, help="data loading processes (default: 2)")
    parser.add_argument(
        "--out", default="", help="metrics JSON (default: <checkpoint or predictions>.eval-<split>.json)"
    )


def _check_arguments(args: argparse.Namespace) -> None:
    if not args.checkpoint and not args.predictions:
        raise ConfigError("give --checkpoint (run a model) or --predictions (score saved predictions)")
    if not 0.0 < args.input_scale <= 4.0:
        raise ConfigError(f"--input-scale {args.input_scale}: expected a factor in (0, 4], e.g. 0.5 or 0.25")
    if args.predictions and (args.input_scale != 1.0 or args.zero_skip):
        raise ConfigError(
            "--input-scale and --zero-skip change how a checkpoint runs; --predictions are scored as saved"
        )


def _dataset(args: argparse.Namespace, payload: dict[str, Any] | None) -> SegmentationDataset:
    """The split to score, with the checkpoint's classes when there is one (and no --classes)."""
    classes = class_set_of(payload) if payload else None
    data = DataConfig(format=args.format, root=args.data, classes=args.classes)
    dataset = build_dataset(data, [args.split], classes=None if args.classes else classes)
    if classes is not None and dataset.classes != classes:
        raise CheckpointError(
            f"{args.checkpoint} was trained on {classes.num_classes} classes {list(classes.names)}, but the "
            f"dataset {args.data} uses {dataset.classes.num_classes} classes {list(dataset.classes.names)}"
        )
    return dataset


def run(args: argparse.Namespace) -> int:
    _check_arguments(args)
    payload = load_checkpoint(args.checkpoint) if args.checkpoint else None
    dataset = _dataset(args, payload)
    if args.predictions:
        confusion = score_predictions(dataset, Path(args.predictions))
    else:
        device = resolve_device(args.device)
        model = build_model(payload).to(device)
        model.zero_skip = args.zero_skip
        mean, std = tuple(payload["mean"]), tuple(payload["std"])
        confusion = evaluate_model(model, dataset, device, mean, std, args.input_scale, args.workers, True)
    metrics = metrics_from_confusion(confusion, dataset.classes)
    scored = args.predictions or args.checkpoint
    metrics.update(
        checkpoint=str(args.checkpoint),
        predictions=str(args.predictions),
        data=str(args.data),
        split=args.split,
        images=len(dataset),
        input_scale=args.input_scale,
        zero_skip=args.zero_skip,
        confusion=confusion.cpu().tolist(),
    )
    out = Path(args.out) if args.out else Path(scored.rstrip("/")).with_suffix(f".eval-{args.split}.json")
    atomic_write_text(out, to_json(metrics))
    scale = f", input scale {args.input_scale}" if args.input_scale != 1.0 else ""
    skip = ", skip connection zeroed" if args.zero_skip else ""
    print(f"{scored} on {args.data} {args.split} ({len(dataset)} images{scale}{skip})")
    print(format_table(metrics))
    if not metrics["pixels"]:
        print(f"fast-scnn eval: {no_labelled_pixels(args.split)}", file=sys.stderr)
    print(f"wrote {out}")
    return 0
