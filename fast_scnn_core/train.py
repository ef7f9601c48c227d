"""`fast-scnn train`: the paper's training recipe (sec. 4.1), from a config YAML to a run directory.

    fast-scnn train --config config/train_cityscapes.yaml [key=value ...]
    torchrun --nproc_per_node 4 -m fast_scnn_core train --config ... # DDP, one process per GPU

Recipe: SGD momentum 0.9, batch 12, poly LR 0.045 power 0.9, weight decay 4e-5 except depthwise
convolutions, BatchNorm and biases, cross-entropy ignoring 255, auxiliary losses x0.4, paper
augmentation (data/transforms.py). Mixed precision on CUDA; DistributedDataParallel when started
by torchrun (nccl on CUDA, gloo on CPU), SyncBatchNorm optional.

The run directory holds config.yaml, last.pt and best.pt (atomic, self-describing checkpoints),
metrics.json, tensorboard/ and plots/. Resume is exact: the sampler order and each sample's
augmentation are functions of (seed, epoch, index) and dropout's generator is reseeded from
(seed, rank, iteration), so `last.pt` only needs weights, optimizer, scaler, iteration and history.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from fast_scnn_core.atomic import atomic_write_text, remove_stale_temporaries
from fast_scnn_core.checkpoint import IMAGENET_MEAN, IMAGENET_STD, class_set_of, load_checkpoint, save_checkpoint
from fast_scnn_core.config import load_config, to_dict
from fast_scnn_core.data.cityscapes import cityscapes_dataset
from fast_scnn_core.data.dataset import SegmentationDataset
from fast_scnn_core.data.folder import folder_dataset, load_classes
from fast_scnn_core.data.transforms import normalize, train_transform
from fast_scnn_core.errors import CheckpointError, ConfigError, DataError, FastSCNNError
from fast_scnn_core.evaluate import evaluate_model, metrics_from_confusion, to_json
from fast_scnn_core.inference import resolve_device
from fast_scnn_core.labels import IGNORE_INDEX
from fast_scnn_core.model import FastSCNN


@dataclass
class DataConfig:
    """Where the data is and how it is augmented (documented in config/train_cityscapes.yaml)."""

    format: Literal["cityscapes", "folder"] = "cityscapes"
    root: str = "data/cityscapes"
    train_splits: tuple[str, ...] = ("train",)
    val_split: str = "val"
    train_annotation: Literal["gtFine", "gtCoarse"] = "gtFine"
    classes: str = ""
    crop_size: tuple[int, int] = (1024, 1024)
    scale_range: tuple[float, float] = (0.5, 2.0)
    hflip: float = 0.5
    brightness: float = 0.2
    channel_noise: int = 20
    workers: int = 4


@dataclass
class TrainConfig:
    """Every option of `fast-scnn train`; defaults are the paper's recipe (sec. 4.1)."""

    run_dir: str = "runs/fast_scnn"
    resume: bool = False
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


# ---------------------------------------------------------------------------------------------
# The recipe's pieces, each small enough to test on its own.


def poly_lr(base_lr: float, iteration: int, total: int, power: float = 0.9) -> float:
    """'poly' schedule: base_lr * (1 - iteration / total) ** power."""
    return base_lr * (1.0 - min(iteration, total) / total) ** power


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


def segmentation_loss(
    outputs: torch.Tensor | tuple[torch.Tensor, ...], target: torch.Tensor, aux_weight: float = 0.4
) -> torch.Tensor:
    """Cross-entropy (ignore 255) of the main logits + aux_weight x each auxiliary head's."""
    if isinstance(outputs, torch.Tensor):
        outputs = (outputs,)
    main, *aux = outputs
    loss = F.cross_entropy(main, target, ignore_index=IGNORE_INDEX)
    for logits in aux:
        loss = loss + aux_weight * F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
    return loss


def build_datasets(config: TrainConfig) -> tuple[SegmentationDataset, SegmentationDataset]:
    """Training set (augmented) and validation set (full images) of the configured layout."""
    data = config.data
    transform = train_transform(data.crop_size, data.scale_range, data.hflip, data.brightness, data.channel_noise)
    if data.format == "cityscapes":
        train_set = cityscapes_dataset(data.root, data.train_splits, data.train_annotation, transform, config.seed)
        val_set = cityscapes_dataset(data.root, [data.val_split])
    else:
        classes = load_classes(data.classes)
        train_sets = [folder_dataset(data.root, split, classes, transform, config.seed) for split in data.train_splits]
        train_set = train_sets[0]
        train_set.pairs = [pair for s in train_sets for pair in s.pairs]
        val_set = folder_dataset(data.root, data.val_split, classes)
    return train_set, val_set


