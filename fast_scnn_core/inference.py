"""Segmenter: uint8 RGB image(s) in -> class labels (and confidence) out.

Preprocessing (resize to the inference resolution, normalisation with the checkpoint's mean/std)
and postprocessing (resize back, argmax/softmax) run on the device; only the uint8 image goes in
and only uint8 labels (and float32 confidence in `prob` mode) come back to the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from fast_scnn_core.checkpoint import IMAGENET_MEAN, IMAGENET_STD, build_model, class_set_of, load_checkpoint
from fast_scnn_core.errors import ConfigError, InputError
from fast_scnn_core.labels import ClassSet
from fast_scnn_core.model import FastSCNN


@dataclass
class InferenceConfig:
    """Options of the inference engine; the ROS node's parameters map onto these one to one."""

    checkpoint: str = ""
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    backend: Literal["torch", "onnxruntime"] = "torch"
    fp16: bool = False  # half precision on CUDA
    width: int = 0  # inference resolution; 0 = the input image's own
    height: int = 0
    output_resolution: Literal["input", "inference"] = "input"
    mode: Literal["cls", "prob"] = "cls"  # prob also returns the per-pixel max softmax probability
    max_pixels: int = 4096 * 4096  # refuse larger images (memory guard)


@dataclass
class Segmentation:
    """Engine output: labels (H, W) or (N, H, W) uint8; confidence float32 of the same shape in prob mode."""

    labels: np.ndarray
    confidence: np.ndarray | None = None


def resolve_device(name: str) -> torch.device:
    """`auto` -> first CUDA device if there is one, else CPU; `cuda:N` checked to exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type != "cpu":
        raise ConfigError(f"device {name!r}: expected auto, cpu, cuda or cuda:N")
    return device


class Segmenter:
    """Runs Fast-SCNN on uint8 RGB images: `segmenter(image)` -> Segmentation."""

    def __init__(
        self,
        model: FastSCNN,
        classes: ClassSet,
        config: InferenceConfig | None = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        self.config = config or InferenceConfig()
        if self.config.backend != "torch":
            raise ConfigError(f"backend {self.config.backend!r} is not available in this build")
        if model.num_classes != classes.num_classes:
            raise ConfigError(f"model has {model.num_classes} classes but the class set has {classes.num_classes}")
        self.classes = classes
        self.device = resolve_device(self.config.device)
        self.model = model.to(self.device).eval()
        self.model.mode = "logits"
        self._mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(std, device=self.device).view(1, 3, 1, 1) * 255.0

    @classmethod
    def from_checkpoint(cls, path: str | Path, config: InferenceConfig | None = None) -> Segmenter:
        payload = load_checkpoint(path)
        return cls(build_model(payload), class_set_of(payload), config, tuple(payload["mean"]), tuple(payload["std"]))

    def _check(self, image: np.ndarray) -> np.ndarray:
        if not isinstance(image, np.ndarray):
            raise InputError(f"expected a numpy uint8 array, got {type(image).__name__}")
        if image.dtype != np.uint8:
            raise InputError(f"expected uint8 RGB pixels, got dtype {image.dtype}")
        if image.ndim not in (3, 4) or image.shape[-1] != 3:
            raise InputError(f"expected an (H, W, 3) RGB image or an (N, H, W, 3) batch, got shape {image.shape}")
        h, w = image.shape[-3], image.shape[-2]
        if h == 0 or w == 0 or (image.ndim == 4 and image.shape[0] == 0):
            raise InputError(f"empty image of shape {image.shape}")
        if h * w > self.config.max_pixels:
            raise InputError(f"image of {w}x{h} pixels exceeds max_pixels={self.config.max_pixels}")
        return image

    @torch.inference_mode()
    def __call__(self, image: np.ndarray) -> Segmentation:
        image = self._check(image)
        batch = image[None] if image.ndim == 3 else image
        in_h, in_w = batch.shape[1:3]
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device).permute(0, 3, 1, 2).float()
        x = (x - self._mean) / self._std
        size = (self.config.height or in_h, self.config.width or in_w)
        if size != (in_h, in_w):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        logits = self.model(x)
        if self.config.output_resolution == "input" and size != (in_h, in_w):
            logits = F.interpolate(logits, size=(in_h, in_w), mode="bilinear", align_corners=False)
        confidence = None
        if self.config.mode == "prob":
            prob, labels = logits.softmax(dim=1).max(dim=1)
            confidence = prob.float().cpu().numpy()
        else:
            labels = logits.argmax(dim=1)
        labels = labels.to(torch.uint8).cpu().numpy()
        if image.ndim == 3:
            labels = labels[0]
            confidence = None if confidence is None else confidence[0]
        return Segmentation(labels, confidence)
