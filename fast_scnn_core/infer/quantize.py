"""int8 post-training quantisation of the pipeline graph (NNCF) and the accuracy gate of every CPU precision.

`fast-scnn quantize` (cli/quantize.py) calls these: NNCF calibrates the exported ONNX graph's
activation ranges on frames of the user's own data and inserts the quantisation into the graph
(QuantizeLinear/DequantizeLinear, which OpenVINO runs as int8 kernels); then every precision
the CPU runs is scored (class mIoU) on the validation split with the very engine the node uses, and the
result is stored in the artefact with the checkpoint's sha256 (`precision.py` reads it at engine start).

The graph quantised is `prob` mode's (labels and confidence), so one artefact serves both modes
(`OpenVinoEngine` keeps the labels alone for `cls`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from fast_scnn_core.atomic import atomic_write_bytes
from fast_scnn_core.data.dataset import SegmentationDataset
from fast_scnn_core.errors import ConfigError, DataError
from fast_scnn_core.infer.backends import OpenVinoEngine
from fast_scnn_core.infer.precision import GATE_KEY, INSTALL_HINT, SHA_KEY, Gate
from fast_scnn_core.metrics import confusion_matrix, metrics_from_confusion, no_labelled_pixels


def check_installed() -> None:
    """ConfigError with the install line unless NNCF and OpenVINO import."""
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"fast-scnn quantize needs the openvino extra ({exc.name} is missing): {INSTALL_HINT}"
        ) from None


def spread(count: int, frames: int) -> list[int]:
    """`frames` indices spread evenly over range(count) (all of them when there are no more)."""
    if frames >= count:
        return list(range(count))
    return sorted({int(i) for i in np.linspace(0, count - 1, frames)})


def inference_input(image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (1, h, w, 3) of an (H, W, 3) image at the inference size (h, w; 0 keeps that side), as the node resizes."""
    from fast_scnn_core.infer.segmenter import resize_image

    x = torch.from_numpy(np.ascontiguousarray(image[None]))
    target = (size[0] or image.shape[0], size[1] or image.shape[1])
    return x if target == tuple(image.shape[:2]) else resize_image(x, target)


def quantize_onnx(onnx: bytes, dataset: SegmentationDataset, frames: int, size: tuple[int, int] = (0, 0)) -> bytes:
    """The ONNX graph with int8 quantisation calibrated on `frames` images of `dataset` at the inference `size`."""
    import nncf
    import onnx as onnx_lib

    nncf.set_log_level(logging.WARNING)  # its INFO lines are statistics no user of this command needs
    indices = spread(len(dataset), frames)

    def inputs(index: int) -> dict[str, np.ndarray]:
        return {"image": inference_input(dataset.load(index)[0], size).numpy()}

    model = onnx_lib.load_from_string(onnx)
    quantized = nncf.quantize(model, nncf.Dataset(indices, inputs), subset_size=len(indices))
    return quantized.SerializeToString()


def score(engine: Callable[[torch.Tensor], tuple], dataset: SegmentationDataset, size: tuple[int, int]) -> float:
    """Class mIoU (0..1) of `engine` (uint8 NHWC -> labels) over every image of `dataset`: inferred at the inference
    `size`, scored at the label's (labels resized back nearest-neighbour, as the node's `output_resolution: input`)."""
    classes = dataset.classes
    confusion = torch.zeros(classes.num_classes, classes.num_classes, dtype=torch.int64)
    for index in range(len(dataset)):
        image, label = dataset.load(index)
        labels, _ = engine(inference_input(image, size))
        if labels.shape[1:] != label.shape:
            labels = torch.nn.functional.interpolate(labels[:, None], size=label.shape, mode="nearest-exact")[:, 0]
        confusion += confusion_matrix(labels[0], torch.from_numpy(label), classes.num_classes)
    metrics = metrics_from_confusion(confusion, classes)
    if not metrics["pixels"]:
        raise DataError(no_labelled_pixels("validation"))
    return float(metrics["miou"])


def measure_gate(
    graphs: dict[str, bytes],
    dataset: SegmentationDataset,
    precisions: Sequence[str],
    threads: int,
    data: str,
    size: tuple[int, int] = (0, 0),
) -> Gate:
    """mIoU of each of `precisions` on `dataset` at the inference `size`: f32 and bf16 run graphs["f32"], int8
    graphs["int8"]."""
    bf16 = "bf16" in precisions
    miou = {}
    for precision in precisions:
        onnx = graphs["int8" if precision == "int8" else "f32"]
        engine = OpenVinoEngine(onnx, precision=precision, threads=threads, bf16=bf16, outputs=1)
        miou[precision] = score(engine, dataset, size)
    height, width = inference_input(dataset.load(0)[0], size).shape[1:3]
    return Gate(miou, data, len(dataset), f"{height}x{width}")


def write_artefact(path: str | Path, onnx: bytes, checkpoint_sha256: str, gate: Gate, checkpoint: str) -> None:
    """The int8 graph with the checkpoint's sha256 and the gate in its ONNX metadata, written atomically."""
    import onnx as onnx_lib

    proto = onnx_lib.load_from_string(onnx)
    meta = {
        SHA_KEY: checkpoint_sha256,
        GATE_KEY: gate.to_json(),
        "fast_scnn.checkpoint": str(checkpoint),
        "fast_scnn.graph": "pipeline",
        "fast_scnn.mode": "prob",
        "fast_scnn.precision": "int8",
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    atomic_write_bytes(path, proto.SerializeToString())


def gate_table(gate: Gate) -> str:
    """The gate as a Markdown table: precision, mIoU, points against f32, whether `auto` may choose it."""
    from fast_scnn_core.infer.precision import GATE_POINTS

    lines = ["| precision | mIoU | vs f32 (points) | within the gate |", "|---|---:|---:|---|"]
    for precision, miou in gate.miou.items():
        delta = gate.delta_points(precision)
        passes = "reference" if precision == "f32" else ("yes" if gate.passes(precision) else "no")
        lines.append(f"| {precision} | {100 * miou:.2f} % | {0.0 - delta + 0.0:+.2f} | {passes} |")
    lines.append(
        f"(gate: within {GATE_POINTS} mIoU points of f32; {json.dumps(gate.data)}, {gate.images} images of "
        f"{gate.size}: it holds at that resolution, calibrate and score at the one the node runs)"
    )
    return "\n".join(lines)
