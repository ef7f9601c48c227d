"""Test models and class sets shared by the core tests (imported like test/ros/harness.py)."""

from __future__ import annotations

import torch

from fast_scnn_core.labels import ClassSet
from fast_scnn_core.model.network import FastSCNN

TINY = ClassSet(("a", "b", "c"), ((255, 0, 0), (0, 255, 0), (0, 0, 255)))


def trained_like(num_classes: int = 3) -> FastSCNN:
    """A model whose BatchNorms hold non-trivial statistics, as after training (so folding has work to do)."""
    model = FastSCNN(num_classes, aux=False)
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            c = module.num_features
            module.running_mean.copy_(torch.rand(c, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(c, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(c, generator=generator) * 0.4 - 0.2)
    return model.eval()
