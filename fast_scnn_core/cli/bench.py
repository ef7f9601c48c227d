"""`fast-scnn bench`: the paper's runtime protocol (sec. 4.1) over backends, devices, modes and resolutions.

Protocol: batch 1; per configuration 100 burn-in frames, then the mean of 100 timed frames
(`--warmup`, `--frames`); `cls` (labels) and `prob` (labels + max-softmax confidence) modes;
1024x2048, 512x1024 and 256x512 (Table 5). One frame is the whole `Segmenter` call: uint8 RGB
image on the host in, uint8 labels (and float32 confidence) on the host out, so pre- and
post-processing and transfers are included (the paper times the network only).

All variants of one (device, size, mode) are built side by side and their timed frames are
interleaved (frame i of every variant before frame i+1 of any), so drift of a noisy machine
(thermal, other load) hits every variant alike. The ratio column is fps over the plain eager
fp32 PyTorch path (`torch-eager`) of the same device, size and mode; the agreement column is
the share of pixels whose label equals `torch-eager`'s on the benchmark image.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fast_scnn_core.atomic import atomic_write_text
from fast_scnn_core.errors import ConfigError
from fast_scnn_core.infer.options import InferenceConfig
from fast_scnn_core.limits import parse_sizes

if TYPE_CHECKING:  # annotations only: torch, numpy and the engine are imported when the command runs
    import numpy as np

    from fast_scnn_core.infer.segmenter import Segmenter
    from fast_scnn_core.labels import ClassSet
    from fast_scnn_core.model.network import FastSCNN

PAPER_SIZES = ((1024, 2048), (512, 1024), (256, 512))
QUICK_SIZES = ((64, 128), (96, 160))
BASELINE = "torch-eager"
# The CPU features the backends' precisions use, named in the machine line (from /proc/cpuinfo)
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "avx_vnni")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way to run the engine: a name for the table and the InferenceConfig fields it sets.

    `architecture` times another network variant (FastSCNN(variant=...), untrained: speed only, its labels are
    not compared): "tramac" is Tramac's PyTorch model, the baseline users compare with.
    """

    name: str
    options: dict
    architecture: str = ""

    def config(self, device: str, mode: str, threads: int, size: tuple[int, int]) -> InferenceConfig:
        return InferenceConfig(device=device, mode=mode, threads=threads, height=size[0], width=size[1], **self.options)


def variants(
    device: str, backends: list[str], fp16: bool, compile: bool, precision: bool = False, checkpoint: str = ""
) -> list[Variant]:
    """The variants available for `device` among `backends`; the eager fp32 baseline always comes first.

    `precision` adds Tramac's eager model and OpenVINO in every precision this CPU runs (int8 with the
    checkpoint's artefact of `fast-scnn quantize`).
    """
    cuda = device.startswith("cuda")
    found = [Variant(BASELINE, {"backend": "torch", "optimize": False})]
    if precision:
        found.append(Variant("tramac-eager", {"backend": "torch", "optimize": False}, "tramac"))
    if "torch" in backends:
        found.append(Variant("torch", {"backend": "torch"}))
        if compile:
            found.append(Variant("torch-compile", {"backend": "torch", "compile": True}))
        if cuda and fp16:
            found.append(Variant("torch-fp16", {"backend": "torch", "fp16": True}))
    if "onnxruntime" in backends and importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime as ort

        if not cuda or "CUDAExecutionProvider" in ort.get_available_providers():
            found.append(Variant("onnxruntime", {"backend": "onnxruntime"}))
    if precision and not cuda:
        found += openvino_variants(checkpoint)
    if "tensorrt" in backends and cuda and importlib.util.find_spec("tensorrt") is not None:
        found.append(Variant("tensorrt", {"backend": "tensorrt"}))
        if fp16:
            found.append(Variant("tensorrt-fp16", {"backend": "tensorrt", "fp16": True}))
    return found


