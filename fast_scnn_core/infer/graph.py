"""The one graph every backend runs and every export writes, with its ONNX/TorchScript serialisers and check.

Two graphs can be exported (`fast-scnn export`, in `cli/export.py`):

- `model`: the network alone, float (N, 3, H, W) normalised image -> logits / prob / labels,
  the usual interchange form;
- `pipeline` (`SegmentationGraph`): uint8 (N, H, W, 3) RGB -> uint8 labels (and float32
  confidence in `prob` mode), with the normalisation, BatchNorm folding and the argmax inside the
  graph. This is what the Segmenter's backends run.

Every export is checked (`check_export`): the exported graph is run back and its output compared
with PyTorch at several sizes, odd ones included (97x131), so a graph that baked in the example's
size fails there, not in deployment.

The pyramid pooling's adaptive average pooling is the known trap (the legacy exporter refuses it
when the feature map is not a multiple of the bin, bin 3 on 16x32); `model.adaptive_avg_pool2d`
switches to an averaging-matrix form under tracing/export, so any size exports.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn

from fast_scnn_core.errors import ConfigError, FastSCNNError
from fast_scnn_core.model.checkpoint import IMAGENET_MEAN, IMAGENET_STD
from fast_scnn_core.model.fuse import fold_batchnorm
from fast_scnn_core.model.network import FastSCNN, labels_and_confidence

Exporter = Literal["legacy", "dynamo"]
OPSET = 17
CHECK_SIZES = ((97, 131), (64, 128))


class SegmentationGraph(nn.Module):
    """uint8 (N, H, W, 3) RGB -> uint8 labels (N, H, W) [+ float32 max-softmax confidence in `prob` mode].

    The one graph every backend runs, so backends differ only in how they execute it. The model
    is called for the output this graph needs (`model(x, mode=...)`); its own `mode` is left as it was.
    """

    def __init__(
        self,
        model: FastSCNN,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        mode: Literal["cls", "prob"] = "cls",
    ) -> None:
        super().__init__()
        if mode not in ("cls", "prob"):
            raise ConfigError(f"mode must be 'cls' or 'prob', got {mode!r}")
        self.model = model
        self.mode = mode
        # (x / 255 - mean) / std == x * scale + shift, one fused multiply-add per pixel.
        scale = torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, 3, 1, 1)
        shift = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)]).view(1, 3, 1, 1)
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = image.permute(0, 3, 1, 2).to(self.scale.dtype) * self.scale + self.shift
        if self.mode == "cls":
            return self.model(x, mode="cls").to(torch.uint8)
        labels, confidence = labels_and_confidence(self.model(x, mode="logits"))
        # No Cast node when it is float32 already: NNCF's ONNX passes fail on a no-op Cast that is a graph output.
        return labels.to(torch.uint8), confidence if confidence.dtype == torch.float32 else confidence.float()


def pipeline_graph(
    model: FastSCNN,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    mode: Literal["cls", "prob"] = "cls",
    fold: bool = True,
) -> SegmentationGraph:
    """The deployable graph on a CPU float32 eval copy of `model` (the caller's is left as it was).

    `fold` folds BatchNorm into the convolutions (exact to float rounding); the eager baseline
    (the torch backend without `optimize`) keeps it.
    """
    model = copy.deepcopy(model).cpu().float().eval()
    return SegmentationGraph(fold_batchnorm(model) if fold else model, mean, std, mode).eval()


def _io_names(graph: nn.Module) -> tuple[list[str], list[str], dict[str, dict[int, str]]]:
    if isinstance(graph, SegmentationGraph):
        outputs = ["labels"] if graph.mode == "cls" else ["labels", "confidence"]
        axes = {"image": {0: "batch", 1: "height", 2: "width"}}
        axes.update({name: {0: "batch", 1: "height", 2: "width"} for name in outputs})
        return ["image"], outputs, axes
    output = {"logits": "logits", "prob": "prob", "cls": "labels"}[graph.mode]
    spatial = {0: "batch", 2: "height", 3: "width"}
    return (
        ["image"],
        [output],
        {"image": spatial, output: spatial if graph.mode != "cls" else {0: "batch", 1: "height", 2: "width"}},
    )


def example_input(graph: nn.Module, height: int = 64, width: int = 96) -> torch.Tensor:
    """An input of the graph's kind (uint8 NHWC for the pipeline, float NCHW for the model)."""
    generator = torch.Generator().manual_seed(0)
    if isinstance(graph, SegmentationGraph):
        return torch.randint(0, 256, (1, height, width, 3), dtype=torch.uint8, generator=generator)
    return torch.randn(1, 3, height, width, generator=generator)


# The dynamo exporter logs "torchvision is not installed. Skipping torchvision::nms" (and roi_align, ...) at every
# export, through this logger: those ops are not in our graphs, so the notices are nobody's concern here.
_REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"
_TORCHVISION_NOTICE = "torchvision is not installed. Skipping"


def _not_torchvision_notice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_TORCHVISION_NOTICE)


