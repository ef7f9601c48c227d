"""InferenceConfig: the options of the inference engine, each defined once with its meaning and bounds.

Free of torch (and of anything heavy): the ROS node's parameter schema (`fast_scnn_ros.params`), the
launch file's argument descriptions and the CLI flags read the options' help and bounds from here
without paying torch's import. `fast_scnn_core.infer.segmenter` re-exports every name.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import threading
import typing
from dataclasses import Field, dataclass, field
from typing import Any, Literal

from fast_scnn_core.errors import ConfigError
from fast_scnn_core.limits import DEFAULT_MAX_PIXELS, MAX_SIDE, MIN_SIDE

# torch.set_num_threads(100000) kills the process (SIGSEGV, no message); 1024 runs and is more than any CPU has.
MAX_THREADS = 1024
# The machine's bound below that: more threads than this per CPU the process may run on only compete for the
# same CPUs, and each reserves a stack (8 MB of address space by default): `threads: 1024` under an address-space
# limit hung the node (issue 20). `thread_limit()`.
THREADS_PER_CPU = 4
# Engine batches: the default on CUDA (a ring of four cameras; TensorRT's shape profile is built for it) and the bound.
GPU_BATCH, MAX_BATCH = 4, 64


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
    # auto: onnxruntime is 3-5x faster than eager on CPU; openvino in bf16/int8 faster again, in f32 slower
    # (docs/benchmarks.md), so auto takes openvino only for a precision other than f32 (infer/precision.py)
    backend: Literal["auto", "torch", "onnxruntime", "openvino", "tensorrt"] = _option(
        "auto",
        "auto (on CPU: openvino when installed and its precision is bf16 or int8, else onnxruntime when "
        "installed, else torch; torch on CUDA), torch, onnxruntime, openvino (CPU) or tensorrt (CUDA)",
    )
    precision: Literal["auto", "f32", "bf16", "int8"] = _option(
        "auto",
        "openvino backend: auto (the fastest precision whose mIoU passed the accuracy gate that `fast-scnn "
        "quantize` recorded for this checkpoint, else f32), f32, bf16 (CPUs with AVX512_BF16 or AMX) or int8 "
        "(the checkpoint's <name>.int8.onnx written by `fast-scnn quantize`)",
    )
    fp16: bool = _option(False, "half precision on CUDA (torch, onnxruntime, tensorrt); ignored on CPU")
    width: int = _option(0, "inference width in pixels", (MIN_SIDE, MAX_SIDE), "the input image's width")
    height: int = _option(0, "inference height in pixels", (MIN_SIDE, MAX_SIDE), "the input image's height")
    output_resolution: Literal["input", "inference"] = _option(
        "input", "input: outputs at the input image's size; inference: at the inference resolution"
    )
    mode: Literal["cls", "prob"] = _option(
        "cls",
        "cls: labels only; prob: also the per-pixel max softmax probability (the confidence; not calibrated for "
        "checkpoints imported from mmsegmentation, trained with a sigmoid loss)",
    )
    max_pixels: int = _option(
        DEFAULT_MAX_PIXELS,
        "images (a batch: all its images) with more pixels are refused as bad input (memory guard)",
        (MIN_SIDE * MIN_SIDE, MAX_SIDE * MAX_SIDE),
    )
    threads: int = _option(
        0,
        f"CPU threads for torch/onnxruntime, at most {THREADS_PER_CPU}x the CPUs available to the process",
        (1, MAX_THREADS),
        "the library's default",
    )
    # 0 = 1 on CPU: batches there were no faster per frame and grow ONNX Runtime's arena (docs/ros.md, camera ring)
    max_batch: int = _option(
        0,
        "most images of one inference size segmented as one engine batch (a camera ring's frames)",
        (1, MAX_BATCH),
        f"1 on CPU, {GPU_BATCH} on CUDA",
    )
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


def available_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (taskset, a container's cpuset), else all of them."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no sched_getaffinity outside Linux
        return os.cpu_count() or 1


def thread_limit() -> int:
    """The most `threads` this process accepts: THREADS_PER_CPU x available_cpus(), and never over MAX_THREADS."""
    return min(MAX_THREADS, THREADS_PER_CPU * available_cpus())


def check_threads_start(threads: int, pools: int = 2) -> None:
    """ConfigError unless this process can start the threads of `pools` pools of `threads` now (each thread with the
    default stack, as OpenMP's and ONNX Runtime's get; torch's pool and ONNX Runtime's = 2); stopped again at once.

    torch's OpenMP (libgomp) ends the whole process when it cannot create its pool ("Thread creation failed",
    exit 1; a hang when that exit waits for the process's other threads): the clear cases are refused here first.
    """
    release = threading.Event()
    started: list[threading.Thread] = []
    try:
        for _ in range(threads * pools):
            thread = threading.Thread(target=release.wait, name="threads-check", daemon=True)
            thread.start()
            started.append(thread)
    except RuntimeError as exc:  # "can't start new thread": address space, memory or the process limit
        raise ConfigError(
            f"threads {threads}: the engine's thread pools need {threads * pools} threads, this process could "
            f"start only {len(started)} more ({exc}); lower threads, or 0 = the library's default"
        ) from None
    finally:
        release.set()
        for thread in started:
            thread.join()


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
    limit = thread_limit()
    if config.threads > limit:
        raise ConfigError(
            f"threads {config.threads} is more than {THREADS_PER_CPU}x the {available_cpus()} CPU(s) available to "
            f"this process: expected 1..{limit}, or 0 = the library's default (more threads only compete for the "
            "same CPUs, each with its own stack)"
        )
    if config.precision in ("bf16", "int8") and config.backend not in ("auto", "openvino"):
        raise ConfigError(
            f"precision {config.precision} runs on backend openvino only (backend {config.backend} computes in "
            "f32, fp16 on CUDA); use backend openvino or auto, or precision auto"
        )
    if config.width * config.height > config.max_pixels:
        raise ConfigError(
            f"inference resolution {config.width}x{config.height} exceeds max_pixels={config.max_pixels}; "
            "lower width/height or raise max_pixels"
        )


def add_option_argument(parser: argparse.ArgumentParser, name: str) -> None:
    """--<name> for an InferenceConfig option: its type, default, choices and help from the option's field."""
    default = InferenceConfig.__dataclass_fields__[name].default
    flag = "--" + name.replace("_", "-")
    if isinstance(default, bool):
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=option_help(name))
    else:
        choices = option_choices(name) or None
        parser.add_argument(flag, type=type(default), default=default, choices=choices, help=option_help(name))