def openvino_variants(checkpoint: str) -> list[Variant]:
    """OpenVINO in f32, bf16 where the CPU has it, int8 when the checkpoint has a fresh artefact; none without it."""
    from fast_scnn_core.infer.precision import cpu_precisions, fresh_artefact, openvino_installed

    if not openvino_installed():
        return []
    artefact, _ = fresh_artefact(checkpoint)
    return [
        Variant(f"openvino-{p}", {"backend": "openvino", "precision": p, "checkpoint": checkpoint})
        for p in cpu_precisions()
        if p != "int8" or artefact is not None
    ]


def scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic street-like test picture: smooth colour regions with edges, not white noise."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (1, 3, max(2, height // 64), max(2, width // 64))).astype(np.float32)
    image = torch.nn.functional.interpolate(torch.from_numpy(coarse), size=(height, width), mode="nearest")
    image = image + torch.from_numpy(rng.normal(0, 8, (1, 3, height, width)).astype(np.float32))
    return image.clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).contiguous().numpy()


def _time(segmenters: dict[str, Segmenter], image: np.ndarray, warmup: int, frames: int) -> dict[str, list[float]]:
    for segmenter in segmenters.values():
        for _ in range(warmup):
            segmenter(image)
    times: dict[str, list[float]] = {name: [] for name in segmenters}
    for _ in range(frames):
        for name, segmenter in segmenters.items():
            start = time.perf_counter()
            segmenter(image)
            times[name].append(time.perf_counter() - start)
    return times


def run_benchmark(
    model: FastSCNN,
    classes: ClassSet,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    *,
    devices: list[str],
    backends: list[str],
    sizes: tuple[tuple[int, int], ...],
    modes: tuple[str, ...],
    warmup: int,
    frames: int,
    threads: int = 0,
    fp16: bool = False,
    compile: bool = False,
    image: np.ndarray | None = None,
    precision: bool = False,
    checkpoint: str = "",
    log: Callable[[str], object] = print,
) -> list[dict]:
    """Rows of results, one per (device, size, mode, variant)."""
    from fast_scnn_core.infer.segmenter import Segmenter
    from fast_scnn_core.model.network import FastSCNN

    other = {"tramac": FastSCNN(classes.num_classes, aux=False, variant="tramac").eval()} if precision else {}
    gate = _gate(checkpoint)
    rows = []
    for device in devices:
        for size in sizes:
            picture = scene(*size) if image is None else _resize(image, size)
            for mode in modes:
                segmenters, architecture = {}, {}
                for v in variants(device, backends, fp16, compile, precision, checkpoint):
                    config = v.config(device, mode, threads, size)
                    segmenters[v.name] = Segmenter(other.get(v.architecture, model), classes, config, mean, std)
                    architecture[v.name] = v.architecture
                reference = segmenters[BASELINE](picture).labels
                agreement = {
                    n: math.nan if architecture[n] else float((s(picture).labels == reference).mean())
                    for n, s in segmenters.items()
                }
                times = _time(segmenters, picture, warmup, frames)
                where = {"device": device, "height": size[0], "width": size[1], "mode": mode, "threads": threads}
                for row in _rows(times, agreement, where, warmup):
                    row["precision"] = segmenters[row["variant"]].precision
                    row["miou_delta"] = (
                        gate.delta_points(row["precision"]) if gate and "openvino" in row["variant"] else None
                    )
                    rows.append(row)
                    log(_format_row(row))
    return rows


def _gate(checkpoint: str):
    """The accuracy gate `fast-scnn quantize` recorded for the checkpoint, None without one (or without OpenVINO)."""
    from fast_scnn_core.infer.precision import fresh_artefact

    if not checkpoint or importlib.util.find_spec("onnx") is None:
        return None
    artefact, _ = fresh_artefact(checkpoint)
    return artefact.gate if artefact else None


