"""Scoring over a dataset: a model's confusion matrix (validation in training, `fast-scnn eval`), or saved predictions'.

Protocol (Cityscapes' evaluation, metrics.py): one full image at a time, scored at label resolution,
pixels labelled 255 ignored. An `input_scale` below 1 reproduces the paper's Table 7: infer on the
downsampled image, score at the label resolution.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from fast_scnn_core.data.dataset import SegmentationDataset, identity_lookup, read_class_ids, worker_error
from fast_scnn_core.data.transforms import normalize
from fast_scnn_core.errors import DataError
from fast_scnn_core.labels import IGNORE_INDEX
from fast_scnn_core.metrics import confusion_matrix
from fast_scnn_core.train.distributed import rank_and_world, sum_over_processes


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
    rank, world = rank_and_world()
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
    return sum_over_processes(confusion)


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
