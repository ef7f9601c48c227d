"""The run directory: never overwritten, config.yaml, last.pt / best.pt (atomic, self-describing), resume.

A run writes config.yaml at its start, then last.pt (weights, optimizer, scaler, counters, history:
what resume needs) and best.pt (the weights with the best validation class mIoU), metrics.json,
tensorboard/ and plots/ (report.py).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from fast_scnn_core.atomic import atomic_write_text, remove_stale_temporaries
from fast_scnn_core.config import to_dict
from fast_scnn_core.errors import CheckpointError, ConfigError
from fast_scnn_core.labels import ClassSet
from fast_scnn_core.model.checkpoint import class_set_of, load_checkpoint, save_checkpoint
from fast_scnn_core.train.recipe import TrainConfig

# What a run writes before its first checkpoint: a run_dir holding only these has nothing to protect.
BEFORE_FIRST_CHECKPOINT = ("config.yaml", "tensorboard", "plots", "metrics.json")


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Never overwrite a run: a run_dir with last.pt needs resume=true, resume needs last.pt, other files stay.

    A run_dir holding only what a run writes before its first checkpoint (a run stopped by a data
    error at its first iteration, say) is started again. Temporaries of writes that were killed
    (SIGKILL, power loss) are removed first.
    """
    remove_stale_temporaries(run_dir)
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


def start_run_dir(run_dir: Path, config: TrainConfig) -> None:
    """A fresh run's directory: what a run stopped before its first checkpoint left is removed, then config.yaml."""
    clear_run_without_checkpoint(run_dir)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False))


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


def save_run(
    run_dir: Path,
    model: nn.Module,
    classes: ClassSet,
    training_state: dict[str, Any],
    best: bool,
    **common: Any,
) -> None:
    """Write last.pt (with `training_state`, for resume) and, when `best`, best.pt (weights only), each atomically."""
    save_checkpoint(run_dir / "last.pt", model, classes, training_state=training_state, **common)
    if best:
        save_checkpoint(run_dir / "best.pt", model, classes, **common)


def load_last(run_dir: Path, classes: ClassSet) -> dict[str, Any]:
    """The payload of run_dir/last.pt to resume from, refused when it was trained on other classes."""
    path = run_dir / "last.pt"
    payload = load_checkpoint(path, map_location="cpu", resume=True)
    if class_set_of(payload) != classes:
        raise CheckpointError(
            f"{path} was trained on classes {list(class_set_of(payload).names)}, "
            f"the configured data has {list(classes.names)}"
        )
    return payload


def warn_config_changes(saved: dict[str, Any], config: TrainConfig, main: bool) -> None:
    """On resume, name the options that differ from the saved run's (resume is exact only with the same)."""
    current = to_dict(config)
    # init is refused with resume (last.pt's weights started from it); the variant is checked against last.pt's.
    ignored = ("resume", "stop_after", "init", "variant")
    changed = sorted(k for k in current if k not in ignored and saved.get(k) != current[k])
    if changed and main:
        print(
            f"resume: options differ from the saved run: {changed}; resume is exact only with the same options",
            file=sys.stderr,
        )
