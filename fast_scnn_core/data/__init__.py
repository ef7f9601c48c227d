"""Datasets (Cityscapes layout, generic image/mask folders), image files, transforms and the synthetic generator.

`build_dataset` is the one place a layout name becomes a dataset (the table `BUILDERS`, like
torchvision references' `get_dataset`); `fast-scnn train` and `fast-scnn eval` both use it.
`cityscapes_pairs` and `folder_pairs` list (image, label) files and check that every image has its
label; `SegmentationDataset` reads a pair, maps label ids to class ids and applies the transform.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from fast_scnn_core.data.cityscapes import Annotation, cityscapes_dataset
from fast_scnn_core.data.dataset import SegmentationDataset
from fast_scnn_core.data.folder import folder_dataset, load_classes
from fast_scnn_core.labels import ClassSet


@dataclass
class DataConfig:
    """Where the data is and how it is augmented (documented in config/train_cityscapes.yaml)."""

    format: Literal["cityscapes", "folder"] = "cityscapes"
    root: str = "data/cityscapes"
    train_splits: tuple[str, ...] = ("train",)
    val_split: str = "val"
    train_annotation: Annotation = "gtFine"
    classes: str = ""
    crop_size: tuple[int, int] = (1024, 1024)
    scale_range: tuple[float, float] = (0.5, 2.0)
    hflip: float = 0.5
    brightness: float = 0.2
    channel_noise: int = 20
    workers: int = 4
    strict: bool = False  # label files without their image: an error instead of a warning


# Every builder takes (data, splits, annotation, classes, transform, seed); each layout reads the
# arguments it has a use for: Cityscapes the annotation, the folder format the class set.
Builder = Callable[
    [DataConfig, Sequence[str], Annotation, "ClassSet | None", "Callable | None", int], SegmentationDataset
]


def _cityscapes(data: DataConfig, splits: Sequence[str], annotation: Annotation, classes, transform, seed: int):
    return cityscapes_dataset(data.root, splits, annotation, transform, seed, data.strict)


def _folder(data: DataConfig, splits: Sequence[str], annotation: Annotation, classes, transform, seed: int):
    return folder_dataset(data.root, splits, classes or load_classes(data.classes), transform, seed, data.strict)


BUILDERS: dict[str, Builder] = {"cityscapes": _cityscapes, "folder": _folder}


def build_dataset(
    data: DataConfig,
    splits: Sequence[str],
    *,
    annotation: Annotation = "gtFine",
    classes: ClassSet | None = None,
    transform: Callable | None = None,
    seed: int = 0,
) -> SegmentationDataset:
    """The `data.format` dataset at `data.root` over `splits`.

    `annotation` picks Cityscapes' labels (gtFine or gtCoarse); `classes` replaces the folder
    format's `data.classes` YAML (`fast-scnn eval` passes the checkpoint's classes).
    """
    return BUILDERS[data.format](data, splits, annotation, classes, transform, seed)
