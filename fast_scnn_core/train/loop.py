"""`fast-scnn train`: the paper's training recipe (sec. 4.1), from a config YAML to a run directory.

    fast-scnn train --config config/train_cityscapes.yaml [key=value ...]
    torchrun --nproc_per_node 4 -m fast_scnn_core train --config ... # DDP, one process per GPU

Recipe: SGD momentum 0.9, batch 12, poly LR 0.045 power 0.9, weight decay 4e-5 except depthwise
convolutions, BatchNorm and biases, cross-entropy ignoring 255, auxiliary losses x0.4, paper
augmentation (data/transforms.py). Mixed precision on CUDA; DistributedDataParallel when started
by torchrun (nccl on CUDA, gloo on CPU), SyncBatchNorm optional.

Read it top to bottom like torchvision's references/segmentation/train.py: the recipe's pieces,
the checks made before anything is written, `RunState` (what last.pt holds, and `save()`), then
`train` -> `fit` -> `train_one_epoch` and `evaluate`. The loss is summed on the device and read
(one GPU sync; under DDP one all_reduce, which also carries the stop flag) only every `log_every`
iterations, at an epoch's end and before a save, as nanoGPT reads `loss.item()` only when it logs.

The run directory holds config.yaml, last.pt and best.pt (atomic, self-describing checkpoints),
metrics.json, tensorboard/ and plots/. Resume is exact: the sampler order and each sample's
augmentation are functions of (seed, epoch, index) and dropout's generator is reseeded from
(seed, rank, iteration), so `last.pt` only needs weights, optimizer, scaler, counters and history.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from fast_scnn_core.atomic import atomic_write_text, remove_stale_temporaries
from fast_scnn_core.config import load_config, to_dict
from fast_scnn_core.data import DataConfig, build_dataset
from fast_scnn_core.data.dataset import SegmentationDataset, worker_error
from fast_scnn_core.data.transforms import normalize, train_transform
from fast_scnn_core.device import resolve_device
from fast_scnn_core.errors import CheckpointError, ConfigError, DataError, FastSCNNError
from fast_scnn_core.labels import IGNORE_INDEX, ClassSet
from fast_scnn_core.metrics import evaluate_model, metrics_from_confusion, no_labelled_pixels, to_json
from fast_scnn_core.model.checkpoint import IMAGENET_MEAN, IMAGENET_STD, class_set_of, load_checkpoint, save_checkpoint
from fast_scnn_core.model.network import FastSCNN


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
        # The checkpoint would carry them and every engine divide by std: refused here, before any training.
        if len(self.mean) != 3 or not all(math.isfinite(v) for v in self.mean):
            raise ValueError(f"mean must be 3 finite values (R, G, B in [0, 1]), got {list(self.mean)}")
        if len(self.std) != 3 or not all(math.isfinite(v) and v > 0 for v in self.std):
            raise ValueError(f"std must be 3 finite values > 0 (R, G, B in [0, 1]), got {list(self.std)}")


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
    """Training set (augmented) and validation set (full images) of the configured layout."""
    data = config.data
    transform = train_transform(data.crop_size, data.scale_range, data.hflip, data.brightness, data.channel_noise)
    train_set = build_dataset(
        data, data.train_splits, annotation=data.train_annotation, transform=transform, seed=config.seed
    )
    return train_set, build_dataset(data, [data.val_split], classes=train_set.classes)


# ---------------------------------------------------------------------------------------------
# Run directory, distributed setup, signals: settled before anything is written.


# What a run writes before its first checkpoint: a run_dir holding only these has nothing to protect.
BEFORE_FIRST_CHECKPOINT = ("config.yaml", "tensorboard", "plots", "metrics.json")


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Never overwrite a run: a run_dir with last.pt needs resume=true, resume needs last.pt, other files stay.

    A run_dir holding only what a run writes before its first checkpoint (a run stopped by a data
    error at its first iteration, say) is started again.
    """
    has_checkpoint = (run_dir / "last.pt").is_file()
    if resume and not has_checkpoint:
        raise ConfigError(f"resume=true but {run_dir / 'last.pt'} does not exist; check run_dir=")
    if resume or not run_dir.exists():
        return
    if has_checkpoint:
        raise ConfigError(
            f"run_dir {run_dir} already holds a run; continue it with resume=true or choose another run_dir=..."
        )
    # Temporary files of interrupted atomic writes (.<name>.<random>.tmp...) are no one's work.
    others = sorted(
        p.name
        for p in run_dir.iterdir()
        if p.name not in BEFORE_FIRST_CHECKPOINT and not (p.name.startswith(".") and ".tmp" in p.name)
    )
    if others:
        raise ConfigError(
            f"run_dir {run_dir} holds files that no run wrote ({', '.join(others[:3])}); "
            "choose another run_dir=... (a run never writes into them)"
        )


