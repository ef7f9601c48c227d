"""`fast-scnn export`: a checkpoint to ONNX or TorchScript with dynamic batch, height and width.

Two graphs can be exported:

- `model`: the network alone, float (N, 3, H, W) normalised image -> logits / prob / labels,
  the usual interchange form;
- `pipeline` (`SegmentationGraph`): uint8 (N, H, W, 3) RGB -> uint8 labels (and float32
  confidence in `prob` mode), with the normalisation, BatchNorm folding and the argmax inside the
  graph. This is what the Segmenter's onnxruntime/TensorRT backends run.

Every export is checked: the exported file is loaded back (ONNX Runtime for ONNX, `torch.jit.load`
for TorchScript) and its output compared with PyTorch at several sizes, odd ones included
(97x131), so a graph that baked in the example's size fails here, not in deployment.

The pyramid pooling's adaptive average pooling is the known trap (the legacy exporter refuses it
when the feature map is not a multiple of the bin, bin 3 on 16x32); `model.adaptive_avg_pool2d`
switches to an averaging-matrix form under tracing/export, so any size exports.
"""

from __future__ import annotations

import argparse
import io
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from fast_scnn_core.atomic import atomic_write_bytes
from fast_scnn_core.errors import ConfigError, FastSCNNError
from fast_scnn_core.model.checkpoint import IMAGENET_MEAN, IMAGENET_STD, build_model, class_set_of, load_checkpoint
from fast_scnn_core.model.fuse import fold_batchnorm
from fast_scnn_core.model.network import FastSCNN

Exporter = Literal["legacy", "dynamo"]
OPSET = 17
CHECK_SIZES = ((97, 131), (64, 128))


class SegmentationGraph(nn.Module):
    """uint8 (N, H, W, 3) RGB -> uint8 labels (N, H, W) [+ float32 max-softmax confidence in `prob` mode].

    The one graph every backend runs, so backends differ only in how they execute it. The
    confidence is 1 / sum(exp(logits - max)), the max softmax probability without building the
    (N, C, H, W) softmax.
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
        self.model.mode = "logits"
        self.mode = mode
        # (x / 255 - mean) / std == x * scale + shift, one fused multiply-add per pixel.
        scale = torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, 3, 1, 1)
        shift = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)]).view(1, 3, 1, 1)
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        dtype = self.scale.dtype
        x = image.permute(0, 3, 1, 2).to(dtype) * self.scale + self.shift
        logits = self.model(x)
        if self.mode == "cls":
            return logits.argmax(dim=1).to(torch.uint8)
        top, labels = logits.max(dim=1)
        confidence = 1.0 / torch.exp(logits - top.unsqueeze(1)).sum(dim=1)
        return labels.to(torch.uint8), confidence.float()


def pipeline_graph(
    model: FastSCNN,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    mode: Literal["cls", "prob"] = "cls",
) -> SegmentationGraph:
    """The deployable graph: BatchNorm folded (exact to float rounding), eval mode, CPU float32."""
    return SegmentationGraph(fold_batchnorm(model.cpu().float().eval()), mean, std, mode).eval()


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


def onnx_bytes(graph: nn.Module, exporter: Exporter = "legacy", opset: int = OPSET) -> bytes:
    """Serialised ONNX model of `graph` with dynamic batch/height/width.

    `legacy` (TorchScript-based, about 1 s) is the default because the Segmenter exports at start
    up; `dynamo` (torch.export-based, about 10 s) is the exporter PyTorch now recommends. Both are
    checked at odd sizes by the tests.
    """
    inputs, outputs, axes = _io_names(graph)
    example = example_input(graph)
    with warnings.catch_warnings():
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


def _run_onnx(data: bytes, inputs: torch.Tensor) -> list[np.ndarray]:
    import onnxruntime as ort  # the `onnx` extra; imported only when used

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: inputs.numpy()})


def check_export(graph: nn.Module, run, sizes=CHECK_SIZES, atol: float = 1e-3, min_agreement: float = 0.995) -> str:
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint (.pt) written by `fast-scnn train`")
    parser.add_argument("--out", required=True, help="output file (.onnx or .ts/.pt)")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    parser.add_argument(
        "--graph",
        choices=("model", "pipeline"),
        default="model",
        help="model: normalised float NCHW -> --mode output; pipeline: uint8 NHWC RGB -> uint8 labels (+confidence)",
    )
    parser.add_argument("--mode", choices=("logits", "prob", "cls"), default="logits", help="output of --graph model")
    parser.add_argument("--exporter", choices=("legacy", "dynamo"), default="dynamo", help="ONNX exporter")
    parser.add_argument("--opset", type=int, default=OPSET)
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise FastSCNNError(f"{out} exists; pass --overwrite to replace it")
    payload = load_checkpoint(args.checkpoint)
    model = build_model(payload).eval()
    mean, std = tuple(payload["mean"]), tuple(payload["std"])
    if args.graph == "pipeline":
        if args.mode not in ("cls", "prob"):
            raise ConfigError("--graph pipeline takes --mode cls or prob")
        graph: nn.Module = pipeline_graph(model, mean, std, args.mode)
    else:
        model.mode = args.mode
        graph = model
    if args.format == "onnx":
        data = onnx_bytes(graph, args.exporter, args.opset)
        report = check_export(graph, lambda x: _run_onnx(data, x))
        data = _with_metadata(data, payload, args.graph, args.mode)
    else:
        module = torchscript(graph)
        report = check_export(graph, lambda x: _run_torchscript(module, x))
        buffer = io.BytesIO()  # written by Python, so a full disk is an OSError that atomic_write_bytes reports
        torch.jit.save(module, buffer)
        data = buffer.getvalue()
    atomic_write_bytes(out, data)
    print(f"wrote {out} ({args.format}, graph={args.graph}, mode={args.mode}); check against PyTorch: {report}")
    return 0


def _run_torchscript(module: torch.jit.ScriptModule, x: torch.Tensor) -> list[np.ndarray]:
    with torch.inference_mode():
        out = module(x)
    return [t.numpy() for t in ([out] if isinstance(out, torch.Tensor) else out)]


def _with_metadata(data: bytes, payload: dict, graph: str, mode: str) -> bytes:
    """Store class names, colours, mean/std and the graph kind in the ONNX metadata, so the file is self-describing."""
    import json

    import onnx

    proto = onnx.load_from_string(data)
    classes = class_set_of(payload)
    meta = {
        "fast_scnn.graph": graph,
        "fast_scnn.mode": mode,
        "fast_scnn.classes": json.dumps(classes.to_dict()),
        "fast_scnn.mean": json.dumps(payload["mean"]),
        "fast_scnn.std": json.dumps(payload["std"]),
        "fast_scnn.arch_version": str(payload["arch_version"]),
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()