def _rows(times: dict[str, list[float]], agreement: dict[str, float], where: dict, warmup: int) -> list[dict]:
    """One row per variant of a (device, size, mode): mean and median ms, fps, ratio to the baseline, agreement."""
    base_ms = 1000 * statistics.fmean(times[BASELINE])
    rows = []
    for name, samples in times.items():
        ms = 1000 * statistics.fmean(samples)
        rows.append(
            {
                **where,
                "variant": name,
                "ms": ms,
                "median_ms": 1000 * statistics.median(samples),
                "fps": 1000 / ms,
                "ratio": base_ms / ms,
                "agreement": agreement[name],
                "frames": len(samples),
                "warmup": warmup,
            }
        )
    return rows


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


HEADER = (
    "| device | size | mode | variant | ms (mean) | ms (median) | fps | x eager fp32 | labels = eager | precision "
    "| threads | mIoU vs f32 (points) |"
)


def _format_row(row: dict) -> str:
    agreement = "n/a" if math.isnan(row["agreement"]) else f"{100 * row['agreement']:.2f} %"
    delta = "" if row.get("miou_delta") is None else f"{0.0 - row['miou_delta'] + 0.0:+.2f}"
    return (
        f"| {row['device']} | {row['height']}x{row['width']} | {row['mode']} | {row['variant']} | "
        f"{row['ms']:.1f} | {row['median_ms']:.1f} | {row['fps']:.1f} | {row['ratio']:.2f} | "
        f"{agreement} | {row.get('precision', '')} | {row.get('threads', '')} | {delta} |"
    )


def markdown(rows: list[dict], machine: dict) -> str:
    lines = [
        "# fast-scnn bench",
        "",
        f"Machine: {machine['cpu']} ({machine['cores']} cores), {machine['gpu'] or 'no GPU'}; "
        f"CPU flags {' '.join(machine.get('cpu_flags', [])) or 'n/a'}; torch {machine['torch']}, onnxruntime "
        f"{machine['onnxruntime']}, openvino {machine.get('openvino')}, threads {machine['threads']}; "
        f"{machine['date']}.",
        f"Command: `{machine['command']}`",
        "",
        HEADER,
        "|---|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|",
        *(_format_row(r) for r in rows),
        "",
    ]
    return "\n".join(lines)


def machine_info(threads: int, command: str) -> dict:
    import torch

    cpu, flags = platform.processor() or platform.machine(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = [f for f in line.split(":", 1)[1].split() if f in CPU_FLAGS]
                break
    except OSError:
        pass
    openvino_version = None
    if importlib.util.find_spec("openvino") is not None:
        import openvino

        openvino_version = openvino.__version__.split("-")[0]
    ort_version = None
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        ort_version = onnxruntime.__version__
    return {
        "cpu": cpu,
        "cpu_flags": flags,
        "openvino": openvino_version,
        "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "onnxruntime": ort_version,
        "threads": threads or torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="checkpoint to time (default: an untrained 19-class model)")
    parser.add_argument("--devices", default="auto", help="comma-separated: cpu, cuda, cuda:N; auto = cpu and cuda")
    parser.add_argument("--backends", default="torch,onnxruntime,tensorrt", help="which backends to try if present")
    parser.add_argument("--sizes", default="1024x2048,512x1024,256x512", help="HxW list (Table 5's by default)")
    parser.add_argument("--modes", default="cls,prob")
    parser.add_argument("--warmup", type=int, default=100, help="burn-in frames per variant (paper: 100)")
    parser.add_argument("--frames", type=int, default=100, help="timed frames per variant (paper: 100)")
    parser.add_argument(
        "--threads", default="0", help="CPU threads, a comma-separated list run in turn (0 = all cores)"
    )
    parser.add_argument(
        "--precision",
        action="store_true",
        help="also Tramac's eager model and OpenVINO f32, bf16 (where the CPU has it) and int8 (with --checkpoint's "
        "artefact of `fast-scnn quantize`), each precision's mIoU against f32 from that artefact's gate",
    )
    parser.add_argument("--fp16", action="store_true", help="also time fp16 variants on CUDA")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to build)")
    parser.add_argument("--image", help="benchmark on this image (resized to each size) instead of a synthetic scene")
    parser.add_argument("--quick", action="store_true", help="CI smoke run: 2 burn-in, 3 timed frames, tiny sizes")
    parser.add_argument("--json", help="write the rows and the machine description here")
    parser.add_argument("--markdown", help="write the table here")