def clear_run_without_checkpoint(run_dir: Path) -> None:
    """Remove what a run that stopped before its first checkpoint left, so its logs do not mix with the new run's."""
    left = [run_dir / name for name in BEFORE_FIRST_CHECKPOINT if (run_dir / name).exists()]
    if left:
        print(f"run_dir {run_dir} holds a run stopped before its first checkpoint: starting it again", file=sys.stderr)
    for path in left:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


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


def per_process_batch(config: TrainConfig, env: Distributed) -> int:
    """Each process's share of batch_size, refused at start when BatchNorm could not train on it.

    In training, BatchNorm normalises each channel over the batch; after the pyramid pooling's 1x1
    bin that is one value per image, so one image per process leaves nothing to normalise over
    (torch raises at the first iteration). SyncBatchNorm pools the statistics of all processes,
    which makes one image per process valid when there are several; torch implements it on CUDA only.
    """
    world = env.world_size
    if config.batch_size % world:
        raise ConfigError(f"batch_size={config.batch_size} is not divisible by the {world} processes")
    batch = config.batch_size // world
    if config.sync_bn and env.device.type != "cuda":
        raise ConfigError(
            f"sync_bn=true needs CUDA devices (torch's SyncBatchNorm has no CPU implementation); on {env.device} "
            f"use sync_bn=false with at least 2 images per process (batch_size>={2 * world})"
        )
    if batch > 1 or (config.sync_bn and world > 1):
        return batch
    if world == 1:
        raise ConfigError(
            "batch_size=1: BatchNorm cannot train on one image (after the pyramid pooling's 1x1 bin it sees one "
            "value per channel); use batch_size>=2 (the paper's is 12)"
        )
    raise ConfigError(
        f"batch_size={config.batch_size} over {world} processes is 1 image per process, and BatchNorm cannot train "
        f"on one image (one value per channel after the pyramid pooling's 1x1 bin); add sync_bn=true "
        f"(SyncBatchNorm pools the statistics of all {world} processes) or use batch_size>={2 * world}"
    )


class StopSignal:
    """SIGTERM/SIGINT set a flag; the loop reads it with the loss, saves `last.pt` and exits."""

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


# ---------------------------------------------------------------------------------------------
# The run state: what last.pt holds, and save().


