"""Inference-time graph rewrites that keep results equal: BatchNorm folded into the convolution before it.

`y = gamma * (conv(x) - mean) / sqrt(var + eps) + beta` is itself a convolution, with weights
scaled per output channel and a bias; folding removes every BatchNorm of Fast-SCNN (each follows
a bias-free convolution, see `model.ConvBN`) and one memory pass per layer.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from fast_scnn_core.model.network import ConvBN, FastSCNN


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new Conv2d (with bias) equal to `bn(conv(x))` with `bn` in eval mode; computed in float64."""
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    with torch.no_grad():
        fused.weight.copy_((conv.weight.double() * scale.view(-1, 1, 1, 1)).to(conv.weight.dtype))
        fused.bias.copy_(((bias - bn.running_mean.double()) * scale + bn.bias.double()).to(conv.weight.dtype))
    return fused


def fold_batchnorm(model: FastSCNN) -> FastSCNN:
    """A copy of `model` (eval mode) with every ConvBN's BatchNorm folded into its convolution.

    The copy keeps the module tree, so `forward` is unchanged; its BatchNorms become Identity.
    The original model is left untouched.
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if isinstance(module, ConvBN) and isinstance(module.bn, nn.BatchNorm2d):
            module.conv = fold_conv_bn(module.conv, module.bn)
            module.bn = nn.Identity()
    return folded
