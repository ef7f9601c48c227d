"""`fast-scnn quantize`: int8 post-training quantisation (NNCF) for the OpenVINO backend, with its accuracy gate.

Calibrates on `--frames` images of the user's data (`--split`, default train) at the inference size
(`--width`/`--height`, the node's; 0 = the images' own), then scores f32, bf16
(where the CPU has it) and int8 on `--val-split` with the OpenVINO engine the node runs, and writes
`<checkpoint>.int8.onnx` beside the checkpoint: the int8 graph, the checkpoint's sha256 and the
mIoU of each precision. The engine reads it at start (`precision: int8`, or `auto` when int8 is within
0.3 mIoU points of f32) and refuses it once the checkpoint changed. nncf, openvino and torch are
imported when the command runs, not for `--help`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fast_scnn_core.cli.eval import FORMATS
from fast_scnn_core.infer.options import add_option_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint (.pt) written by `fast-scnn train`")
    parser.add_argument("--data", required=True, help="dataset root (Cityscapes layout or images/ + masks/)")
    parser.add_argument("--format", choices=FORMATS, default="cityscapes", help="dataset layout")
    parser.add_argument("--split", default="train", help="split whose frames calibrate the int8 ranges")
    parser.add_argument("--val-split", default="val", help="split that scores each precision (the accuracy gate)")
    parser.add_argument("--frames", type=int, default=300, help="calibration frames, spread over the split")
    parser.add_argument(
        "--out", default="", help="artefact to write (default: <checkpoint>.int8.onnx, where the engine looks)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace the artefact if it exists")
    # The gate holds at the resolution it was measured at: give the node's width/height (docs/benchmarks.md)
    for name in ("width", "height", "threads"):
        add_option_argument(parser, name)


def _datasets(args: argparse.Namespace, payload: dict) -> tuple:
    """(calibration split, validation split) with the checkpoint's classes; DataError or CheckpointError if not."""
    from fast_scnn_core.data import DataConfig, build_dataset
    from fast_scnn_core.errors import CheckpointError
    from fast_scnn_core.model.checkpoint import class_set_of

    classes = class_set_of(payload)
    data = DataConfig(format=args.format, root=args.data)
    calibration, validation = (build_dataset(data, [split], classes=classes) for split in (args.split, args.val_split))
    if validation.classes != classes:
        raise CheckpointError(
            f"{args.checkpoint} was trained on {classes.num_classes} classes {list(classes.names)}, but the "
            f"dataset {args.data} uses {validation.classes.num_classes} classes {list(validation.classes.names)}"
        )
    return calibration, validation


def run(args: argparse.Namespace) -> int:
    from fast_scnn_core.atomic import refuse_overwrite
    from fast_scnn_core.errors import ConfigError
    from fast_scnn_core.infer import quantize
    from fast_scnn_core.infer.graph import onnx_bytes, pipeline_graph
    from fast_scnn_core.infer.options import InferenceConfig
    from fast_scnn_core.infer.precision import artefact_path, cpu_precisions, file_sha256
    from fast_scnn_core.model.checkpoint import build_model, load_checkpoint

    if args.frames < 1:
        raise ConfigError(f"--frames {args.frames}: expected at least 1 calibration frame")
    InferenceConfig(threads=args.threads, width=args.width, height=args.height)  # the options' own checks
    size = (args.height, args.width)
    out = Path(args.out) if args.out else artefact_path(args.checkpoint)
    refuse_overwrite(out, args.overwrite)
    quantize.check_installed()
    payload = load_checkpoint(args.checkpoint)
    sha256 = file_sha256(args.checkpoint)
    calibration, validation = _datasets(args, payload)
    model, mean, std = build_model(payload), tuple(payload["mean"]), tuple(payload["std"])
    graphs = {"f32": onnx_bytes(pipeline_graph(model, mean, std, "cls"))}
    frames = min(args.frames, len(calibration))
    print(f"calibrating int8 on {frames} frames of {args.data} {args.split} ...", flush=True)
    prob = onnx_bytes(pipeline_graph(model, mean, std, "prob"))
    graphs["int8"] = quantize.quantize_onnx(prob, calibration, frames, size)
    print(f"scoring {', '.join(cpu_precisions())} on {len(validation)} images of {args.val_split} ...", flush=True)
    where = f"{args.data} {args.val_split}"
    gate = quantize.measure_gate(graphs, validation, cpu_precisions(), args.threads, where, size)
    quantize.write_artefact(out, graphs["int8"], sha256, gate, args.checkpoint)
    print(quantize.gate_table(gate))
    print(f"wrote {out}")
    return 0
