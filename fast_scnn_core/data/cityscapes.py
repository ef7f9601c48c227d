"""Cityscapes in its standard layout: leftImg8bit/<split>/<city>/*_leftImg8bit.png + gtFine|gtCoarse labelIds.

Splits: train, val, test (gtFine or gtCoarse) and train_extra (always gtCoarse, its only labels): the
paper's "fine + coarse" setting (Table 6) is train_splits [train, train_extra].
Label files hold Cityscapes labelIds; they are mapped to the 19 trainIds (255 = ignore).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from fast_scnn_core.data.dataset import INVALID, Pair, SegmentationDataset, pair_up
from fast_scnn_core.errors import DataError
from fast_scnn_core.labels import CITYSCAPES, CITYSCAPES_LABELS, cityscapes_id_to_train_id

Annotation = Literal["gtFine", "gtCoarse"]
IMAGE_SUFFIX = "_leftImg8bit.png"

# Frames of the official download known to be broken, skipped with a warning as other code bases
# drop them: train_extra's troisdorf_000000_000073 is an all-black image with a constant coarse label.
KNOWN_CORRUPT = {"train_extra": ("troisdorf_000000_000073",)}


def cityscapes_lookup() -> np.ndarray:
    """(256,) int16: labelId -> trainId (255 for ignored classes), INVALID for ids Cityscapes does not define."""
    table = cityscapes_id_to_train_id().astype(np.int16)
    defined = {lab.id for lab in CITYSCAPES_LABELS if lab.id >= 0}
    table[[i for i in range(256) if i not in defined]] = INVALID
    return table


def cityscapes_pairs(
    root: str | Path, split: str, annotation: Annotation = "gtFine", strict: bool = False
) -> list[Pair]:
    """(image, labelIds) pairs of one split, sorted; DataError if the split is empty or a label is missing.
    LabelIds files without their image: a warning naming them, DataError if `strict` (`pair_up`)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"{root}: no such directory; point data.root= at Cityscapes (leftImg8bit/ and gtFine/), or make the "
            f"synthetic set in this layout there with `fast-scnn synth --out {root}`"
        )
    if split == "train_extra":
        annotation = "gtCoarse"  # the 20k extra images only have coarse labels
    image_dir = root / "leftImg8bit" / split
    if not image_dir.is_dir():
        raise DataError(
            f"{image_dir}: no such directory; expected Cityscapes' leftImg8bit/{split}/<city>/ under {root}"
        )
    images = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
    if not images:
        raise DataError(f"{image_dir}: empty split; expected <city>/*{IMAGE_SUFFIX} files")
    corrupt = KNOWN_CORRUPT.get(split, ())
    kept = [image for image in images if image.name[: -len(IMAGE_SUFFIX)] not in corrupt]
    for image in sorted(set(images) - set(kept)):
        print(f"warning: skipped {image}: a known corrupt Cityscapes frame (all black)", file=sys.stderr)

    def label_of(image: Path) -> Path:
        stem = image.name[: -len(IMAGE_SUFFIX)]
        return root / annotation / split / image.parent.name / f"{stem}_{annotation}_labelIds.png"

    found = set((root / annotation / split).glob(f"*/*_{annotation}_labelIds.png"))
    return pair_up(kept, label_of, labels=found - {label_of(image) for image in images}, strict=strict)


def cityscapes_dataset(
    root: str | Path,
    splits: Sequence[str],
    annotation: Annotation = "gtFine",
    transform: Callable | None = None,
    seed: int = 0,
    strict: bool = False,
) -> SegmentationDataset:
    """The 19-class Cityscapes dataset over one or more splits (e.g. train + train_extra with gtCoarse)."""
    pairs = [pair for split in splits for pair in cityscapes_pairs(root, split, annotation, strict)]
    name = f"{root} {annotation} {'+'.join(splits)}"
    lookup = cityscapes_lookup()
    valid = f"Cityscapes labelIds 0..{int(np.flatnonzero(lookup != INVALID).max())} (the *_labelIds.png files)"
    return SegmentationDataset(pairs, CITYSCAPES, lookup, transform, seed, name, valid)
