"""FLOPs of Fast-SCNN at a given input size, counted on the meta device (no weights, no compute)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from fast_scnn_core.model.network import FastSCNN


def flops(model: FastSCNN, height: int, width: int) -> int:
    """FLOPs (2 x multiply-accumulates of convolutions and matmuls) of one batch-1 inference.

    Counted by `torch.utils.flop_counter` on the meta device: exact for the graph, no compute.
    """
    with torch.device("meta"):
        meta_model = FastSCNN(model.num_classes, aux=False, variant=model.variant).eval()
        x = torch.empty(1, 3, height, width)
        with FlopCounterMode(display=False) as counter:
            meta_model(x)
    return counter.get_total_flops()
