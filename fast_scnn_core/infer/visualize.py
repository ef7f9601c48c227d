"""Label images to pictures and masks: colour coding, overlays and per-class binary masks; titled, legended rows.

OpenCV does the per-pixel work: these run for every frame a viewer subscribes to, and numpy's
fancy indexing and float blending took 7 ms and 13-17 ms per 512x1024 frame on the 2-core EPYC,
more than a third of an ONNX Runtime inference (docs/ros.md, "Node overhead").
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fast_scnn_core.labels import ClassSet

# OpenCV rounds a blend's exact .5 to even; a bias far below one step rounds it up, as round-half-up
# (numpy's floor(v + 0.5)) did before, so overlays at alpha 0, 0.5 and 1 are unchanged bit for bit.
_ROUND_HALF_UP = 1e-3


def colorize(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) uint8 class ids -> (H, W, 3) uint8 RGB through a (256, 3) palette (ClassSet.palette())."""
    # The same values as palette[labels]; 1.0 ms instead of 7 ms at 512x1024.
    return cv2.LUT(cv2.merge((labels, labels, labels)), palette.reshape(256, 1, 3))


def overlay(
    image: np.ndarray, labels: np.ndarray, palette: np.ndarray, alpha: float = 0.5, *, colors: np.ndarray | None = None
) -> np.ndarray:
    """Blend the colour-coded labels over a uint8 RGB image: (1 - alpha) * image + alpha * colours, rounded.

    Rounded to nearest, ties up, as the float32 formula; at alphas other than 0, 0.5 and 1 a blend that
    is within float error of a tie can land one step off it (2 % of random values at alpha 0.1).
    `colors`: `colorize(labels, palette)` when the caller already has it (the node's color output).
    """
    if image.shape[:2] != labels.shape:
        raise ValueError(f"image {image.shape[:2]} and labels {labels.shape} differ in size")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    colors = colorize(labels, palette) if colors is None else colors
    return cv2.addWeighted(image, 1.0 - alpha, colors, alpha, _ROUND_HALF_UP)


def class_mask(labels: np.ndarray, class_id: int) -> np.ndarray:
    """(H, W) uint8 mask: 255 where `labels == class_id`, else 0."""
    return cv2.compare(labels, class_id, cv2.CMP_EQ)


# Pictures for people (the demo's PNGs): a title over each panel and a colour legend under the row.
_FONT, _FONT_SCALE, _TEXT = cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255)
_BAND = 24  # pixels: height of a title band and of a legend line
_SWATCH, _GAP = 14, 16  # legend: side of a colour square, space between entries


def present_classes(labels: np.ndarray, classes: ClassSet) -> list[int]:
    """The ids of `classes` that occur in `labels`, in class order (ignore and undefined ids left out)."""
    counts = np.bincount(labels.ravel(), minlength=256)
    return [class_id for class_id in range(classes.num_classes) if counts[class_id]]


def with_title(picture: np.ndarray, title: str) -> np.ndarray:
    """`picture` (uint8 RGB) under a black band holding `title`."""
    band = np.zeros((_BAND, picture.shape[1], 3), np.uint8)
    cv2.putText(band, title, (6, _BAND - 8), _FONT, _FONT_SCALE, _TEXT, 1, cv2.LINE_AA)
    return np.concatenate([band, picture])


def legend(class_ids: Sequence[int], classes: ClassSet, width: int) -> np.ndarray:
    """A black strip `width` pixels wide: a colour square and the class name for each of `class_ids`, in lines."""
    entries = []  # (x, line, class id)
    x, line = 6, 0
    for class_id in class_ids:
        (text_w, _), _ = cv2.getTextSize(classes.names[class_id], _FONT, _FONT_SCALE, 1)
        size = _SWATCH + 4 + text_w
        if x > 6 and x + size > width:
            x, line = 6, line + 1
        entries.append((x, line, class_id))
        x += size + _GAP
    strip = np.zeros((_BAND * (line + 1), width, 3), np.uint8)
    for x, line, class_id in entries:
        top = line * _BAND + (_BAND - _SWATCH) // 2
        strip[top : top + _SWATCH, x : x + _SWATCH] = classes.colors[class_id]
        baseline = (line + 1) * _BAND - 8
        cv2.putText(
            strip, classes.names[class_id], (x + _SWATCH + 4, baseline), _FONT, _FONT_SCALE, _TEXT, 1, cv2.LINE_AA
        )
    return strip


def labelled_row(panels: Sequence[tuple[str, np.ndarray]], labels: np.ndarray, classes: ClassSet) -> np.ndarray:
    """Titled panels side by side (uint8 RGB, one height) over the legend of the classes present in `labels`."""
    row = np.concatenate([with_title(picture, title) for title, picture in panels], axis=1)
    return np.concatenate([row, legend(present_classes(labels, classes), classes, row.shape[1])])


# The ground grid's values as colours (OccupancyGrid: 0 free .. 100 lethal, -1 unknown), and their legend.
COST_LEGEND = ClassSet(
    ("free (0)", "cost (1-99)", "lethal (100)", "unknown (-1)"),
    ((200, 235, 200), (240, 190, 60), (220, 40, 40), (70, 70, 70)),
)


def cost_picture(grid: np.ndarray, size: int) -> np.ndarray:
    """A ground grid ((rows = y, columns = x) int8 costs) as a bird's-eye RGB picture `size` pixels high: the base
    frame's x (forward) up, y (left) to the left; costs between free and lethal shade from yellow to red."""
    free, middle, lethal, unknown = (np.asarray(c, np.float32) for c in COST_LEGEND.colors)
    values = np.asarray(grid, np.float32)[..., None]
    shade = middle + np.clip((values - 1) / 98, 0, 1) * (lethal - middle)
    picture = np.where(values == 0, free, np.where(values >= 100, lethal, np.where(values < 0, unknown, shade)))
    picture = picture.astype(np.uint8).transpose(1, 0, 2)[::-1, ::-1]  # rows = x from far to near, columns = y
    width = max(1, round(size * picture.shape[1] / picture.shape[0]))
    return cv2.resize(np.ascontiguousarray(picture), (width, size), interpolation=cv2.INTER_NEAREST)
