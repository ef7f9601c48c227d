"""Data-parallel training from torchrun's environment: one process per device, DDP, SyncBatchNorm's batch rule.

Started by `torchrun --nproc_per_node N` (RANK, WORLD_SIZE, LOCAL_RANK set): nccl on CUDA, gloo on
CPU. Otherwise a single process and every helper here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from fast_scnn_core.device import resolve_device
from fast_scnn_core.errors import ConfigError
from fast_scnn_core.train.recipe import TrainConfig


@dataclass
class Distributed:
    """This process's device and place among the training processes."""

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


def teardown_distributed() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: Distributed) -> None:
    """Wait for every process (under torchrun)."""
    if env.world_size > 1:
        dist.barrier()


def data_parallel(model: nn.Module, env: Distributed) -> nn.Module:
    """The model wrapped in DistributedDataParallel under torchrun, else the model itself."""
    if env.world_size == 1:
        return model
    return DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of this process in the process group, (0, 1) outside one."""
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def sum_over_processes(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` summed in place over all processes (one all_reduce under torchrun; unchanged outside)."""
    if rank_and_world()[1] > 1:
        dist.all_reduce(tensor)
    return tensor


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
