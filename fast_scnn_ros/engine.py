"""`Engine`: a checkpoint loaded for the node, with what its outputs need from the class set."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from fast_scnn_core.config import quick_start_hint
from fast_scnn_core.errors import CheckpointError, ConfigError, FastSCNNError
from fast_scnn_core.infer.options import InferenceConfig, check_threads_start
from fast_scnn_core.infer.segmenter import Segmenter
from fast_scnn_core.labels import ClassSet, mask_topic_names


@dataclass(frozen=True)
class Engine:
    """A loaded checkpoint ready to run: the Segmenter and what the outputs need from its class set."""

    config: InferenceConfig
    segmenter: Segmenter
    palette: np.ndarray  # class id -> RGB
    mask_tokens: list[str]  # class id -> its masks/<token> topic name
    # When it was built: diagnostics show it, so a reload (or its absence, e.g. on re-activation) is visible.
    loaded_at: datetime = field(default_factory=datetime.now)

    @classmethod
    def load(cls, config: InferenceConfig) -> Engine:
        """Load `config.checkpoint` and build the engine, every failure a FastSCNNError with the reason: a runtime
        change is refused with it (the running engine goes on), a start-up one exits 2.

        The threads are checked first (torch's pool and ONNX Runtime's): torch's OpenMP ends the process when it
        cannot create its pool; ONNX Runtime raises its own exception (bad_alloc).
        """
        check_threads_start(config.threads)
        if not config.checkpoint:
            raise CheckpointError(
                "parameter 'checkpoint' is not set: pass checkpoint:=/path/to/model.pt (launch argument) or "
                f"-p checkpoint:=... Train one with `fast-scnn train` ({quick_start_hint()})"
            )
        try:
            segmenter = Segmenter.from_checkpoint(config.checkpoint, config)
        except FastSCNNError:
            raise
        except Exception as exc:
            raise ConfigError(f"cannot build the engine: {type(exc).__name__}: {exc}") from exc
        return cls(config, segmenter, segmenter.classes.palette(), mask_topic_names(segmenter.classes))

    @property
    def classes(self) -> ClassSet:
        return self.segmenter.classes