@dataclass
class RunState:
    """Weights, optimizer, scaler, counters and history: what last.pt holds; `save()` writes it.

    Every process keeps the same state (DDP keeps the weights equal); only the main one writes.
    """

    config: TrainConfig
    classes: ClassSet
    model: FastSCNN
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    main: bool = True
    iteration: int = 0
    epoch: int = 0  # epochs whose end (validation when due, save) is done
    best_miou: float = -1.0  # -1: no validation scored yet
    history: dict[str, list] = field(default_factory=lambda: {"train": [], "val": []})
    saved_iteration: int | None = None  # the iteration last.pt on disk holds

    @classmethod
    def create(cls, config: TrainConfig, classes: ClassSet, env: Distributed) -> RunState:
        """Seeded initial weights, SGD with the paper's parameter groups, a GradScaler (AMP on CUDA only)."""
        torch.manual_seed(config.seed)
        model = FastSCNN(classes.num_classes, aux=True, dropout=config.dropout)
        if config.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(env.device)
        optimizer = torch.optim.SGD(
            parameter_groups(model, config.weight_decay), lr=config.lr, momentum=config.momentum
        )
        scaler = torch.amp.GradScaler("cuda", enabled=config.amp and env.device.type == "cuda")
        return cls(config, classes, model, optimizer, scaler, env.main)

    @property
    def run_dir(self) -> Path:
        return Path(self.config.run_dir)

    def load(self) -> dict[str, Any]:
        """Continue from run_dir/last.pt exactly where it stood; returns the options it was trained with."""
        path = self.run_dir / "last.pt"
        payload = load_checkpoint(path, map_location="cpu", resume=True)
        if class_set_of(payload) != self.classes:
            raise CheckpointError(
                f"{path} was trained on classes {list(class_set_of(payload).names)}, "
                f"the configured data has {list(self.classes.names)}"
            )
        state = payload["training_state"]
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.iteration = self.saved_iteration = payload["iteration"]
        self.epoch = payload["epoch"]
        self.best_miou, self.history = state["best_miou"], state["history"]
        return payload["train_config"]

    def check_finite(self) -> None:
        """Stop the run (see `diverged`) when a weight or BatchNorm statistic holds NaN or infinity."""
        tensors = {name: t for name, t in self.model.state_dict().items() if t.is_floating_point()}
        finite = torch.stack([t.isfinite().all() for t in tensors.values()]).tolist()  # one GPU sync
        if not all(finite):
            name = next(name for name, ok in zip(tensors, finite, strict=True) if not ok)
            raise self.diverged(f"the weights became non-finite ({name}) by iteration {self.iteration}")

    def save(self, metrics: dict[str, Any] | None = None, best: bool = False) -> None:
        """Write last.pt (and best.pt when `best`) atomically; refuses weights that are not finite."""
        self.check_finite()
        if self.main:
            training_state = {
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "best_miou": self.best_miou,
                "history": self.history,
            }
            common = dict(
                mean=self.config.mean,
                std=self.config.std,
                train_config=to_dict(self.config),
                epoch=self.epoch,
                iteration=self.iteration,
                metrics=metrics,
            )
            save_checkpoint(self.run_dir / "last.pt", self.model, self.classes, training_state=training_state, **common)
            if best:
                save_checkpoint(self.run_dir / "best.pt", self.model, self.classes, **common)
        self.saved_iteration = self.iteration

    def diverged(self, what: str) -> FastSCNNError:
        """The error that stops a run whose loss or weights became NaN or infinite; nothing of it is saved."""
        saved = "no checkpoint was saved yet"
        if self.saved_iteration is not None:
            saved = f"{self.run_dir / 'last.pt'} holds iteration {self.saved_iteration}"
        return FastSCNNError(
            f"{what}; stopped without saving these weights ({saved}). Lower lr= (now {self.config.lr}) "
            "or check the data, then start again or resume=true"
        )


# ---------------------------------------------------------------------------------------------
# The training loop.


class LossMeter:
    """The training loss summed on the device since the last log; `read()` is the loop's only GPU sync."""

    def __init__(self, device: torch.device, iteration: int) -> None:
        self.sums = torch.zeros(2, device=device)  # loss, batches without labelled pixels
        self.batches = 0
        self.finite_until = iteration  # the last iteration whose loss was read and finite

    def add(self, loss: torch.Tensor, target: torch.Tensor) -> None:
        self.sums += torch.stack([loss.detach().float(), (target == IGNORE_INDEX).all().float()])
        self.batches += 1

    def read(self, stop_signum: int, env: Distributed) -> tuple[float, int, int, bool]:
        """Over all processes since the last reset: (loss sum, batches, batches without labels, stop asked)."""
        stop = torch.tensor([float(stop_signum)], device=self.sums.device)
        status = torch.cat([self.sums, stop])
        if env.world_size > 1:
            dist.all_reduce(status)
        total, empty, stopping = status.tolist()
        return total, self.batches * env.world_size, int(empty), stopping > 0

    def reset(self) -> None:
        self.sums.zero_()
        self.batches = 0


