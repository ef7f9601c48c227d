"""Fast-SCNN (Poudel, Liwicki, Cipolla 2019), one module per row group of the paper's Table 1.

Read this file next to the paper:

- Table 1  -> `FastSCNN`: LearningToDownsample, GlobalFeatureExtractor, FeatureFusion, Classifier.
- Table 2  -> `Bottleneck` (MobileNet-V2 inverted residual, arguments t, c, s).
- Table 3  -> `FeatureFusion` (upsample, dilated depthwise 3x3, pointwise convs, add, ReLU).
- Sec. 3.2.1 -> `DSConv` has no non-linearity between depthwise and pointwise convolution.
- Sec. 4.1 -> BatchNorm before every non-linearity, ReLU (not ReLU6), dropout only before the
  last layer, auxiliary heads after learning-to-downsample and the global feature extractor.

Where the paper is silent (documented in README "Model: choices where the paper is silent"):
BatchNorm also follows each depthwise convolution (sec. 4.1 says BN precedes every non-linearity;
we keep it after the depthwise conv too, as MobileNet-V2 does), the pyramid pooling module is
PSPNet's (1x1 conv to c/4 per bin, concat with the input, 1x1 conv back to 128 with BN + ReLU),
dropout p=0.1, and the auxiliary heads are 3x3 conv-BN-ReLU -> dropout -> 1x1 conv.

Every resize is to an explicit size taken from the tensors, never a fixed scale factor, so any
input height and width work (97x131 included).

Variants. The published Cityscapes checkpoints were trained with architectures that depart from
the paper in five places (found by reading both projects' code, each confirmed against their own
outputs: test/core/test_weights.py). `variant` picks one, so `fast-scnn import-weights` loads
them exactly; "paper" is this file's reading of the paper and the default.

| `Architecture` field (what it switches)                      | paper       | mmseg   | tramac |
|--------------------------------------------------------------|-------------|---------|--------|
| stem_padding: first Conv2D 3x3 stride 2                      | 1           | 1       | 0      |
| dsconv_depthwise_relu: ReLU after each DSConv's depthwise BN | no (3.2.1)  | no      | yes    |
| ppm_project_kernel: pyramid pooling output conv 256 -> 128   | 1x1         | 3x3     | 1x1    |
| fusion_dilation: Table 3 DWConv, low-resolution branch       | 4 (Table 3) | 1       | 1      |
| align_corners: every bilinear resize (PPM, fusion, output)   | False       | False   | True   |

mmseg: OpenMMLab mmsegmentation `fast_scnn_lr0.12_8x4_160k_cityscapes` (70.96 val mIoU); tramac:
Tramac/Fast-SCNN-pytorch `fast_scnn_citys.pth` (54.84). Parameter names are the same for all three
(`weights.py` maps the published files onto them); only `global_feature_extractor.ppm.project.conv.weight`
changes shape (3x3 for mmseg). A checkpoint records its variant (`checkpoint.py`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

# Bump when a change makes old state_dicts load into a different network; checkpoints store it.
ARCH_VERSION = 1

OutputMode = Literal["logits", "prob", "cls"]
OUTPUT_MODES: tuple[str, ...] = ("logits", "prob", "cls")
# state_dict prefixes of the training-only auxiliary heads (absent from inference models)
AUX_PREFIXES: tuple[str, ...] = ("aux_downsample.", "aux_global.")

Variant = Literal["paper", "mmseg", "tramac"]


@dataclass(frozen=True)
class Architecture:
    """The five places where the published implementations depart from the paper (defaults: paper)."""

    stem_padding: int = 1  # learning to downsample: padding of the first Conv2D 3x3 stride 2
    dsconv_depthwise_relu: bool = False  # ReLU after each DSConv's depthwise BN (sec. 3.2.1: none)
    ppm_project_kernel: int = 1  # pyramid pooling output conv 256 -> 128: 1x1 (PSPNet) or 3x3 padding 1
    fusion_dilation: int = 4  # Table 3: DWConv (dilation X) on the low-resolution branch
    align_corners: bool = False  # every bilinear resize: pyramid pooling, feature fusion, final upsampling


PAPER = Architecture()
VARIANTS: dict[str, Architecture] = {
    "paper": PAPER,
    "mmseg": Architecture(ppm_project_kernel=3, fusion_dilation=1),
    "tramac": Architecture(stem_padding=0, dsconv_depthwise_relu=True, fusion_dilation=1, align_corners=True),
}


class ConvBN(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm -> optional ReLU; the unit every table row is built from."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        relu: bool = True,
        padding: int | None = None,
    ) -> None:
        if padding is None:  # "same" padding
            padding = dilation * (kernel_size - 1) // 2
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv=nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=False,
            ),
            bn=nn.BatchNorm2d(out_channels),
        )
        if relu:
            layers["relu"] = nn.ReLU(inplace=True)
        super().__init__(layers)


class DSConv(nn.Module):
    """Depthwise separable convolution (Table 1 'DSConv'): depthwise 3x3 -> BN -> pointwise -> BN -> ReLU.

    No non-linearity between the depthwise and pointwise convolution (sec. 3.2.1); Tramac's
    implementation has one (`depthwise_relu`).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, depthwise_relu: bool = False) -> None:
        super().__init__()
        self.depthwise = ConvBN(in_channels, in_channels, 3, stride, groups=in_channels, relu=depthwise_relu)
        self.pointwise = ConvBN(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class Bottleneck(nn.Module):
    """Bottleneck residual block (Table 2): 1x1 expand by t, f -> 3x3 depthwise stride s, f -> 1x1 linear.

    The residual is added when input and output have the same shape (sec. 3.2.2).
    """

    def __init__(self, in_channels: int, out_channels: int, t: int, s: int) -> None:
        super().__init__()
        hidden = in_channels * t
        self.use_residual = s == 1 and in_channels == out_channels
        self.expand = ConvBN(in_channels, hidden, 1)
        self.depthwise = ConvBN(hidden, hidden, 3, s, groups=hidden)
        self.project = ConvBN(hidden, out_channels, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.use_residual else out


def bottleneck_stage(in_channels: int, t: int, c: int, n: int, s: int) -> nn.Sequential:
    """One Table 1 'bottleneck' row: n blocks with c output channels, stride s on the first only."""
    blocks = [Bottleneck(in_channels if i == 0 else c, c, t, s if i == 0 else 1) for i in range(n)]
    return nn.Sequential(*blocks)


def adaptive_avg_pool2d(x: torch.Tensor, bins: int) -> torch.Tensor:
    """`F.adaptive_avg_pool2d` that also exports to ONNX when the size is not a multiple of `bins`.

    Eager mode calls the native kernel. Under tracing/export the same windows (PyTorch's
    floor(i*n/bins) .. ceil((i+1)*n/bins)) are built as an averaging matrix from the runtime
    shape, so the graph keeps dynamic height/width; the legacy exporter refuses the native op
    on such sizes (bin 3 on a 16x32 map).
    """
    if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()):
        return F.adaptive_avg_pool2d(x, bins)
    h, w = x.shape[-2], x.shape[-1]
    return _pool_matrix(h, bins, x) @ x @ _pool_matrix(w, bins, x).transpose(0, 1)


def _pool_matrix(size: int | torch.Tensor, bins: int, like: torch.Tensor) -> torch.Tensor:
    """(bins, size) matrix whose rows average the adaptive-pooling window of each bin."""
    positions = torch.arange(size, device=like.device)
    index = torch.arange(bins, device=like.device)
    start = torch.div(index * size, bins, rounding_mode="floor")
    end = torch.div((index + 1) * size + bins - 1, bins, rounding_mode="floor")
    window = (positions[None, :] >= start[:, None]) & (positions[None, :] < end[:, None])
    window = window.to(like.dtype)
    return window / window.sum(dim=1, keepdim=True)


class PyramidPooling(nn.Module):
    """Pyramid pooling module (PSPNet) at the end of the global feature extractor (Table 1 'PPM')."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bins: tuple[int, ...] = (1, 2, 3, 6),
        project_kernel: int = 1,
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        self.bins = tuple(bins)
        self.align_corners = align_corners
        branch_channels = in_channels // len(self.bins)
        self.stages = nn.ModuleList(ConvBN(in_channels, branch_channels, 1) for _ in self.bins)
        self.project = ConvBN(in_channels + branch_channels * len(self.bins), out_channels, project_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [
            F.interpolate(
                stage(adaptive_avg_pool2d(x, bins)), size=size, mode="bilinear", align_corners=self.align_corners
            )
            for bins, stage in zip(self.bins, self.stages, strict=True)
        ]
        return self.project(torch.cat([x, *pooled], dim=1))


class LearningToDownsample(nn.Module):
    """Learning to downsample (sec. 3.2.1): Conv2D 3x3 s2 -> 32, DSConv s2 -> 48, DSConv s2 -> 64."""

    def __init__(
        self, in_channels: int = 3, c1: int = 32, c2: int = 48, c3: int = 64, arch: Architecture = PAPER
    ) -> None:
        super().__init__()
        self.conv = ConvBN(in_channels, c1, 3, stride=2, padding=arch.stem_padding)
        self.dsconv1 = DSConv(c1, c2, stride=2, depthwise_relu=arch.dsconv_depthwise_relu)
        self.dsconv2 = DSConv(c2, c3, stride=2, depthwise_relu=arch.dsconv_depthwise_relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dsconv2(self.dsconv1(self.conv(x)))


class GlobalFeatureExtractor(nn.Module):
    """Global feature extractor (sec. 3.2.2): three bottleneck rows of Table 1, then PPM."""

    def __init__(self, in_channels: int = 64, t: int = 6, out_channels: int = 128, arch: Architecture = PAPER) -> None:
        super().__init__()
        self.stage1 = bottleneck_stage(in_channels, t=t, c=64, n=3, s=2)
        self.stage2 = bottleneck_stage(64, t=t, c=96, n=3, s=2)
        self.stage3 = bottleneck_stage(96, t=t, c=128, n=3, s=1)
        self.ppm = PyramidPooling(
            128, out_channels, project_kernel=arch.ppm_project_kernel, align_corners=arch.align_corners
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ppm(self.stage3(self.stage2(self.stage1(x))))


class FeatureFusion(nn.Module):
    """Feature fusion module (Table 3).

    Low resolution: upsample to the high-resolution size, DWConv 3x3 dilation 4 + BN + ReLU,
    Conv2D 1x1 + BN. High resolution (the skip connection): Conv2D 1x1 + BN. Add, ReLU.
    `zero_skip` drops the high-resolution contribution (the paper's ablation, sec. 4.2).
    """

    def __init__(
        self,
        high_channels: int = 64,
        low_channels: int = 128,
        out_channels: int = 128,
        x: int = 4,
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        self.zero_skip = False
        self.align_corners = align_corners
        self.dwconv = ConvBN(low_channels, low_channels, 3, dilation=x, groups=low_channels)
        self.conv_low = ConvBN(low_channels, out_channels, 1, relu=False)
        self.conv_high = ConvBN(high_channels, out_channels, 1, relu=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        low = F.interpolate(low, size=high.shape[-2:], mode="bilinear", align_corners=self.align_corners)
        low = self.conv_low(self.dwconv(low))
        if self.zero_skip:
            return self.relu(low)
        return self.relu(low + self.conv_high(high))


class Classifier(nn.Module):
    """Classifier (sec. 3.2.4): DSConv 128 x2, dropout (sec. 4.1), Conv2D 1x1 -> num_classes."""

    def __init__(self, channels: int, num_classes: int, dropout: float = 0.1, depthwise_relu: bool = False) -> None:
        super().__init__()
        self.dsconv1 = DSConv(channels, channels, depthwise_relu=depthwise_relu)
        self.dsconv2 = DSConv(channels, channels, depthwise_relu=depthwise_relu)
        self.dropout = nn.Dropout(dropout)
        self.conv = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.dropout(self.dsconv2(self.dsconv1(x))))


class AuxHead(nn.Module):
    """Auxiliary head for the training-only auxiliary losses (sec. 4.1, weight 0.4)."""

    def __init__(self, in_channels: int, num_classes: int, hidden: int = 32, dropout: float = 0.1) -> None:
        super().__init__()
        self.conv = ConvBN(in_channels, hidden, 3)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(hidden, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.conv(x)))


class FastSCNN(nn.Module):
    """Fast-SCNN for `num_classes` classes; input is a normalised float image batch (N, 3, H, W).

    One return type per mode, as torchvision's segmentation models: in training mode a dict of
    logits at the input's H and W, `{"out", "aux_downsample", "aux_global"}` (the auxiliary heads'
    only with `aux=True`); in eval mode one tensor chosen by `mode`: `logits` (N, C, H, W), `prob`
    softmax (N, C, H, W) or `cls` argmax labels (N, H, W, int64), at the input's H and W.

    `variant` ("paper", "mmseg", "tramac") picks the `Architecture` switches (see `VARIANTS`).
    """

    def __init__(
        self,
        num_classes: int = 19,
        in_channels: int = 3,
        aux: bool = True,
        dropout: float = 0.1,
        mode: OutputMode = "logits",
        variant: Variant = "paper",
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {tuple(VARIANTS)}, got {variant!r}")
        self.num_classes = num_classes
        self.mode = mode
        self.variant = variant
        arch = self.arch = VARIANTS[variant]
        self.learning_to_downsample = LearningToDownsample(in_channels, arch=arch)
        self.global_feature_extractor = GlobalFeatureExtractor(64, arch=arch)
        self.feature_fusion = FeatureFusion(64, 128, 128, x=arch.fusion_dilation, align_corners=arch.align_corners)
        self.classifier = Classifier(128, num_classes, dropout, depthwise_relu=arch.dsconv_depthwise_relu)
        if aux:
            self.aux_downsample = AuxHead(64, num_classes)
            self.aux_global = AuxHead(128, num_classes)
        else:
            self.aux_downsample = None
            self.aux_global = None
        self._init_weights()

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in OUTPUT_MODES:
            raise ValueError(f"mode must be one of {OUTPUT_MODES}, got {value!r}")
        self._mode = value

    @property
    def zero_skip(self) -> bool:
        """Zero the skip connection's contribution to the fusion (the paper's ablation, sec. 4.2)."""
        return self.feature_fusion.zero_skip

    @zero_skip.setter
    def zero_skip(self, value: bool) -> None:
        self.feature_fusion.zero_skip = bool(value)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, mode: OutputMode | None = None) -> torch.Tensor | dict[str, torch.Tensor]:
        """Outputs as the class docstring says; `mode` overrides `self.mode` for this call only."""
        size = x.shape[-2:]
        high = self.learning_to_downsample(x)
        low = self.global_feature_extractor(high)
        logits = self.classifier(self.feature_fusion(high, low))
        if self.training:
            outputs = {"out": logits}
            if self.aux_downsample is not None:
                outputs.update(aux_downsample=self.aux_downsample(high), aux_global=self.aux_global(low))
            return {
                name: F.interpolate(o, size=size, mode="bilinear", align_corners=self.arch.align_corners)
                for name, o in outputs.items()
            }
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=self.arch.align_corners)
        return postprocess(logits, self._mode if mode is None else mode)


def postprocess(logits: torch.Tensor, mode: str) -> torch.Tensor:
    """(N, C, H, W) logits -> the output `mode` names: the `logits`, `prob` softmax or `cls` argmax labels (N, H, W)."""
    if mode == "prob":
        return logits.softmax(dim=1)
    if mode == "cls":
        return logits.argmax(dim=1)
    if mode == "logits":
        return logits
    raise ValueError(f"mode must be one of {OUTPUT_MODES}, got {mode!r}")


def labels_and_confidence(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) logits -> argmax labels (N, H, W) and their softmax probability (the max-softmax confidence).

    The confidence is 1 / sum(exp(logits - max)): the max softmax probability without building
    the (N, C, H, W) softmax.
    """
    top, labels = logits.max(dim=1)
    return labels, 1.0 / torch.exp(logits - top.unsqueeze(1)).sum(dim=1)


def count_parameters(model: nn.Module, inference_only: bool = True) -> int:
    """Number of parameters; with `inference_only` the training-only auxiliary heads are left out."""
    return sum(
        p.numel() for name, p in model.named_parameters() if not (inference_only and name.startswith(AUX_PREFIXES))
    )
