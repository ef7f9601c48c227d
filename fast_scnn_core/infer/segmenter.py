"""Segmenter: uint8 RGB image(s) in -> class labels (and confidence) out.

Preprocessing (resize to the inference resolution, normalisation with the checkpoint's mean/std)
and postprocessing (argmax, max-softmax confidence, resize back) run on the device; only the
uint8 image goes in and only uint8 labels (and float32 confidence in `prob` mode) come back.

Every backend runs the same graph (`graph.SegmentationGraph`: uint8 NHWC -> uint8 labels), so
they differ only in execution (see `backends.py`). When the inference resolution differs from
the image's, the image is resized on the device (bilinear, antialiased when shrinking) and, for
`output_resolution: input`, the labels come back with nearest-neighbour and the confidence with
bilinear interpolation, which is cheaper than upsampling C-channel logits to the input size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fast_scnn_core.device import resolve_device
from fast_scnn_core.errors import ConfigError, InputError
from fast_scnn_core.infer.backends import (
    Engine,
    OnnxRuntimeEngine,
    OpenVinoEngine,
    TensorRTEngine,
    TorchEngine,
    resolve_backend,
)
from fast_scnn_core.infer.graph import SegmentationGraph, onnx_bytes, pipeline_graph
from fast_scnn_core.infer.options import (  # re-exported: the options are part of the engine's API
    GPU_BATCH,
    MAX_THREADS,
    InferenceConfig,
    option_choices,
    option_help,
    option_range,
)
from fast_scnn_core.infer.precision import cpu_precisions
from fast_scnn_core.labels import ClassSet
from fast_scnn_core.limits import size_problem
from fast_scnn_core.model.checkpoint import IMAGENET_MEAN, IMAGENET_STD, build_model, class_set_of, load_checkpoint
from fast_scnn_core.model.network import FastSCNN

__all__ = [
    "MAX_THREADS",
    "InferenceConfig",
    "SegmentationResult",
    "Segmenter",
    "option_choices",
    "option_help",
    "option_range",
    "resize_image",
    "resolve_backend",
    "resolve_device",
]

# torch's thread count is process-wide: remember the library's default (all cores, or OMP_NUM_THREADS)
# so that `threads: 0` after `threads: 1` brings it back.
_LIBRARY_THREADS = torch.get_num_threads()


@dataclass
class SegmentationResult:
    """Engine output: labels (H, W) or (N, H, W) uint8; confidence float32 of the same shape in prob mode."""

    labels: np.ndarray
    confidence: np.ndarray | None = None


class Segmenter:
    """Runs Fast-SCNN on uint8 RGB images: `segmenter(image)` -> SegmentationResult."""

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
        # What runs (backend, precision) and, when `auto` chose it, why: diagnostics and `fast-scnn bench` show it.
        self.choice = resolve_backend(config, self.device)
        self.backend, self.precision = self.choice.backend, self.choice.precision
        torch.set_num_threads(config.threads or _LIBRARY_THREADS)
        # On a copy of the model (the caller's is left as it was); only the eager baseline keeps BatchNorm.
        graph = pipeline_graph(model, mean, std, config.mode, fold=config.optimize or self.backend != "torch")
        self.engine = self._engine(graph)

    def _engine(self, graph: SegmentationGraph) -> Engine:
        config, fp16 = self.config, self.precision == "fp16"
        if self.backend == "torch":
            return TorchEngine(graph, self.device, fp16=fp16, channels_last=config.optimize, compile=config.compile)
        if self.backend == "onnxruntime":
            return OnnxRuntimeEngine(graph, self.device, threads=config.threads, fp16=fp16)
        if self.backend == "openvino":
            artefact = self.choice.artefact
            onnx = artefact.onnx if artefact is not None and self.precision == "int8" else onnx_bytes(graph)
            bf16 = self.precision == "int8" and "bf16" in cpu_precisions()
            outputs = 1 if config.mode == "cls" else 2  # the artefact has both (its graph is prob mode's)
            return OpenVinoEngine(onnx, precision=self.precision, threads=config.threads, bf16=bf16, outputs=outputs)
        size = (config.height or 512, config.width or 1024)
        return TensorRTEngine(graph, self.device, fp16=fp16, opt_size=size, max_batch=self.max_batch)

    @property
    def max_batch(self) -> int:
        """Most images per engine batch: `max_batch`, else 1 on CPU and GPU_BATCH on CUDA."""
        return self.config.max_batch or (1 if self.device.type == "cpu" else GPU_BATCH)

    @classmethod
    def from_checkpoint(cls, path: str | Path, config: InferenceConfig | None = None) -> Segmenter:
        """Load a checkpoint safely (weights_only) and build the engine `config` asks for.

        The one checkpoint -> engine path: commands pass `--checkpoint`, the ROS node `config.checkpoint`.
        """
        if not path:
            raise ConfigError("no checkpoint given: set `checkpoint` to a file written by `fast-scnn train`")
        payload = load_checkpoint(path)
        # The config names the file it runs: the OpenVINO backend finds the checkpoint's int8 artefact by it.
        config = dataclasses.replace(config or InferenceConfig(), checkpoint=str(path))
        return cls.from_payload(payload, config)

    @classmethod
    def from_payload(cls, payload: dict, config: InferenceConfig | None = None) -> Segmenter:
        """The engine of a loaded, validated checkpoint (`load_checkpoint`, `load_checkpoint_bytes`)."""
        return cls(build_model(payload), class_set_of(payload), config, tuple(payload["mean"]), tuple(payload["std"]))

    def inference_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) an image of height x width is segmented at: the configured width/height, 0 = the image's own."""
        return (self.config.height or height, self.config.width or width)

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
        self._check_inference_pixels(count, self.inference_size(h, w))
        return image

    def _check_inference_pixels(self, count: int, size: tuple[int, int]) -> None:
        if count * size[0] * size[1] > self.config.max_pixels:
            raise InputError(
                f"a batch of {count} at the inference resolution {size[1]}x{size[0]} exceeds "
                f"max_pixels={self.config.max_pixels}"
            )

    @torch.inference_mode()
    def __call__(self, image: np.ndarray) -> SegmentationResult:
        image = self._check(image)
        [(labels, confidence)] = self._run([image[None] if image.ndim == 3 else image])
        if image.ndim == 3:
            labels = labels[0]
            confidence = None if confidence is None else confidence[0]
        return SegmentationResult(labels, confidence)

    def plan_batches(self, sizes: Sequence[tuple[int, int]]) -> list[list[int]]:
        """Indices of images of these (H, W) sizes grouped into engine batches, for `segment_batch`.

        Images share a batch when their inference sizes agree (always, with width and height set; by
        input size when they are 0), up to `max_batch` images, as long as the batch stays within
        max_pixels at its input and at its inference size; an image over the limits on its own gets a
        batch of its own (and is refused by `segment_batch` with the reason). Batches come in the
        order of their first image.
        """
        batches: list[list[int]] = []
        open_batch: dict[tuple[int, int], tuple[list[int], int]] = {}  # inference size -> (batch, input pixels)
        for index, (height, width) in enumerate(sizes):
            size = self.inference_size(height, width)
            batch, pixels = open_batch.get(size, ([], 0))
            count, pixels = len(batch) + 1, pixels + height * width
            full = count > self.max_batch or pixels > self.config.max_pixels
            if not batch or full or count * size[0] * size[1] > self.config.max_pixels:
                batch, pixels = [], height * width
                batches.append(batch)
            batch.append(index)
            open_batch[size] = (batch, pixels)
        return batches

    @torch.inference_mode()
    def segment_batch(self, images: Sequence[np.ndarray]) -> list[SegmentationResult]:
        """Segment (H, W, 3) images of any input sizes that share an inference size as one engine batch.

        Result i is image i's, at its own size (`output_resolution: input`), with the same resizing
        as segmenting it alone: only the engine's arithmetic sees the batch (labels equal; confidence
        within float32 rounding, ~1e-8). `plan_batches` forms such groups.
        """
        if not images:
            raise InputError("empty batch")
        for image in images:
            if self._check(image).ndim != 3:
                raise InputError(f"segment_batch takes (H, W, 3) images, got shape {image.shape}")
        sizes = {self.inference_size(*image.shape[:2]) for image in images}
        if len(sizes) > 1:
            raise InputError(f"images of one batch must share an inference size, got {sorted(sizes)}")
        pixels = sum(image.shape[0] * image.shape[1] for image in images)
        if pixels > self.config.max_pixels:
            raise InputError(f"a batch of {len(images)} images of {pixels} pixels exceeds max_pixels")
        self._check_inference_pixels(len(images), sizes.pop())
        return [
            SegmentationResult(labels[0], None if confidence is None else confidence[0])
            for labels, confidence in self._run([image[None] for image in images])
        ]

    def _run(self, parts: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Labels and confidence of (N, H, W, 3) parts sharing one inference size, run as one engine batch.

        Each part is resized to the inference size on its own and its outputs resized back to its own size,
        so a part's results do not depend on the others.
        """
        size = self.inference_size(*parts[0].shape[1:3])
        inputs = []
        for part in parts:
            x = torch.from_numpy(np.ascontiguousarray(part)).to(self.device)
            inputs.append(resize_image(x, size) if tuple(part.shape[1:3]) != size else x)
        labels, confidence = self.engine(inputs[0] if len(inputs) == 1 else torch.cat(inputs))
        results = []
        start = 0
        for part in parts:
            end, in_size = start + part.shape[0], tuple(part.shape[1:3])
            part_labels = labels[start:end]
            part_confidence = None if confidence is None else confidence[start:end]
            start = end
            if self.config.output_resolution == "input" and size != in_size:
                part_labels = F.interpolate(part_labels[:, None], size=in_size, mode="nearest-exact")[:, 0]
                if part_confidence is not None:
                    part_confidence = F.interpolate(
                        part_confidence[:, None], size=in_size, mode="bilinear", align_corners=False
                    )[:, 0]
            results.append(
                (part_labels.cpu().numpy(), None if part_confidence is None else part_confidence.float().cpu().numpy())
            )
        return results


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> uint8 (N, h, w, 3), bilinear; antialiased when shrinking (no aliasing on 4x downscales)."""
    shrink = size[0] < image.shape[1] or size[1] < image.shape[2]
    x = image.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
