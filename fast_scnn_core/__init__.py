"""Fast-SCNN core: model, data, training, evaluation, inference, export and benchmark (no ROS imports).

The names most programs need are importable from here; each is imported on first use (PEP 562), so
`import fast_scnn_core` loads neither torch nor numpy:

    from fast_scnn_core import FastSCNN, InferenceConfig, Segmenter, load_checkpoint
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_HOMES = {
    "FastSCNN": "fast_scnn_core.model.network",
    "save_checkpoint": "fast_scnn_core.model.checkpoint",
    "load_checkpoint": "fast_scnn_core.model.checkpoint",
    "Segmenter": "fast_scnn_core.infer.segmenter",
    "InferenceConfig": "fast_scnn_core.infer.options",
    "CITYSCAPES": "fast_scnn_core.labels",
    "ClassSet": "fast_scnn_core.labels",
}

__all__ = ["__version__", *_HOMES]


def __getattr__(name: str) -> Any:
    """The public name from its module, imported now (and then cached in this module's namespace)."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