@dataclass
class Loop:
    """This invocation's side of a run, never saved: network, data, schedule, stop flag, loss sums, logs."""

    env: Distributed
    net: nn.Module  # the model, wrapped in DistributedDataParallel under torchrun
    train_set: SegmentationDataset
    val_set: SegmentationDataset
    sampler: DistributedSampler
    batch: int  # per process
    iters_per_epoch: int
    total: int
    stop_at: int
    stop: StopSignal
    meter: LossMeter
    progress: tqdm
    writer: Any  # TensorBoard SummaryWriter on the main process, else None
    started: float = field(default_factory=time.monotonic)


def train(config: TrainConfig) -> int:
    """Train per `config`; returns the exit status (0 done, 128 + signal number when stopped by a signal)."""
    run_dir = Path(config.run_dir)
    env = setup_distributed(config.device)
    try:
        # Every process checks before any writes (the barrier), so none sees another's files.
        batch = per_process_batch(config, env)
        remove_stale_temporaries(run_dir)  # left by a write that was killed (SIGKILL, power loss)
        check_run_dir(run_dir, config.resume)
        train_set, val_set = build_datasets(config)  # checks the data before anything is written
        if env.world_size > 1:
            dist.barrier()
        return fit(config, train_set, val_set, env, batch)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def fit(
    config: TrainConfig, train_set: SegmentationDataset, val_set: SegmentationDataset, env: Distributed, batch: int
) -> int:
    """Build the run state (fresh, or from last.pt) and this invocation's loop, then run the epochs."""
    sampler = DistributedSampler(train_set, env.world_size, env.rank, shuffle=True, seed=config.seed, drop_last=True)
    iters_per_epoch = len(sampler) // batch
    if iters_per_epoch == 0:
        raise DataError(
            f"{config.data.root}: {len(train_set)} training images give no full batch of {batch} per process; "
            "lower batch_size or add images"
        )
    state = RunState.create(config, train_set.classes, env)
    if config.resume:
        _warn_config_changes(state.load(), config, env)
    elif env.main:
        clear_run_without_checkpoint(state.run_dir)
        atomic_write_text(state.run_dir / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False))
    net = state.model
    if env.world_size > 1:
        net = DistributedDataParallel(net, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    total = config.epochs * iters_per_epoch
    stop_at = state.iteration + config.stop_after if config.stop_after else total
    with contextlib.ExitStack() as cleanup:
        stop = cleanup.enter_context(StopSignal())
        progress = cleanup.enter_context(
            tqdm(total=total, initial=state.iteration, disable=not env.main, dynamic_ncols=True, desc="train")
        )
        writer = _summary_writer(state.run_dir) if env.main else None
        if writer is not None:
            cleanup.callback(writer.close)
        loop = Loop(
            env=env,
            net=net,
            train_set=train_set,
            val_set=val_set,
            sampler=sampler,
            batch=batch,
            iters_per_epoch=iters_per_epoch,
            total=total,
            stop_at=stop_at,
            stop=stop,
            meter=LossMeter(env.device, state.iteration),
            progress=progress,
            writer=writer,
        )
        if env.main:
            print(
                f"training {state.classes.num_classes} classes on {len(train_set)} images, {iters_per_epoch} "
                f"iterations/epoch, {total} in all, batch {config.batch_size} on {env.world_size} x {env.device}"
                + (f", resuming at iteration {state.iteration}" if state.iteration else ""),
                file=sys.stderr,
            )
        return run_epochs(state, loop)


def run_epochs(state: RunState, loop: Loop) -> int:
    """The epochs from where the state stands, each followed by its validation (when due) and a save."""
    config = state.config
    for epoch in range(first_epoch(state, loop.iters_per_epoch), config.epochs):
        if state.iteration < (epoch + 1) * loop.iters_per_epoch:
            status = train_one_epoch(state, loop, epoch)
            if status is not None:
                return status
        end_epoch(state, loop, epoch)
        if state.iteration >= loop.stop_at and epoch + 1 < config.epochs:
            return stop_run(state, loop, 0, saved=True)
    if loop.env.main:
        best = f"best val mIoU {100 * state.best_miou:.2f} in {state.run_dir / 'best.pt'}"
        if state.best_miou < 0:
            best = "no validation had labelled pixels, so there is no best.pt; the weights are in last.pt"
        print(f"done: {state.iteration} iterations; {best}", file=sys.stderr)
    return 0


def first_epoch(state: RunState, iters_per_epoch: int) -> int:
    """The epoch to continue: the one the iteration is in, or the one before when the run stopped on
    its last iteration, before its end (validation, save), so a resumed run validates as a straight one."""
    epoch, done = divmod(state.iteration, iters_per_epoch)
    return epoch - 1 if done == 0 and state.epoch < epoch else epoch


def epoch_loader(state: RunState, loop: Loop, epoch: int) -> DataLoader:
    """The batches of `epoch` still to train: the order is a function of (seed, epoch), so a resumed
    epoch skips exactly the batches trained before the stop."""
    loop.train_set.set_epoch(epoch)
    loop.sampler.set_epoch(epoch)
    done = state.iteration - epoch * loop.iters_per_epoch
    return DataLoader(
        loop.train_set,
        batch_size=loop.batch,
        sampler=list(loop.sampler)[done * loop.batch :],
        drop_last=True,
        num_workers=state.config.data.workers,
        pin_memory=loop.env.device.type == "cuda",
        worker_init_fn=_worker_init,
    )


def train_one_epoch(state: RunState, loop: Loop, epoch: int) -> int | None:
    """Train the rest of `epoch`; returns the exit status when the run stops early, None at the epoch's end."""
    config, device = state.config, loop.env.device
    loop.net.train()
    try:
        for images, target in epoch_loader(state, loop, epoch):
            for group in state.optimizer.param_groups:
                group["lr"] = poly_lr(config.lr, state.iteration, loop.total, config.poly_power)
            # Dropout's randomness as a function of (seed, rank, iteration): exact resume anywhere.
            torch.manual_seed(config.seed * 1_000_003 + loop.env.rank * 10_007 + state.iteration)
            images = normalize(images.to(device, non_blocking=True), config.mean, config.std)
            target = target.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=state.scaler.is_enabled()):
                loss = segmentation_loss(loop.net(images), target, config.aux_weight)
            state.optimizer.zero_grad(set_to_none=True)
            state.scaler.scale(loss).backward()
            state.scaler.step(state.optimizer)
            state.scaler.update()
            state.iteration += 1
            loop.meter.add(loss, target)
            loop.progress.update()
            status = sync_point(state, loop, epoch)
            if status is not None:
                return status
    except DataError as exc:
        raise worker_error(exc) from None
    except RuntimeError:
        # A SIGTERM sent to the whole process group also ends the loader workers.
        if not loop.stop.signum:
            raise
        return stop_run(state, loop, loop.stop.signum)
    return None


