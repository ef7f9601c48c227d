"""One dataset class for every layout: (image, label) file pairs + a label-id lookup table + a transform."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import ExifTags, Image
from torch.utils.data import Dataset

from fast_scnn_core.errors import DataError
from fast_scnn_core.labels import IGNORE_INDEX, ClassSet

# Marks label ids that a class set does not define in an int16 lookup table.
INVALID = -1


@dataclass(frozen=True)
class Pair:
    """An image file and its label file (same height and width)."""

    image: Path
    label: Path


def header_size(path: Path, what: str = "image", exif_rotation: bool = True) -> tuple[int, int, str]:
    """(width, height, PIL mode) from the file's header alone; the pixels are not decoded.

    With `exif_rotation` the size is the one cv2.imread(IMREAD_COLOR) decodes to: it applies the
    EXIF orientation, so a 90-degree rotation swaps width and height (IMREAD_UNCHANGED does not).
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            exif = image.info.get("exif")  # getexif() would decode a PNG without an eXIf chunk
            mode = image.mode
    except (OSError, ValueError):
        raise DataError(f"{path}: cannot read the {what} (missing, corrupt or not an image file)") from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: {exc}") from None
    if exif_rotation and exif:
        tags = Image.Exif()
        tags.load(exif)
        if tags.get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):
            width, height = height, width
    return width, height, mode


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


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB, or DataError naming the file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{path}: cannot read the image (missing, corrupt or not an image file)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label(path: Path) -> np.ndarray:
    """(H, W) uint8 label ids, or DataError naming the file."""
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise DataError(f"{path}: cannot read the label image (missing, corrupt or not an image file)")
    if label.ndim != 2 or label.dtype != np.uint8:
        raise DataError(
            f"{path}: expected a single-channel 8-bit label image of ids, got shape {label.shape} {label.dtype}"
        )
    return label


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