@contextlib.contextmanager
def _without_torchvision_notices() -> Iterator[None]:
    """Drop the exporter's "torchvision is not installed" records (that message only) while the block runs."""
    logger = logging.getLogger(_REGISTRATION_LOGGER)
    logger.addFilter(_not_torchvision_notice)
    try:
        yield
    finally:
        logger.removeFilter(_not_torchvision_notice)


def onnx_bytes(graph: nn.Module, exporter: Exporter = "legacy", opset: int = OPSET) -> bytes:
    """Serialised ONNX model of `graph` with dynamic batch/height/width.

    `legacy` (TorchScript-based, about 1 s) is the default because the Segmenter exports at start
    up; `dynamo` (torch.export-based, about 10 s) is the exporter PyTorch now recommends. Both are
    checked at odd sizes by the tests.
    """
    inputs, outputs, axes = _io_names(graph)
    example = example_input(graph)
    with warnings.catch_warnings(), _without_torchvision_notices():
        warnings.simplefilter("ignore")  # deprecation notices of the legacy exporter, tracer warnings
        if exporter == "legacy":
            buffer = io.BytesIO()
            torch.onnx.export(
                graph,
                (example,),
                buffer,
                dynamo=False,
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=opset,
            )
            return buffer.getvalue()
        if exporter == "dynamo":
            # Dim.DYNAMIC lets torch.export derive the valid range (sizes below 33 pixels are specialised away).
            # Given by position: the ONNX input is named "image" but FastSCNN.forward's argument is `x`.
            shapes = (dict.fromkeys(axes[inputs[0]], torch.export.Dim.DYNAMIC),)
            example = torch.cat([example, example])  # batch 1 would be specialised to a constant
            program = torch.onnx.export(
                graph,
                (example,),
                dynamo=True,
                input_names=inputs,
                output_names=outputs,
                dynamic_shapes=shapes,
                opset_version=max(opset, 18),
                verbose=False,
            )
            return program.model_proto.SerializeToString()
    raise ConfigError(f"exporter must be 'legacy' or 'dynamo', got {exporter!r}")


def torchscript(graph: nn.Module) -> torch.jit.ScriptModule:
    """A traced TorchScript module; sizes are read from the input at run time (checked at odd sizes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(graph, (example_input(graph),), check_trace=False)


def check_export(
    graph: nn.Module,
    run: Callable[[torch.Tensor], Sequence[np.ndarray]],
    sizes: Sequence[tuple[int, int]] = CHECK_SIZES,
    atol: float = 1e-3,
    min_agreement: float = 0.995,
) -> str:
    """Compare `run(input) -> list of arrays` with PyTorch at `sizes`; raise FastSCNNError on a mismatch.

    Floats (logits, probabilities, confidence) must agree to `atol` relative to their scale; labels
    on at least `min_agreement` of the pixels (near-ties may flip under different op orders).
    """
    lines = []
    for height, width in sizes:
        x = example_input(graph, height, width)
        with torch.inference_mode():
            expected = graph(x)
        expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
        got = run(x)
        for ref, out in zip(expected, got, strict=True):
            ref = ref.numpy()
            out = np.asarray(out)
            if out.shape != ref.shape:
                raise FastSCNNError(
                    f"exported graph at {height}x{width}: output shape {out.shape}, PyTorch {ref.shape}"
                )
            if ref.dtype.kind == "f":
                error = float(np.abs(out - ref).max()) / max(1.0, float(np.abs(ref).max()))
                if error > atol:
                    raise FastSCNNError(f"exported graph at {height}x{width}: relative error {error:.2e} > {atol}")
                lines.append(f"{height}x{width}: max relative error {error:.1e}")
            else:
                agreement = float((out == ref).mean())
                if agreement < min_agreement:
                    raise FastSCNNError(f"exported graph at {height}x{width}: labels agree on {agreement:.2%}")
                lines.append(f"{height}x{width}: labels agree on {agreement:.2%}")
    return "; ".join(lines)