def sync_point(state: RunState, loop: Loop, epoch: int) -> int | None:
    """Every log_every iterations, at the epoch's end and before a save: read the loss and the stop flag.

    A non-finite loss stops the run before anything is saved: every save comes after such a read
    (and `save()` checks the weights too), so no checkpoint ever holds what a NaN did to the weights.
    Returns the exit status when the run stops here, else None.
    """
    config, i = state.config, state.iteration
    epoch_end = i % loop.iters_per_epoch == 0
    log = i % config.log_every == 0 or i == loop.total
    save = bool(config.save_every) and i % config.save_every == 0 and not epoch_end
    stop_after = i >= loop.stop_at and not epoch_end  # at an epoch's end it is taken after the validation
    if not (log or epoch_end or save or stop_after):
        return None
    total, batches, empty, stopping = loop.meter.read(loop.stop.signum, loop.env)
    if not math.isfinite(total):
        first = loop.meter.finite_until + 1
        where = f"at iteration {i}" if first == i else f"between iterations {first} and {i}"
        raise state.diverged(f"the loss became {total} {where} (epoch {epoch})")
    loop.meter.finite_until = i
    if log:
        log_loss(state, loop, total / (batches - empty) if batches > empty else None, empty)
    if stopping:
        return stop_run(state, loop, int(loop.stop.signum or signal.SIGTERM))
    if stop_after:
        return stop_run(state, loop, 0)
    if save:
        state.save()
    return None


