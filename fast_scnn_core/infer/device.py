"""Which device and backend an engine runs on: `auto` resolved, a named CUDA device checked to exist."""

from __future__ import annotations

import importlib.util

import torch

from fast_scnn_core.errors import ConfigError


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
