"""The training loop: `train` -> `fit` -> `run_epochs` -> `train_one_epoch` and `evaluate`.

Read it top to bottom like torchvision's references/segmentation/train.py. The recipe's pieces are in
recipe.py, DDP in distributed.py, the run directory and its checkpoints in run_dir.py, TensorBoard,
metrics.json and plots in report.py, starting from another checkpoint's weights (`init=`) and the
network's variant in finetune.py. Here: `RunState` (what last.pt holds, and `save()`), `Loop` (this
invocation's side), and the loop. The loss is summed on the device and read (one GPU sync;
under DDP one all_reduce, which also carries the stop flag) only every `log_every` iterations, at an
epoch's end and before a save, as nanoGPT reads `loss.item()` only when it logs.

Resume is exact: the sampler order and each sample's augmentation are functions of (seed, epoch,
index) and dropout's generator is reseeded from (seed, rank, iteration), so `last.pt` only needs
weights, optimizer, scaler, counters and history.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from fast_scnn_core.config import to_dict
from fast_scnn_core.data.dataset import SegmentationDataset, worker_error
from fast_scnn_core.data.transforms import normalize
from fast_scnn_core.errors import DataError, FastSCNNError
from fast_scnn_core.labels import IGNORE_INDEX, ClassSet
from fast_scnn_core.metrics import metrics_from_confusion
from fast_scnn_core.model.network import Variant
from fast_scnn_core.train.distributed import (
    Distributed,
    barrier,
    data_parallel,
    per_process_batch,
    setup_distributed,
    sum_over_processes,
    teardown_distributed,
)
from fast_scnn_core.train.finetune import init_weights, load_init, mean_std_warning, run_variant
from fast_scnn_core.train.recipe import (
    TrainConfig,
    build_datasets,
    initial_model,
    segmentation_loss,
    set_poly_lr,
    sgd,
)
from fast_scnn_core.train.report import TensorBoard, report_validation
from fast_scnn_core.train.run_dir import check_run_dir, load_last, save_run, start_run_dir, warn_config_changes
from fast_scnn_core.train.validate import evaluate_model


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
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    main: bool = True
    iteration: int = 0
    epoch: int = 0  # epochs whose end (validation when due, save) is done
    best_miou: float = -1.0  # -1: no validation scored yet
    history: dict[str, list] = field(default_factory=lambda: {"train": [], "val": []})
    saved_iteration: int | None = None  # the iteration last.pt on disk holds

    @classmethod
    def create(cls, config: TrainConfig, classes: ClassSet, env: Distributed, variant: Variant = "paper") -> RunState:
        """Seeded initial weights, SGD with the paper's parameter groups, a GradScaler (AMP on CUDA only)."""
        model = initial_model(config, classes.num_classes, env.device, variant)
        scaler = torch.amp.GradScaler("cuda", enabled=config.amp and env.device.type == "cuda")
        return cls(config, classes, model, sgd(model, config), scaler, env.main)

    @property
    def run_dir(self) -> Path:
        return Path(self.config.run_dir)

    def load(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Continue from last.pt's `payload` exactly where it stood; returns the options it was trained with."""
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
            save_run(
                self.run_dir,
                self.model,
                self.classes,
                training_state,
                best,
                mean=self.config.mean,
                std=self.config.std,
                train_config=to_dict(self.config),
                epoch=self.epoch,
                iteration=self.iteration,
                metrics=metrics,
            )
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
        total, empty, stopping = sum_over_processes(torch.cat([self.sums, stop])).tolist()
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
    writer: TensorBoard | None  # on the main process only
    started: float = field(default_factory=time.monotonic)


def train(config: TrainConfig) -> int:
    """Train per `config`; returns the exit status (0 done, 128 + signal number when stopped by a signal)."""
    env = setup_distributed(config.device)
    try:
        # Every process checks before any writes (the barrier), so none sees another's files.
        batch = per_process_batch(config, env)
        check_run_dir(Path(config.run_dir), config.resume)
        init = load_init(config)  # a missing or foreign file, or one of another variant= than asked
        train_set, val_set = build_datasets(config)  # checks the data before anything is written
        barrier(env)
        return fit(config, train_set, val_set, env, batch, init)
    finally:
        teardown_distributed()


def fit(
    config: TrainConfig,
    train_set: SegmentationDataset,
    val_set: SegmentationDataset,
    env: Distributed,
    batch: int,
    init: dict[str, Any] | None = None,
) -> int:
    """Build the run state (fresh, from `init`'s weights, or from last.pt) and this invocation's loop, then run
    the epochs."""
    sampler = DistributedSampler(train_set, env.world_size, env.rank, shuffle=True, seed=config.seed, drop_last=True)
    iters_per_epoch = len(sampler) // batch
    if iters_per_epoch == 0:
        raise DataError(
            f"{config.data.root}: {len(train_set)} training images give no full batch of {batch} per process; "
            "lower batch_size or add images"
        )
    state = start_state(config, train_set.classes, env, init)
    net = data_parallel(state.model, env)
    total = config.epochs * iters_per_epoch
    stop_at = state.iteration + config.stop_after if config.stop_after else total
    with contextlib.ExitStack() as cleanup:
        stop = cleanup.enter_context(StopSignal())
        progress = cleanup.enter_context(
            tqdm(total=total, initial=state.iteration, disable=not env.main, dynamic_ncols=True, desc="train")
        )
        writer = TensorBoard(state.run_dir) if env.main else None
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
                f"training {state.classes.num_classes} classes ({state.model.variant} network) on {len(train_set)} "
                f"images, {iters_per_epoch} "
                f"iterations/epoch, {total} in all, batch {config.batch_size} on {env.world_size} x {env.device}"
                + (f", resuming at iteration {state.iteration}" if state.iteration else ""),
                file=sys.stderr,
            )
        return run_epochs(state, loop)


def start_state(config: TrainConfig, classes: ClassSet, env: Distributed, init: dict[str, Any] | None) -> RunState:
    """The run state from last.pt (resume=true), or fresh (from `init`'s weights when given) in a run_dir that
    holds the new config.yaml. The network is of the variant of the weights it starts from (`run_variant`)."""
    if config.resume:
        state_dir = Path(config.run_dir)
        last = load_last(state_dir, classes)
        state = RunState.create(config, classes, env, run_variant(config, last, str(state_dir / "last.pt")))
        warn_config_changes(state.load(last), config, env.main)
        return state
    state = RunState.create(config, classes, env, run_variant(config, init, f"init={config.init}"))
    if init is not None:
        report = init_weights(state.model, init, classes)
        warning = mean_std_warning(config.init, init, config)
        if env.main:
            print(report.describe(config.init, init, classes), file=sys.stderr)
            if warning:
                print(warning, file=sys.stderr)
    if env.main:
        start_run_dir(state.run_dir, config)
    return state


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
            set_poly_lr(state.optimizer, config, state.iteration, loop.total)
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
        scalars = {"loss": loss, "lr": lr, "batches_without_labels": empty}
        loop.writer.scalars("train", scalars, state.iteration)
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
        report_validation(
            state.run_dir, metrics, confusion, state.history, loop.writer, config.plots, config.data.val_split
        )
    return metrics
