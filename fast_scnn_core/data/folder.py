"""Your own data: images/<split>/*.{png,jpg,...} and masks/<split>/<same stem>.png holding class ids.

Mask pixels are class ids in the order of the class-definition YAML (config/classes_example.yaml),
255 = ignore. Images and masks are paired by file stem (sub-folders allowed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from fast_scnn_core.data.dataset import Pair, SegmentationDataset, identity_lookup, pair_up
from fast_scnn_core.errors import DataError
from fast_scnn_core.labels import ClassSet, load_class_set

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def load_classes(path: str | Path) -> ClassSet:
    """The class set of a class-definition YAML, with DataError naming the file on a problem."""
    if not str(path):
        raise DataError("the folder format needs a class-definition YAML (data.classes=path/to/classes.yaml)")
    try:
        return load_class_set(path)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def folder_pairs(root: str | Path, split: str, strict: bool = False) -> list[Pair]:
    """(image, mask) pairs of one split, sorted; DataError if the split is empty or a mask is missing.
    Masks without their image: a warning naming them, DataError if `strict` (`pair_up`)."""
    root = Path(root)
    image_dir, mask_dir = root / "images" / split, root / "masks" / split
    if not image_dir.is_dir():
        raise DataError(f"{image_dir}: no such directory; expected images/{split}/ and masks/{split}/ under {root}")
    images = sorted(p for p in image_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise DataError(f"{image_dir}: empty split; expected image files ({', '.join(IMAGE_EXTENSIONS)})")

    def mask_of(image: Path) -> Path:
        return (mask_dir / image.relative_to(image_dir)).with_suffix(".png")

    return pair_up(images, mask_of, "mask", labels=mask_dir.rglob("*.png"), strict=strict)


def folder_dataset(
    root: str | Path,
    splits: Sequence[str],
    classes: ClassSet,
    transform: Callable | None = None,
    seed: int = 0,
    strict: bool = False,
) -> SegmentationDataset:
    """Image/mask folders of one or more splits for `classes`."""
    pairs = [pair for split in splits for pair in folder_pairs(root, split, strict)]
    return SegmentationDataset(pairs, classes, identity_lookup(classes), transform, seed, f"{root} {'+'.join(splits)}")
