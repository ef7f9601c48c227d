"""Core fixtures: a tiny synthetic Cityscapes-layout dataset and one short training run, shared per session."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from models import TINY, trained_like
from support import REPO

from fast_scnn_core.config import load_config
from fast_scnn_core.data.synthetic import write_synthetic_dataset
from fast_scnn_core.model.checkpoint import save_checkpoint
from fast_scnn_core.train.loop import train
from fast_scnn_core.train.recipe import TrainConfig

SYNTH_SIZE = (128, 256)  # height, width of the session dataset's frames


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 train + 8 val synthetic frames of 128x256 in the Cityscapes layout (about a second to write)."""
    root = tmp_path_factory.mktemp("synth")
    write_synthetic_dataset(root, {"train": 32, "val": 8}, *SYNTH_SIZE, seed=0)
    return root


def make_tiny_config(root: Path, run_dir: Path, *overrides: str) -> TrainConfig:
    """The synthetic quick-start config pointed at `root`, small enough for a test."""
    base = [
        f"data.root={root}",
        f"run_dir={run_dir}",
        "data.crop_size=[64,128]",
        "data.workers=0",
        "batch_size=4",
        "epochs=2",
        "plots=false",
        "log_every=1",
    ]
    return load_config(TrainConfig, REPO / "config/train_synthetic.yaml", [*base, *overrides])


@pytest.fixture
def tiny_config() -> Callable[..., TrainConfig]:
    """`tiny_config(root, run_dir, "key=value", ...)`: a TrainConfig for a test-sized run."""
    return make_tiny_config


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-class checkpoint whose BatchNorms hold trained-like statistics (models.trained_like)."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, trained_like(3), TINY)
    return path


@pytest.fixture(scope="session")
def trained_run(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The learning run: 48 iterations of batch 8 on 128x256 crops; its run dir and wall time."""
    run_dir = tmp_path_factory.mktemp("runs") / "learn"
    config = make_tiny_config(
        synth_root, run_dir, "data.crop_size=[128,256]", "batch_size=8", "epochs=12", "val_every=4", "plots=true"
    )
    started = time.monotonic()
    assert train(config) == 0
    return {"run_dir": run_dir, "seconds": time.monotonic() - started}


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """`tmpfs("6m", "ro")`: a fresh tmpfs of that size, mounted for the test (root only)."""
    mounted: list[Path] = []

    def mount(size: str, *options: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("a full or read-only disk is made with a tmpfs mount, which needs root")
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.fixture(scope="session")
def ray_local() -> Iterator[object]:
    """One local Ray instance for the session's tests (2 CPUs, no dashboard): about 4 s to start and 1 s to stop
    on 2 cores, paid once. Its worker processes import this working tree (PYTHONPATH as ray.init found it)."""
    import ray

    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO), saved)))
    try:
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, object_store_memory=100 * 2**20)
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    yield ray
    ray.shutdown()