def log_loss(state: RunState, loop: Loop, loss: float | None, empty: int) -> None:
    """Since the last log: the mean loss of the labelled batches (history, TensorBoard, progress bar) and
    the count of batches without labelled pixels, which contributed nothing."""
    lr = state.optimizer.param_groups[0]["lr"]
    if loss is not None:
        state.history["train"].append([state.iteration, loss])
        loop.progress.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
    if empty and loop.env.main:
        tqdm.write(
            f"iteration {state.iteration}: {empty} batch(es) since the last log had no labelled pixel "
            f"(all {IGNORE_INDEX}) and contributed nothing",
            file=sys.stderr,
        )
    if loop.writer is not None:
        for name, value in (("loss", loss), ("lr", lr), ("batches_without_labels", empty)):
            if value is not None:
                loop.writer.add_scalar(f"train/{name}", value, state.iteration)
    loop.meter.reset()


def stop_run(state: RunState, loop: Loop, signum: int, saved: bool = False) -> int:
    """Save last.pt and say how to continue; exit status 128 + signal, or 0 for stop_after."""
    if not saved:
        state.save()
    reason = signal.Signals(signum).name if signum else f"stop_after={state.config.stop_after}"
    if loop.env.main:
        tqdm.write(
            f"{reason}: saved {state.run_dir / 'last.pt'} at iteration {state.iteration}; continue with resume=true",
            file=sys.stderr,
        )
    return 128 + signum if signum else 0


def end_epoch(state: RunState, loop: Loop, epoch: int) -> None:
    """Validate when due (every val_every epochs and after the last), then save last.pt (and best.pt)."""
    config = state.config
    metrics, best = None, False
    if (config.val_every and (epoch + 1) % config.val_every == 0) or epoch + 1 == config.epochs:
        state.check_finite()  # the last step's weights: never validated (metrics.json) if not saved
        metrics = evaluate(state, loop, epoch)
        best = metrics["miou"] > state.best_miou
        state.best_miou = max(state.best_miou, metrics["miou"])
    state.epoch = epoch + 1
    state.save(metrics, best)


def evaluate(state: RunState, loop: Loop, epoch: int) -> dict[str, Any]:
    """Validation metrics of the model (each process scores a share of the images), reported by the main one."""
    config = state.config
    confusion = evaluate_model(state.model, loop.val_set, loop.env.device, config.mean, config.std)
    metrics = metrics_from_confusion(confusion, state.classes)
    metrics.update(epoch=epoch + 1, iteration=state.iteration, minutes=(time.monotonic() - loop.started) / 60)
    state.history["val"].append({k: v for k, v in metrics.items() if k not in ("class_iou", "category_iou")})
    if loop.env.main:
        _report(state, metrics, confusion, loop.writer)
    return metrics


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


def _report(state: RunState, metrics: dict[str, Any], confusion: torch.Tensor, writer: Any) -> None:
    """After a validation: TensorBoard scalars, metrics.json, plots, a line on stderr."""
    iteration, run_dir = state.iteration, state.run_dir
    for key in ("miou", "category_miou", "pixel_accuracy"):
        if not math.isnan(metrics[key]):
            writer.add_scalar(f"val/{key}", metrics[key], iteration)
    for name, value in metrics["class_iou"].items():
        if not math.isnan(value):
            writer.add_scalar(f"val_iou/{name}", value, iteration)
    writer.flush()
    latest = {**metrics, "confusion": confusion.cpu().tolist()}
    atomic_write_text(run_dir / "metrics.json", to_json({"latest": latest, "history": state.history}))
    if state.config.plots:
        from fast_scnn_core.train import plots

        names = list(metrics["class_iou"])
        plots.plot_curves(state.history, run_dir / "plots" / "curves.png")
        plots.plot_class_iou(
            metrics["class_iou"], run_dir / "plots" / "class_iou.png", f"per-class IoU, iteration {iteration}"
        )
        plots.plot_confusion(confusion.cpu().numpy(), names, run_dir / "plots" / "confusion.png")
    if metrics["pixels"]:
        tqdm.write(f"iteration {iteration}: val mIoU {100 * metrics['miou']:.2f}%", file=sys.stderr)
    else:
        tqdm.write(f"iteration {iteration}: {no_labelled_pixels(state.config.data.val_split)}", file=sys.stderr)


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