def _model(checkpoint: str | None) -> tuple[FastSCNN, ClassSet, tuple, tuple]:
    """(model, classes, mean, std) of `checkpoint`, or an untrained 19-class Cityscapes model without one."""
    if checkpoint:
        from fast_scnn_core.model.checkpoint import build_model, class_set_of, load_checkpoint

        payload = load_checkpoint(checkpoint)
        return build_model(payload), class_set_of(payload), tuple(payload["mean"]), tuple(payload["std"])
    from fast_scnn_core.labels import CITYSCAPES
    from fast_scnn_core.model.checkpoint import IMAGENET_MEAN, IMAGENET_STD
    from fast_scnn_core.model.network import FastSCNN

    return FastSCNN(CITYSCAPES.num_classes, aux=False), CITYSCAPES, IMAGENET_MEAN, IMAGENET_STD


def _devices(text: str) -> list[str]:
    """`--devices`: a comma-separated list; `auto` is the CPU and, when there is one, CUDA."""
    if text != "auto":
        return [d.strip() for d in text.split(",") if d.strip()]
    import torch

    return ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def _plan(args: argparse.Namespace) -> dict:
    """The run_benchmark arguments `args` ask for, refused with the option's name when they make no sense."""
    sizes = QUICK_SIZES if args.quick else parse_sizes(args.sizes)
    warmup, frames = (2, 3) if args.quick else (args.warmup, args.frames)
    if warmup < 0 or frames < 1:
        raise ConfigError("--warmup must be >= 0 and --frames >= 1")
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    if not modes or any(m not in ("cls", "prob") for m in modes):
        raise ConfigError(f"--modes {args.modes!r}: expected cls, prob or cls,prob")
    return {
        "devices": _devices(args.devices),
        "backends": [b.strip() for b in args.backends.split(",")],
        "sizes": sizes,
        "modes": modes,
        "warmup": warmup,
        "frames": frames,
        "fp16": args.fp16,
        "precision": args.precision,
        "checkpoint": args.checkpoint or "",
        "compile": args.compile,
    }


def _threads(text: str) -> list[int]:
    """`--threads`: comma-separated counts, each checked like the engine's `threads` option."""
    try:
        counts = [int(word) for word in text.split(",")]
    except ValueError:
        raise ConfigError(f"--threads {text!r}: expected comma-separated integers, e.g. 1,2") from None
    for count in counts:
        try:
            InferenceConfig(threads=count)
        except ConfigError as exc:
            raise ConfigError(f"--threads {text!r}: {exc}") from None
    return counts


def run(args: argparse.Namespace) -> int:
    plan = _plan(args)
    model, classes, mean, std = _model(args.checkpoint)
    image = None
    if args.image:
        from fast_scnn_core.data.images import read_rgb

        image = read_rgb(Path(args.image))
    command = "fast-scnn bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"] else "fast-scnn bench"
    threads = _threads(args.threads)
    machine = machine_info(threads[0], command)
    if len(threads) > 1:  # each row names its count
        machine["threads"] = ",".join(map(str, threads))
    print(f"{machine['cpu']}, {machine['gpu'] or 'no GPU'}, threads {','.join(map(str, threads))}")
    print(HEADER)
    rows = [row for t in threads for row in run_benchmark(model, classes, mean, std, image=image, threads=t, **plan)]
    if args.json:
        atomic_write_text(args.json, json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    if args.markdown:
        atomic_write_text(args.markdown, markdown(rows, machine))
    return 0
