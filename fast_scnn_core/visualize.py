"""Label images to pictures and masks: colour coding, overlays and per-class binary masks."""

from __future__ import annotations

import numpy as np


def colorize(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) uint8 class ids -> (H, W, 3) uint8 RGB through a (256, 3) palette (ClassSet.palette())."""
    return palette[labels]


def overlay(image: np.ndarray, labels: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the colour-coded labels over an RGB image: (1 - alpha) * image + alpha * colours."""
    if image.shape[:2] != labels.shape:
        raise ValueError(f"image {image.shape[:2]} and labels {labels.shape} differ in size")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    blended = image.astype(np.float32) * (1.0 - alpha) + colorize(labels, palette).astype(np.float32) * alpha
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def class_mask(labels: np.ndarray, class_id: int) -> np.ndarray:
    """(H, W) uint8 mask: 255 where `labels == class_id`, else 0."""
    return (labels == class_id).astype(np.uint8) * np.uint8(255)
