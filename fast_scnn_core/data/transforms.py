"""Augmentation of the paper (sec. 4.1) with albumentations, and normalisation on the device.

Random resize 0.5-2, translation/crop (padding labels with ignore 255), horizontal flip, colour
channel noise and brightness. Geometric transforms move image and mask together (mask resized
with nearest neighbour).
"""

from __future__ import annotations

import albumentations as A
import cv2
import torch

from fast_scnn_core.labels import IGNORE_INDEX


def train_transform(
    crop_size: tuple[int, int],
    scale_range: tuple[float, float] = (0.5, 2.0),
    hflip: float = 0.5,
    brightness: float = 0.2,
    channel_noise: int = 20,
) -> A.Compose:
    """Paper augmentation producing (crop_h, crop_w) uint8 images and masks."""
    crop_h, crop_w = crop_size
    low, high = scale_range
    return A.Compose(
        [
            # RandomScale's limits are relative to 1: (low - 1, high - 1) gives factors low..high.
            A.RandomScale(scale_limit=(low - 1.0, high - 1.0), interpolation=cv2.INTER_LINEAR, p=1.0),
            # Pad where the scaled image is smaller than the crop, at a random position (translation).
            A.PadIfNeeded(
                crop_h, crop_w, position="random", border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=IGNORE_INDEX
            ),
            A.RandomCrop(crop_h, crop_w),
            A.HorizontalFlip(p=hflip),
            A.RGBShift(channel_noise, channel_noise, channel_noise, p=0.5 if channel_noise else 0.0),
            A.RandomBrightnessContrast(brightness_limit=brightness, contrast_limit=0.0, p=0.5 if brightness else 0.0),
        ]
    )


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float (x / 255 - mean) / std, computed where `images` lives."""
    mean_t = torch.tensor(mean, device=images.device).view(1, -1, 1, 1) * 255.0
    std_t = torch.tensor(std, device=images.device).view(1, -1, 1, 1) * 255.0
    return (images.float() - mean_t) / std_t
