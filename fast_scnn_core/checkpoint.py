"""Self-describing checkpoints: one file with the weights and everything needed to use them.

Loading uses `torch.load(weights_only=True)`: a checkpoint can never execute code. Writes are
atomic (temp file + rename), so a crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fast_scnn_core.atomic import atomic_path
from fast_scnn_core.config import quick_start_hint
from fast_scnn_core.errors import CheckpointError
from fast_scnn_core.labels import ClassSet
from fast_scnn_core.model import ARCH_VERSION, AUX_PREFIXES, FastSCNN

FORMAT_VERSION = 1
ARCHITECTURE = "fast_scnn"

# ImageNet statistics on 0..1 pixel values, the default normalisation (stored in each checkpoint).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_REQUIRED = ("format", "architecture", "arch_version", "num_classes", "classes", "mean", "std", "model")


def save_checkpoint(
    path: str | Path,
    model: FastSCNN,
    classes: ClassSet,
    *,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    train_config: dict[str, Any] | None = None,
    epoch: int = 0,
    iteration: int = 0,
    metrics: dict[str, Any] | None = None,
    training_state: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint atomically.

    `training_state` holds what exact resume needs (optimizer, scheduler, scaler, RNG states); it
    must contain only tensors and plain Python values so `weights_only` loading accepts it.
    """
    if model.num_classes != classes.num_classes:
        raise CheckpointError(f"model has {model.num_classes} classes but the class set has {classes.num_classes}")
    module = model.module if hasattr(model, "module") else model
    payload = {
        "format": FORMAT_VERSION,
        "architecture": ARCHITECTURE,
        "arch_version": ARCH_VERSION,
        "num_classes": classes.num_classes,
        "classes": classes.to_dict(),
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "model": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "train_config": train_config or {},
        "epoch": int(epoch),
        "iteration": int(iteration),
        "metrics": metrics or {},
        "training_state": training_state or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint; never unpickles code (`weights_only=True`)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist. Train one with `fast-scnn train` ({quick_start_hint()})"
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise CheckpointError(f"cannot load checkpoint {path} safely (weights_only=True): {exc}") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} is not a fast-scnn checkpoint (got {type(payload).__name__})")
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise CheckpointError(f"{path} is not a fast-scnn checkpoint: missing {missing}")
    if payload["architecture"] != ARCHITECTURE:
        raise CheckpointError(f"{path}: architecture {payload['architecture']!r}, expected {ARCHITECTURE!r}")
    if payload["arch_version"] != ARCH_VERSION:
        raise CheckpointError(
            f"{path}: architecture version {payload['arch_version']}, this fast_scnn_core builds version "
            f"{ARCH_VERSION}; use the release that wrote it or retrain"
        )
    if payload["format"] > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {payload['format']} is newer than this release reads")
    return payload


def class_set_of(payload: dict[str, Any]) -> ClassSet:
    """The ClassSet stored in a loaded checkpoint."""
    return ClassSet.from_dict(payload["classes"])


def build_model(payload: dict[str, Any], *, aux: bool = False, num_classes: int | None = None) -> FastSCNN:
    """A FastSCNN with the checkpoint's weights (auxiliary heads only when `aux`)."""
    if num_classes is not None and num_classes != payload["num_classes"]:
        raise CheckpointError(f"checkpoint has {payload['num_classes']} classes, expected {num_classes}")
    model = FastSCNN(payload["num_classes"], aux=aux)
    state = payload["model"]
    if not aux:
        state = {k: v for k, v in state.items() if not k.startswith(AUX_PREFIXES)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint weights do not fit FastSCNN: {exc}") from None
    return model
