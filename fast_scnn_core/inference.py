"""Segmenter: uint8 RGB image(s) in -> class labels (and confidence) out.

Preprocessing (resize to the inference resolution, normalisation with the checkpoint's mean/std)
and postprocessing (argmax, max-softmax confidence, resize back) run on the device; only the
uint8 image goes in and only uint8 labels (and float32 confidence in `prob` mode) come back.

Every backend runs the same graph (`export.SegmentationGraph`: uint8 NHWC -> uint8 labels), so
they differ only in execution (see `backends.py`). When the inference resolution differs from
the image's, the image is resized on the device (bilinear, antialiased when shrinking) and, for
`output_resolution: input`, the labels come back with nearest-neighbour and the confidence with
bilinear interpolation, which is cheaper than upsampling C-channel logits to the input size.
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from fast_scnn_core.checkpoint import IMAGENET_MEAN, IMAGENET_STD, build_model, class_set_of, load_checkpoint
from fast_scnn_core.errors import ConfigError, InputError
from fast_scnn_core.export import SegmentationGraph
from fast_scnn_core.fuse import fold_batchnorm
from fast_scnn_core.labels import ClassSet
from fast_scnn_core.model import FastSCNN

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")


@dataclass
class InferenceConfig:
    """Options of the inference engine; the ROS node's parameters map onto these one to one."""

    checkpoint: str = ""  # path of a checkpoint written by `fast-scnn train`
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # auto: onnxruntime on CPU when installed (3-5x faster than eager, docs/benchmarks.md), else torch;
    # tensorrt needs the tensorrt package and CUDA
    backend: Literal["auto", "torch", "onnxruntime", "tensorrt"] = "auto"
    fp16: bool = False  # half precision on CUDA (torch, onnxruntime, tensorrt); ignored on CPU
    width: int = 0  # inference resolution; 0 = the input image's own
    height: int = 0
    output_resolution: Literal["input", "inference"] = "input"
    mode: Literal["cls", "prob"] = "cls"  # prob also returns the per-pixel max softmax probability
    max_pixels: int = 4096 * 4096  # refuse larger images (memory guard)
    threads: int = 0  # CPU threads for torch/onnxruntime; 0 = the library's default (all cores)
    optimize: bool = True  # torch backend: fold BatchNorm, channels_last (same results); false = plain eager
    compile: bool = False  # torch backend: torch.compile the graph (slow first frames; CPU needs a C++ compiler)


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


def resolve_backend(name: str, device: torch.device) -> str:
    """`auto` -> onnxruntime on the CPU when it is installed, else torch; other names unchanged."""
    if name != "auto":
        return name
    if device.type == "cpu" and importlib.util.find_spec("onnxruntime") is not None:
        return "onnxruntime"
    return "torch"


def _validate(config: InferenceConfig) -> None:
    if config.backend not in BACKENDS:
        raise ConfigError(f"backend {config.backend!r}: expected one of {list(BACKENDS)}")
    if config.mode not in ("cls", "prob"):
        raise ConfigError(f"mode {config.mode!r}: expected 'cls' or 'prob'")
    if config.output_resolution not in ("input", "inference"):
        raise ConfigError(f"output_resolution {config.output_resolution!r}: expected 'input' or 'inference'")
    if config.width < 0 or config.height < 0:
        raise ConfigError(f"width/height must be >= 0 (0 = the image's own), got {config.width}x{config.height}")
    if config.max_pixels < 1:
        raise ConfigError(f"max_pixels must be >= 1, got {config.max_pixels}")
    if config.threads < 0:
        raise ConfigError(f"threads must be >= 0 (0 = library default), got {config.threads}")


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
        self.config = config = config or InferenceConfig()
        _validate(config)
        if model.num_classes != classes.num_classes:
            raise ConfigError(f"model has {model.num_classes} classes but the class set has {classes.num_classes}")
        self.classes = classes
        self.device = resolve_device(config.device)
        self.backend = resolve_backend(config.backend, self.device)
        fp16 = config.fp16 and self.device.type == "cuda"
        if config.threads:
            torch.set_num_threads(config.threads)
        model = copy.deepcopy(model).cpu().float().eval()  # the caller's model is left as it was
        if self.backend == "torch":
            from fast_scnn_core.backends import TorchEngine

            graph = SegmentationGraph(fold_batchnorm(model) if config.optimize else model, mean, std, config.mode)
            self.engine = TorchEngine(
                graph, self.device, fp16=fp16, channels_last=config.optimize, compile=config.compile
            )
        elif self.backend == "onnxruntime":
            from fast_scnn_core.backends import OnnxRuntimeEngine

            graph = SegmentationGraph(fold_batchnorm(model), mean, std, config.mode)
            self.engine = OnnxRuntimeEngine(graph, self.device, threads=config.threads, fp16=fp16)
        else:
            from fast_scnn_core.backends import TensorRTEngine

            graph = SegmentationGraph(fold_batchnorm(model), mean, std, config.mode)
            size = (config.height or 512, config.width or 1024)
            self.engine = TensorRTEngine(graph, self.device, fp16=fp16, opt_size=size)

    @classmethod
    def from_checkpoint(cls, path: str | Path, config: InferenceConfig | None = None) -> Segmenter:
        """Load a checkpoint safely (weights_only) and build the engine `config` asks for."""
        payload = load_checkpoint(path)
        return cls(build_model(payload), class_set_of(payload), config, tuple(payload["mean"]), tuple(payload["std"]))

    @classmethod
    def from_config(cls, config: InferenceConfig) -> Segmenter:
        """The engine for `config.checkpoint` (what the ROS node calls with its parameters)."""
        if not config.checkpoint:
            raise ConfigError("no checkpoint given: set `checkpoint` to a file written by `fast-scnn train`")
        return cls.from_checkpoint(config.checkpoint, config)

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
        in_size = batch.shape[1:3]
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
        size = (self.config.height or in_size[0], self.config.width or in_size[1])
        if size != in_size:
            x = resize_image(x, size)
        labels, confidence = self.engine(x)
        if self.config.output_resolution == "input" and size != in_size:
            labels = F.interpolate(labels[:, None], size=in_size, mode="nearest-exact")[:, 0]
            if confidence is not None:
                confidence = F.interpolate(confidence[:, None], size=in_size, mode="bilinear", align_corners=False)[
                    :, 0
                ]
        labels = labels.cpu().numpy()
        confidence = None if confidence is None else confidence.float().cpu().numpy()
        if image.ndim == 3:
            labels = labels[0]
            confidence = None if confidence is None else confidence[0]
        return Segmentation(labels, confidence)


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> uint8 (N, h, w, 3), bilinear; antialiased when shrinking (no aliasing on 4x downscales)."""
    shrink = size[0] < image.shape[1] or size[1] < image.shape[2]
    x = image.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
