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
import dataclasses
import importlib.util
import typing
from dataclasses import Field, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from fast_scnn_core.checkpoint import IMAGENET_MEAN, IMAGENET_STD, build_model, class_set_of, load_checkpoint
from fast_scnn_core.errors import ConfigError, InputError
from fast_scnn_core.export import SegmentationGraph
from fast_scnn_core.fuse import fold_batchnorm
from fast_scnn_core.labels import ClassSet
from fast_scnn_core.limits import DEFAULT_MAX_PIXELS, MAX_SIDE, MIN_SIDE, size_problem
from fast_scnn_core.model import FastSCNN

# torch.set_num_threads(100000) kills the process (SIGSEGV, no message); 1024 runs and is more than any CPU has.
MAX_THREADS = 1024

# torch's thread count is process-wide: remember the library's default (all cores, or OMP_NUM_THREADS)
# so that `threads: 0` after `threads: 1` brings it back.
_LIBRARY_THREADS = torch.get_num_threads()


def _option(default: object, help: str, range: tuple[int, int] | None = None, zero: str = "") -> Any:
    """A dataclass field whose metadata holds the option's meaning and bounds (schema: InferenceConfig)."""
    metadata: dict[str, Any] = {"help": help}
    if range is not None:
        metadata["range"] = range
    if zero:
        metadata["zero"] = zero
    return field(default=default, metadata=metadata)


@dataclass
class InferenceConfig:
    """Options of the inference engine; the ROS node's parameters map onto these one to one.

    Each option is defined once, here: its type (a `Literal` gives the choices), its default and its
    metadata, from which the checks (`__post_init__`), the node's parameter descriptors, the CLI flags
    and the README's table derive. Metadata keys:

    - "help": what the option means, one line;
    - "range": (lo, hi), the inclusive bounds of an integer option;
    - "zero": what 0 means, for an integer option that accepts 0 besides its range.

    Read them with `option_help`, `option_range` and `option_choices` rather than by hand.
    """

    checkpoint: str = _option("", "checkpoint (.pt) written by `fast-scnn train`; required")
    device: str = _option("auto", "auto (first CUDA GPU, else CPU), cpu, cuda or cuda:N")
    # auto: onnxruntime is 3-5x faster than eager on CPU (docs/benchmarks.md)
    backend: Literal["auto", "torch", "onnxruntime", "tensorrt"] = _option(
        "auto", "auto (onnxruntime on CPU when installed, else torch), torch, onnxruntime or tensorrt (CUDA)"
    )
    fp16: bool = _option(False, "half precision on CUDA (torch, onnxruntime, tensorrt); ignored on CPU")
    width: int = _option(0, "inference width in pixels", (MIN_SIDE, MAX_SIDE), "the input image's width")
    height: int = _option(0, "inference height in pixels", (MIN_SIDE, MAX_SIDE), "the input image's height")
    output_resolution: Literal["input", "inference"] = _option(
        "input", "input: outputs at the input image's size; inference: at the inference resolution"
    )
    mode: Literal["cls", "prob"] = _option(
        "cls", "cls: labels only; prob: also the per-pixel max softmax probability (the confidence)"
    )
    max_pixels: int = _option(
        DEFAULT_MAX_PIXELS,
        "images (a batch: all its images) with more pixels are refused as bad input (memory guard)",
        (MIN_SIDE * MIN_SIDE, MAX_SIDE * MAX_SIDE),
    )
    threads: int = _option(0, "CPU threads for torch/onnxruntime", (1, MAX_THREADS), "the library's default")
    optimize: bool = _option(True, "torch backend: fold BatchNorm, channels_last (same results); false = plain eager")
    compile: bool = _option(
        False, "torch backend: torch.compile the graph (slow first frames; CPU needs a C++ compiler)"
    )

    def __post_init__(self) -> None:
        _validate(self)


def _field(name: str) -> Field:
    fields = {f.name: f for f in dataclasses.fields(InferenceConfig)}
    if name not in fields:
        raise KeyError(f"InferenceConfig has no option {name!r}; options: {list(fields)}")
    return fields[name]


