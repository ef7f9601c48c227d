"""One dataset class for every layout: (image, label) file pairs + a label-id lookup table + a transform."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from fast_scnn_core.data.images import header_size, read_image, read_label
from fast_scnn_core.errors import DataError
from fast_scnn_core.labels import IGNORE_INDEX, ClassSet

# Marks label ids that a class set does not define in an int16 lookup table.
INVALID = -1


@dataclass(frozen=True)
class Pair:
    """An image file and its label file (same height and width)."""

    image: Path
    label: Path


# How many unmatched files a warning or an error names (after their count).
NAMED_UNMATCHED = 3


def pair_up(
    images: Iterable[Path],
    label_of: Callable[[Path], Path],
    what: str = "label",
    *,
    labels: Iterable[Path] = (),
    strict: bool = False,
) -> list[Pair]:
    """Each image with its label file `label_of(image)`; DataError naming an image whose `what` does not exist.

    `labels`: the label files found beside the images. Those no image names (their image was deleted or
    renamed) are left out, with a warning giving their count and the first few; `strict`: a DataError instead.
    """
    pairs = []
    for image in images:
        label = label_of(image)
        if not label.is_file():
            raise DataError(f"{image}: its {what} {label} does not exist")
        pairs.append(Pair(image, label))
    report_unmatched(sorted(set(labels) - {pair.label for pair in pairs}), what, strict)
    return pairs


def report_unmatched(unmatched: Sequence[Path], what: str, strict: bool) -> None:
    """Say that `unmatched` files (of kind `what`) have no image: a warning on stderr, or DataError if `strict`."""
    if not unmatched:
        return
    named = ", ".join(str(path) for path in unmatched[:NAMED_UNMATCHED])
    more = f" and {len(unmatched) - NAMED_UNMATCHED} more" if len(unmatched) > NAMED_UNMATCHED else ""
    message = f"{len(unmatched)} {what} file(s) have no image: {named}{more}"
    if strict:
        raise DataError(f"{message}; restore their images or remove them (data.strict=true)")
    print(f"warning: {message}; left out (data.strict=true makes this an error)", file=sys.stderr)


def check_pair(pair: Pair, image_size: tuple[int, int], label_size: tuple[int, int]) -> None:
    """DataError unless the image and its label have the same (width, height)."""
    if image_size != label_size:
        raise DataError(
            f"{pair.label}: label is {label_size[0]}x{label_size[1]} but its image {pair.image} is "
            f"{image_size[0]}x{image_size[1]}; expected the same size"
        )


def check_headers(pairs: Sequence[Pair]) -> None:
    """Every pair readable, label single-channel 8-bit, sizes equal: from the PNG/JPEG headers, before training."""
    for pair in pairs:
        image_w, image_h, _ = header_size(pair.image)
        label_w, label_h, mode = header_size(pair.label, "label image", exif_rotation=False)
        if mode not in ("L", "1"):
            kind = "a palette image (mode P)" if mode == "P" else f"mode {mode}"
            raise DataError(
                f"{pair.label}: expected a single-channel 8-bit label image of ids, got {kind}; "
                "save the ids as 8-bit greyscale PNG"
            )
        check_pair(pair, (image_w, image_h), (label_w, label_h))


def worker_error(exc: DataError) -> DataError:
    """A DataError met in a DataLoader worker, with its own one-line message again.

    The DataLoader re-raises a worker's exception with the worker's traceback pasted into the
    message; the user needs only the last line (which file, what was expected).
    """
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    last = lines[-1] if lines else str(exc)
    prefix = f"{DataError.__module__}.{DataError.__name__}: "
    return DataError(last[len(prefix) :] if last.startswith(prefix) else last)


def read_class_ids(path: Path, lookup: np.ndarray, valid_ids: str) -> np.ndarray:
    """Class ids uint8 (H, W), 255 = ignore, of a label file through `lookup`; DataError naming the file
    and `valid_ids` (what the file may hold) for ids the lookup marks INVALID."""
    raw = read_label(path)
    mapped = lookup[raw]
    if (mapped == INVALID).any():
        bad = sorted({int(v) for v in np.unique(raw[mapped == INVALID])})
        raise DataError(f"{path}: label ids {bad} are not in the class set (expected {valid_ids})")
    return mapped.astype(np.uint8)


def identity_lookup(classes: ClassSet) -> np.ndarray:
    """(256,) int16 table for labels that already hold class ids: 0..n-1 and 255 valid, others INVALID."""
    table = np.full(256, INVALID, dtype=np.int16)
    table[: classes.num_classes] = np.arange(classes.num_classes)
    table[IGNORE_INDEX] = IGNORE_INDEX
    return table


def seed_for(seed: int, epoch: int, index: int) -> int:
    """Augmentation seed of one sample in one epoch: reproducible with any worker count and on resume."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class SegmentationDataset(Dataset):
    """Samples (image uint8 (3, H, W), labels int64 (H, W) with 255 = ignore) from file pairs.

    `lookup` maps the ids stored in label files to class ids (Cityscapes labelId -> trainId);
    INVALID entries are ids the class set does not know, and `valid_ids` says which ids the files
    may hold (in errors). `transform` is an albumentations Compose (see transforms.py) or None;
    call `set_epoch` so augmentations differ per epoch.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        classes: ClassSet,
        lookup: np.ndarray,
        transform: Callable | None = None,
        seed: int = 0,
        name: str = "dataset",
        valid_ids: str = "",
    ) -> None:
        if not pairs:
            raise DataError(f"{name}: no images found")
        check_headers(pairs)  # fail here, before a training run writes anything, not at an iteration
        self.pairs = list(pairs)
        self.classes = classes
        self.lookup = lookup
        self.valid_ids = valid_ids or f"0..{classes.num_classes - 1} or {IGNORE_INDEX} for ignore"
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def class_ids(self, path: Path) -> np.ndarray:
        """Class ids of a file holding this dataset's label ids (a label, or a prediction in the same ids)."""
        return read_class_ids(path, self.lookup, self.valid_ids)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Untransformed (RGB uint8 (H, W, 3), class ids uint8 (H, W)) of one pair, validated."""
        pair = self.pairs[index]
        image, label = read_image(pair.image), self.class_ids(pair.label)
        check_pair(pair, (image.shape[1], image.shape[0]), (label.shape[1], label.shape[0]))
        return image, label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.load(index)
        if self.transform is not None:
            self.transform.set_random_seed(seed_for(self.seed, self.epoch, index))
            out = self.transform(image=image, mask=label)
            image, label = out["image"], out["mask"]
        image = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return image, torch.from_numpy(label.astype(np.int64))
