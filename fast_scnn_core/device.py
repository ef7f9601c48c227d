"""The torch device a program runs on: `auto` resolved, a named CUDA device checked to exist.

A base module: training and inference both choose their device here (neither imports the other).
"""

from __future__ import annotations

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