def option_choices(name: str) -> tuple[str, ...]:
    """The values a `Literal` option accepts, () for the others."""
    hint = typing.get_type_hints(InferenceConfig)[name]
    return typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else ()


def option_range(name: str) -> tuple[int, int] | None:
    """The inclusive interval an integer option's values lie in (0 included when it means something), else None.

    For a parameter descriptor: values inside it can still be refused when 0 is special, e.g. width 1..31
    (`__post_init__` says why).
    """
    metadata = _field(name).metadata
    if "range" not in metadata:
        return None
    lo, hi = metadata["range"]
    return (0 if "zero" in metadata else lo, hi)


def _bounds(metadata: typing.Mapping[str, Any]) -> str:
    lo, hi = metadata["range"]
    return f"{lo}..{hi}" + (f", or 0 = {metadata['zero']}" if "zero" in metadata else "")


def option_help(name: str) -> str:
    """One line for a parameter description or a --help: the meaning, the bounds and what 0 means."""
    metadata = _field(name).metadata
    text = metadata["help"]
    if "range" in metadata:
        text += f"; {_bounds(metadata)}"
    choices = option_choices(name)
    if choices and not all(c in text for c in choices):
        text += f" ({' | '.join(choices)})"
    return text


def _validate(config: InferenceConfig) -> None:
    """Check every option against its field's type and metadata, then the options against each other."""
    hints = typing.get_type_hints(InferenceConfig)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        choices = option_choices(f.name)
        if choices and value not in choices:
            raise ConfigError(f"{f.name} {value!r}: expected one of {list(choices)}")
        kind = hints[f.name]
        if kind in (bool, int, str) and (type(value) is not kind):
            raise ConfigError(f"{f.name} must be of type {kind.__name__}, got {value!r}")
        if "range" in f.metadata:
            lo, hi = f.metadata["range"]
            if not (lo <= value <= hi or (value == 0 and "zero" in f.metadata)):
                raise ConfigError(f"{f.name} {value} is out of range: expected {_bounds(f.metadata)}")
    if config.width * config.height > config.max_pixels:
        raise ConfigError(
            f"inference resolution {config.width}x{config.height} exceeds max_pixels={config.max_pixels}; "
            "lower width/height or raise max_pixels"
        )


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
        if model.num_classes != classes.num_classes:
            raise ConfigError(f"model has {model.num_classes} classes but the class set has {classes.num_classes}")
        self.classes = classes
        self.device = resolve_device(config.device)
        self.backend = resolve_backend(config.backend, self.device)
        fp16 = config.fp16 and self.device.type == "cuda"
        torch.set_num_threads(config.threads or _LIBRARY_THREADS)
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
        """Refuse what the engine cannot take, from the array's header alone (before any copy of its pixels)."""
        if not isinstance(image, np.ndarray):
            raise InputError(f"expected a numpy uint8 array, got {type(image).__name__}")
        if image.dtype != np.uint8:
            raise InputError(f"expected uint8 RGB pixels, got dtype {image.dtype}")
        if image.ndim not in (3, 4) or image.shape[-1] != 3:
            raise InputError(f"expected an (H, W, 3) RGB image or an (N, H, W, 3) batch, got shape {image.shape}")
        count = image.shape[0] if image.ndim == 4 else 1
        h, w = image.shape[-3], image.shape[-2]
        if count == 0:
            raise InputError(f"empty batch of shape {image.shape}")
        problem = size_problem(w, h, self.config.max_pixels)
        if problem:
            raise InputError(problem)
        if count * h * w > self.config.max_pixels:
            raise InputError(f"a batch of {count} images of {w}x{h} exceeds max_pixels={self.config.max_pixels}")
        size = (self.config.height or h, self.config.width or w)
        if count * size[0] * size[1] > self.config.max_pixels:
            raise InputError(
                f"a batch of {count} at the inference resolution {size[1]}x{size[0]} exceeds "
                f"max_pixels={self.config.max_pixels}"
            )
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
