"""The paper's training recipe (sec. 4.1): options, loss with auxiliary heads, parameter groups, poly LR, SGD.

SGD momentum 0.9, batch 12, poly LR 0.045 power 0.9, weight decay 4e-5 except depthwise
convolutions, BatchNorm and biases, cross-entropy ignoring 255, auxiliary losses x0.4, paper
augmentation (data/transforms.py). Each piece is small enough to test on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from fast_scnn_core.data import DataConfig, build_dataset
from fast_scnn_core.data.dataset import SegmentationDataset
from fast_scnn_core.data.transforms import train_transform
from fast_scnn_core.labels import IGNORE_INDEX
from fast_scnn_core.model.checkpoint import IMAGENET_MEAN, IMAGENET_STD
from fast_scnn_core.model.network import FastSCNN, Variant


@dataclass
class TrainConfig:
    """Every option of `fast-scnn train`; defaults are the paper's recipe (sec. 4.1)."""

    run_dir: str = "runs/fast_scnn"
    resume: bool = False
    init: str = field(
        default="",
        metadata={
            "help": "checkpoint whose weights the run starts from (a run's best.pt, `fast-scnn import-weights`' "
            "output), with its variant; on another class set the classifier's last layers start afresh"
        },
    )
    variant: Literal["auto", "paper", "mmseg", "tramac"] = field(
        default="auto",
        metadata={
            "help": "network variant: auto = init's (on resume last.pt's), else paper; another value must match them"
        },
    )
    data: DataConfig = field(default_factory=DataConfig)
    epochs: int = 1000
    batch_size: int = 12
    lr: float = 0.045
    poly_power: float = 0.9
    momentum: float = 0.9
    weight_decay: float = 4e-5
    aux_weight: float = 0.4
    dropout: float = 0.1
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    amp: bool = True
    sync_bn: bool = False
    device: str = "auto"
    seed: int = 0
    val_every: int = 10
    save_every: int = 0
    stop_after: int = 0
    log_every: int = 10
    plots: bool = True

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("val_every", "save_every", "stop_after", "weight_decay", "aux_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.init and self.resume:
            raise ValueError(
                f"init={self.init} and resume=true together: resume continues run_dir/last.pt, whose weights "
                "already started from init; drop init="
            )
        # The checkpoint would carry them and every engine divide by std: refused here, before any training.
        if len(self.mean) != 3 or not all(math.isfinite(v) for v in self.mean):
            raise ValueError(f"mean must be 3 finite values (R, G, B in [0, 1]), got {list(self.mean)}")
        if len(self.std) != 3 or not all(math.isfinite(v) and v > 0 for v in self.std):
            raise ValueError(f"std must be 3 finite values > 0 (R, G, B in [0, 1]), got {list(self.std)}")


def poly_lr(base_lr: float, iteration: int, total: int, power: float = 0.9) -> float:
    """'poly' schedule: base_lr * (1 - iteration / total) ** power."""
    return base_lr * (1.0 - min(iteration, total) / total) ** power


def set_poly_lr(optimizer: torch.optim.Optimizer, config: TrainConfig, iteration: int, total: int) -> None:
    """The learning rate of `iteration` out of `total`, in every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = poly_lr(config.lr, iteration, total, config.poly_power)


def is_depthwise(module: nn.Module) -> bool:
    """A depthwise convolution: one filter per input channel (groups == in_channels > 1)."""
    return isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two SGD groups: weight decay on regular conv weights; none on depthwise convs, BatchNorm and biases.

    Sec. 4.1: "l2 regularization is not necessary on depthwise convolutions" (as in MobileNet-V2);
    BatchNorm affine parameters and biases are not decayed either (the usual practice).
    """
    decay, no_decay = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            regular_weight = name == "weight" and isinstance(module, nn.Conv2d) and not is_depthwise(module)
            (decay if regular_weight else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def initial_model(config: TrainConfig, num_classes: int, device: torch.device, variant: Variant = "paper") -> nn.Module:
    """Fast-SCNN `variant` with auxiliary heads, initial weights seeded by `config.seed` (SyncBatchNorm when asked)."""
    torch.manual_seed(config.seed)
    model = FastSCNN(num_classes, aux=True, dropout=config.dropout, variant=variant)
    if config.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model.to(device)


def sgd(model: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """SGD with momentum over the paper's two parameter groups (weight decay only on regular convolutions)."""
    return torch.optim.SGD(parameter_groups(model, config.weight_decay), lr=config.lr, momentum=config.momentum)


def segmentation_loss(outputs: dict[str, torch.Tensor], target: torch.Tensor, aux_weight: float = 0.4) -> torch.Tensor:
    """Cross-entropy (ignore 255) of the model's `out` logits + aux_weight x that of each auxiliary head.

    Averaged over the labelled pixels, as F.cross_entropy's mean; a batch without any (all 255, common
    with coarse labels and small per-process batches) gives 0 and no gradient instead of 0/0 = NaN.
    """
    labelled = (target != IGNORE_INDEX).sum().clamp(min=1)
    losses = {
        name: F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, reduction="sum") / labelled
        for name, logits in outputs.items()
    }
    return losses.pop("out") + aux_weight * sum(losses.values())


def build_datasets(config: TrainConfig) -> tuple[SegmentationDataset, SegmentationDataset]:
    """Training set (paper augmentation) and validation set (full images) of the configured layout."""
    data = config.data
    transform = train_transform(data.crop_size, data.scale_range, data.hflip, data.brightness, data.channel_noise)
    train_set = build_dataset(
        data, data.train_splits, annotation=data.train_annotation, transform=transform, seed=config.seed
    )
    return train_set, build_dataset(data, [data.val_split], classes=train_set.classes)
