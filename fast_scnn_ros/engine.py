"""`Engine`: a checkpoint loaded for the node, with what its outputs need from the class set."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from fast_scnn_core.config import quick_start_hint
from fast_scnn_core.errors import CheckpointError
from fast_scnn_core.infer.options import InferenceConfig
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
        """Load `config.checkpoint` and build the engine; FastSCNNError with the reason when that fails."""
        if not config.checkpoint:
            raise CheckpointError(
                "parameter 'checkpoint' is not set: pass checkpoint:=/path/to/model.pt (launch argument) or "
                f"-p checkpoint:=... Train one with `fast-scnn train` ({quick_start_hint()})"
            )
        segmenter = Segmenter.from_checkpoint(config.checkpoint, config)
        return cls(config, segmenter, segmenter.classes.palette(), mask_topic_names(segmenter.classes))

    @property
    def classes(self) -> ClassSet:
        return self.segmenter.classes
