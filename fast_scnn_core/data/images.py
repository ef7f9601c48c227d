"""Image files to arrays: sizes from the header alone, RGB images and label images, each error naming the file.

Free of torch: `fast-scnn predict` and `fast-scnn bench` read their inputs here, the datasets their pairs.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import ExifTags, Image

from fast_scnn_core.errors import DataError
from fast_scnn_core.limits import size_problem


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


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB (grey and RGBA are converted), or DataError naming the file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{path}: cannot read the image (missing, corrupt or not an image file)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_rgb(path: Path, max_pixels: int | None = None) -> np.ndarray:
    """`read_image` of an input to segment, its size checked against the engine's limits before decoding.

    The size is read from the file's header first, so a small file claiming a huge image (a
    decompression bomb) is refused without being decoded.
    """
    width, height, _ = header_size(path)
    problem = size_problem(width, height, max_pixels)
    if problem:
        raise DataError(f"{path}: {problem}")
    return read_image(path)


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