# ---------------------------------------------------------------------------------------------
# Run directory, distributed setup, signals.


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Never overwrite a run: a non-empty run_dir needs resume=true, resume needs last.pt."""
    has_checkpoint = (run_dir / "last.pt").is_file()
    if resume and not has_checkpoint:
        raise ConfigError(f"resume=true but {run_dir / 'last.pt'} does not exist; check run_dir=")
    if not resume and run_dir.exists() and any(run_dir.iterdir()):
        if has_checkpoint:
            raise ConfigError(
                f"run_dir {run_dir} already holds a run; continue it with resume=true or choose another run_dir=..."
            )
        raise ConfigError(
            f"run_dir {run_dir} is not empty but holds no last.pt (a run stopped before its first checkpoint, "
            "or other files); remove it or choose another run_dir=..."
        )


@dataclass
class Distributed:
    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_name: str) -> Distributed:
    """One process per device under torchrun (RANK/WORLD_SIZE/LOCAL_RANK set), else a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed(device=resolve_device(device_name))
    local_rank = int(os.environ["LOCAL_RANK"])
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo", device_id=device if use_cuda else None)
    return Distributed(device, dist.get_rank(), world_size)


class StopSignal:
    """SIGTERM/SIGINT set a flag; the loop finishes its iteration, saves `last.pt` and exits."""

    def __init__(self) -> None:
        self.signum = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _worker_init(worker_id: int) -> None:
    # Ctrl-C reaches the whole process group: workers leave it to the main process, which stops
    # cleanly between iterations. (SIGTERM stays default: the DataLoader ends its workers with it.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_error(exc: DataError) -> DataError:
    """A DataError raised in a DataLoader worker, without the worker's traceback around its message."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    last = lines[-1] if lines else str(exc)
    prefix = f"{DataError.__module__}.{DataError.__name__}: "
    return DataError(last[len(prefix) :] if last.startswith(prefix) else last)


# ---------------------------------------------------------------------------------------------
# The training loop.


def train(config: TrainConfig) -> int:
    """Train per `config`; returns the exit status (0 done, 128 + signal number when stopped by a signal)."""
    run_dir = Path(config.run_dir)
    env = setup_distributed(config.device)
    try:
        # Every process checks before any writes (the barrier), so none sees another's files.
        remove_stale_temporaries(run_dir)  # left by a write that was killed (SIGKILL, power loss)
        check_run_dir(run_dir, config.resume)
        train_set, val_set = build_datasets(config)  # checks the data before anything is written
        if env.world_size > 1:
            dist.barrier()
        return _train(config, run_dir, train_set, val_set, env)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _train(
    config: TrainConfig, run_dir: Path, train_set: SegmentationDataset, val_set: SegmentationDataset, env: Distributed
) -> int:
    classes = train_set.classes
    device = env.device
    if config.batch_size % env.world_size:
        raise ConfigError(f"batch_size={config.batch_size} is not divisible by the {env.world_size} processes")
    batch = config.batch_size // env.world_size
    sampler = DistributedSampler(train_set, env.world_size, env.rank, shuffle=True, seed=config.seed, drop_last=True)
    iters_per_epoch = len(sampler) // batch
    if iters_per_epoch == 0:
        raise DataError(
            f"{config.data.root}: {len(train_set)} training images give no full batch of {batch} per process; "
            "lower batch_size or add images"
        )
    total = config.epochs * iters_per_epoch

    torch.manual_seed(config.seed)  # the initial weights
    model: nn.Module = FastSCNN(classes.num_classes, aux=True, dropout=config.dropout)
    if config.sync_bn:
        if device.type != "cuda":
            raise ConfigError("sync_bn=true needs CUDA devices (SyncBatchNorm has no CPU implementation)")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    optimizer = torch.optim.SGD(parameter_groups(model, config.weight_decay), lr=config.lr, momentum=config.momentum)
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history: dict[str, Any] = {"train": [], "val": []}
    iteration, best_miou = 0, -1.0

    if config.resume:
        payload = load_checkpoint(run_dir / "last.pt", map_location="cpu", resume=True)
        if class_set_of(payload) != classes:
            raise CheckpointError(
                f"{run_dir / 'last.pt'} was trained on classes {list(class_set_of(payload).names)}, "
                f"the configured data has {list(classes.names)}"
            )
        state = payload["training_state"]
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        iteration, best_miou, history = payload["iteration"], state["best_miou"], state["history"]
        _warn_config_changes(payload["train_config"], config, env)
    elif env.main:
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False))

    net: nn.Module = model
    if env.world_size > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    writer = _summary_writer(run_dir) if env.main else None

    def save(epoch: int, metrics: dict[str, Any] | None = None, best: bool = False) -> None:
        if not env.main:
            return
        training_state = {
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "best_miou": best_miou,
            "history": history,
        }
        common = dict(mean=config.mean, std=config.std, train_config=to_dict(config), epoch=epoch, iteration=iteration)
        save_checkpoint(run_dir / "last.pt", model, classes, metrics=metrics, training_state=training_state, **common)
        if best:
            save_checkpoint(run_dir / "best.pt", model, classes, metrics=metrics, **common)

    def stop_now(epoch: int, signum: int, saved: bool = False) -> int:
        """Save last.pt and say how to continue; exit status 128 + signal, or 0 for stop_after."""
        if not saved:
            save(epoch)
        reason = signal.Signals(signum).name if signum else f"stop_after={config.stop_after}"
        if env.main:
            print(
                f"{reason}: saved {run_dir / 'last.pt'} at iteration {iteration}; continue with resume=true",
                file=sys.stderr,
            )
        return 128 + signum if signum else 0

    start_epoch, skip = divmod(iteration, iters_per_epoch)
    stop_at = iteration + config.stop_after if config.stop_after else total
    if env.main:
        print(
            f"training {classes.num_classes} classes on {len(train_set)} images, {iters_per_epoch} iterations/epoch, "
            f"{total} in all, batch {config.batch_size} on {env.world_size} x {device}"
            + (f", resuming at iteration {iteration}" if iteration else ""),
            file=sys.stderr,
        )
    progress = tqdm(total=total, initial=iteration, disable=not env.main, dynamic_ncols=True, desc="train")
    running, count, started = 0.0, 0, time.monotonic()
    with contextlib.ExitStack() as cleanup:
        stop = cleanup.enter_context(StopSignal())
        cleanup.callback(progress.close)
        if writer is not None:
            cleanup.callback(writer.close)
        for epoch in range(start_epoch, config.epochs):
            train_set.set_epoch(epoch)
            sampler.set_epoch(epoch)
            indices = list(sampler)[skip * batch :]
            skip = 0
            loader = DataLoader(
                train_set,
                batch_size=batch,
                sampler=indices,
                drop_last=True,
                num_workers=config.data.workers,
                pin_memory=device.type == "cuda",
                worker_init_fn=_worker_init,
            )
            net.train()
            try:
                for images, target in loader:
                    for group in optimizer.param_groups:
                        group["lr"] = poly_lr(config.lr, iteration, total, config.poly_power)
                    # Dropout's randomness as a function of (seed, rank, iteration): exact resume anywhere.
                    torch.manual_seed(config.seed * 1_000_003 + env.rank * 10_007 + iteration)
                    images = normalize(images.to(device, non_blocking=True), config.mean, config.std)
                    target = target.to(device, non_blocking=True)
                    with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                        loss = segmentation_loss(net(images), target, config.aux_weight)
                    status = torch.stack([loss.detach().float(), torch.tensor(float(stop.signum), device=device)])
                    if env.world_size > 1:
                        dist.all_reduce(status)
                        status[0] /= env.world_size
                    loss_value, stopping = float(status[0]), bool(status[1])
                    if not math.isfinite(loss_value):
                        saved = f"last.pt holds iteration {_saved_iteration(run_dir)}" if env.main else ""
                        raise FastSCNNError(
                            f"the loss became {loss_value} at iteration {iteration} (epoch {epoch}); stopped without "
                            f"saving these weights ({saved or 'no checkpoint yet'} in {run_dir}). Lower lr= "
                            f"(now {config.lr}) or check the data, then start again or resume=true"
                        )
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    iteration += 1
                    running, count = running + loss_value, count + 1
                    progress.update()
                    if iteration % config.log_every == 0 or iteration == total:
                        history["train"].append([iteration, running / count])
                        progress.set_postfix(loss=f"{running / count:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
                        if writer:
                            writer.add_scalar("train/loss", running / count, iteration)
                            writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], iteration)
                        running, count = 0.0, 0
                    # At an epoch's end the stop is taken after its validation, below.
                    if stopping or (iteration >= stop_at and iteration % iters_per_epoch):
                        return stop_now(epoch, int(stop.signum or signal.SIGTERM) if stopping else 0)
                    if config.save_every and iteration % config.save_every == 0 and iteration % iters_per_epoch:
                        save(epoch)
            except DataError as exc:
                raise _worker_error(exc) from None
            except RuntimeError:
                # A SIGTERM sent to the whole process group also ends the loader workers.
                if not stop.signum:
                    raise
                return stop_now(epoch, stop.signum)

            last_epoch = epoch + 1 == config.epochs
            metrics = None
            is_best = False
            if (config.val_every and (epoch + 1) % config.val_every == 0) or last_epoch:
                confusion = evaluate_model(model, val_set, device, config.mean, config.std)
                metrics = metrics_from_confusion(confusion, classes)
                metrics.update(epoch=epoch + 1, iteration=iteration, minutes=(time.monotonic() - started) / 60)
                history["val"].append({k: v for k, v in metrics.items() if k not in ("class_iou", "category_iou")})
                is_best = metrics["miou"] > best_miou
                best_miou = max(best_miou, metrics["miou"])
                if env.main:
                    _report(run_dir, config, metrics, confusion, history, writer, iteration)
            save(epoch + 1, metrics, is_best)
            if iteration >= stop_at and not last_epoch:
                return stop_now(epoch + 1, 0, saved=True)
    if env.main:
        print(
            f"done: {iteration} iterations; best val mIoU {100 * best_miou:.2f} in {run_dir / 'best.pt'}",
            file=sys.stderr,
        )
    return 0


def _saved_iteration(run_dir: Path) -> str:
    try:
        return str(load_checkpoint(run_dir / "last.pt")["iteration"])
    except CheckpointError:
        return "nothing"


def _warn_config_changes(saved: dict[str, Any], config: TrainConfig, env: Distributed) -> None:
    current = to_dict(config)
    changed = sorted(k for k in current if k not in ("resume", "stop_after") and saved.get(k) != current[k])
    if changed and env.main:
        print(
            f"resume: options differ from the saved run: {changed}; resume is exact only with the same options",
            file=sys.stderr,
        )


def _summary_writer(run_dir: Path) -> Any:
    from torch.utils.tensorboard import SummaryWriter  # imported here: tensorboard is slow to import

    return SummaryWriter(str(run_dir / "tensorboard"))


def _report(
    run_dir: Path,
    config: TrainConfig,
    metrics: dict[str, Any],
    confusion: torch.Tensor,
    history: dict[str, Any],
    writer: Any,
    iteration: int,
) -> None:
    """After a validation: TensorBoard scalars, metrics.json, plots, a table on stderr."""
    for key in ("miou", "category_miou", "pixel_accuracy"):
        if not math.isnan(metrics[key]):
            writer.add_scalar(f"val/{key}", metrics[key], iteration)
    for name, value in metrics["class_iou"].items():
        if not math.isnan(value):
            writer.add_scalar(f"val_iou/{name}", value, iteration)
    writer.flush()
    latest = {**metrics, "confusion": confusion.cpu().tolist()}
    atomic_write_text(run_dir / "metrics.json", to_json({"latest": latest, "history": history}))
    if config.plots:
        from fast_scnn_core import plots

        names = list(metrics["class_iou"])
        plots.plot_curves(history, run_dir / "plots" / "curves.png")
        plots.plot_class_iou(
            metrics["class_iou"], run_dir / "plots" / "class_iou.png", f"per-class IoU, iteration {iteration}"
        )
        plots.plot_confusion(confusion.cpu().numpy(), names, run_dir / "plots" / "confusion.png")
    tqdm.write(f"iteration {iteration}: val mIoU {100 * metrics['miou']:.2f}%", file=sys.stderr)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Train Fast-SCNN with the paper's recipe. Options come from --config (see the comments in "
        "config/train_cityscapes.yaml for every key) and key=value overrides, e.g. epochs=10 data.root=/data "
        "batch_size=8 resume=true. Multi-GPU: torchrun --nproc_per_node N -m fast_scnn_core train ..."
    )
    parser.add_argument("--config", default=None, help="training config YAML (default: the paper's recipe)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys")


def run(args: argparse.Namespace) -> int:
    return train(load_config(TrainConfig, args.config, args.overrides))
