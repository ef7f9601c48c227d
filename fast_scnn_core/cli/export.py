"""`fast-scnn export`: a checkpoint to ONNX or TorchScript with dynamic batch, height and width.

`--graph model` writes the network alone (float NCHW normalised image -> `--mode` output);
`--graph pipeline` writes `SegmentationGraph` (uint8 NHWC RGB -> uint8 labels [+ confidence]), the
graph the Segmenter's backends run (see `fast_scnn_core.infer.graph`). Every file is loaded back
(ONNX Runtime, `torch.jit.load`'s module) and checked against PyTorch at odd sizes before it is
written. torch, onnx and onnxruntime are imported when the command runs, not for `--help`.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the module imports no torch until the command runs
    import numpy as np
    import torch


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
    parser.add_argument("--opset", type=int, help="ONNX opset (default: fast_scnn_core.infer.graph.OPSET)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def run(args: argparse.Namespace) -> int:
    import torch

    from fast_scnn_core.atomic import atomic_write_bytes, refuse_overwrite
    from fast_scnn_core.errors import ConfigError
    from fast_scnn_core.infer.graph import OPSET, check_export, onnx_bytes, pipeline_graph, torchscript
    from fast_scnn_core.model.checkpoint import build_model, load_checkpoint

    out = Path(args.out)
    refuse_overwrite(out, args.overwrite)
    payload = load_checkpoint(args.checkpoint)
    model = build_model(payload).eval()
    mean, std = tuple(payload["mean"]), tuple(payload["std"])
    if args.graph == "pipeline":
        if args.mode not in ("cls", "prob"):
            raise ConfigError("--graph pipeline takes --mode cls or prob")
        graph: torch.nn.Module = pipeline_graph(model, mean, std, args.mode)
    else:
        model.mode = args.mode
        graph = model
    if args.format == "onnx":
        data = onnx_bytes(graph, args.exporter, OPSET if args.opset is None else args.opset)
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


def _run_onnx(data: bytes, inputs: torch.Tensor) -> list[np.ndarray]:
    import onnxruntime as ort  # the `onnx` extra; imported only when used

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: inputs.numpy()})


def _run_torchscript(module: torch.jit.ScriptModule, x: torch.Tensor) -> list[np.ndarray]:
    import torch

    with torch.inference_mode():
        out = module(x)
    return [t.numpy() for t in ([out] if isinstance(out, torch.Tensor) else out)]


def _with_metadata(data: bytes, payload: dict, graph: str, mode: str) -> bytes:
    """Store class names, colours, mean/std and the graph kind in the ONNX metadata, so the file is self-describing."""
    import onnx

    from fast_scnn_core.model.checkpoint import class_set_of

    proto = onnx.load_from_string(data)
    classes = class_set_of(payload)
    meta = {
        "fast_scnn.graph": graph,
        "fast_scnn.mode": mode,
        "fast_scnn.classes": json.dumps(classes.to_dict()),
        "fast_scnn.mean": json.dumps(payload["mean"]),
        "fast_scnn.std": json.dumps(payload["std"]),
        "fast_scnn.arch_version": str(payload["arch_version"]),
        "fast_scnn.variant": payload["variant"],
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()
