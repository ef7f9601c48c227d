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


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way to run the engine: a name for the table and the InferenceConfig fields it sets."""

    name: str
    options: dict

    def config(self, device: str, mode: str, threads: int, size: tuple[int, int]) -> InferenceConfig:
        return InferenceConfig(device=device, mode=mode, threads=threads, height=size[0], width=size[1], **self.options)


def variants(device: str, backends: list[str], fp16: bool, compile: bool) -> list[Variant]:
    """The variants available for `device` among `backends`; the eager fp32 baseline always comes first."""
    cuda = device.startswith("cuda")
    found = [Variant(BASELINE, {"backend": "torch", "optimize": False})]
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
    if "tensorrt" in backends and cuda and importlib.util.find_spec("tensorrt") is not None:
        found.append(Variant("tensorrt", {"backend": "tensorrt"}))
        if fp16:
            found.append(Variant("tensorrt-fp16", {"backend": "tensorrt", "fp16": True}))
    return found


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
    log: Callable[[str], object] = print,
) -> list[dict]:
    """Rows of results, one per (device, size, mode, variant)."""
    from fast_scnn_core.infer.segmenter import Segmenter

    rows = []
    for device in devices:
        for size in sizes:
            picture = scene(*size) if image is None else _resize(image, size)
            for mode in modes:
                segmenters = {
                    v.name: Segmenter(model, classes, v.config(device, mode, threads, size), mean, std)
                    for v in variants(device, backends, fp16, compile)
                }
                reference = segmenters[BASELINE](picture).labels
                agreement = {n: float((s(picture).labels == reference).mean()) for n, s in segmenters.items()}
                times = _time(segmenters, picture, warmup, frames)
                where = {"device": device, "height": size[0], "width": size[1], "mode": mode}
                for row in _rows(times, agreement, where, warmup):
                    rows.append(row)
                    log(_format_row(row))
    return rows


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


HEADER = "| device | size | mode | variant | ms (mean) | ms (median) | fps | x eager fp32 | labels = eager |"


def _format_row(row: dict) -> str:
    return (
        f"| {row['device']} | {row['height']}x{row['width']} | {row['mode']} | {row['variant']} | "
        f"{row['ms']:.1f} | {row['median_ms']:.1f} | {row['fps']:.1f} | {row['ratio']:.2f} | "
        f"{100 * row['agreement']:.2f} % |"
    )


def markdown(rows: list[dict], machine: dict) -> str:
    lines = [
        "# fast-scnn bench",
        "",
        f"Machine: {machine['cpu']} ({machine['cores']} cores), {machine['gpu'] or 'no GPU'}; "
        f"torch {machine['torch']}, onnxruntime {machine['onnxruntime']}, threads {machine['threads']}; "
        f"{machine['date']}.",
        f"Command: `{machine['command']}`",
        "",
        HEADER,
        "|---|---|---|---|---:|---:|---:|---:|---:|",
        *(_format_row(r) for r in rows),
        "",
    ]
    return "\n".join(lines)


def machine_info(threads: int, command: str) -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ort_version = None
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        ort_version = onnxruntime.__version__
    return {
        "cpu": cpu,
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
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
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
        "threads": args.threads,
        "fp16": args.fp16,
        "compile": args.compile,
    }


def run(args: argparse.Namespace) -> int:
    plan = _plan(args)
    model, classes, mean, std = _model(args.checkpoint)
    image = None
    if args.image:
        from fast_scnn_core.data.images import read_rgb

        image = read_rgb(Path(args.image))
    command = "fast-scnn bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"] else "fast-scnn bench"
    machine = machine_info(args.threads, command)
    print(f"{machine['cpu']}, {machine['gpu'] or 'no GPU'}, threads {machine['threads']}")
    print(HEADER)
    rows = run_benchmark(model, classes, mean, std, image=image, **plan)
    if args.json:
        atomic_write_text(args.json, json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    if args.markdown:
        atomic_write_text(args.markdown, markdown(rows, machine))
    return 0
