"""What tests in every test directory share: the repository root, the environment a subprocess needs to run
this working tree's code, one way to run a command there, and the class set of the ROS tests.

Importable as `support` from test/, test/core and test/ros (pyproject.toml puts test/ on pytest's pythonpath).
Fixtures stay in the conftest.py files; nothing is imported from a conftest.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from fast_scnn_core.labels import ClassSet

REPO = Path(__file__).resolve().parents[1]

# The ROS tests' checkpoint classes; "traffic light" exercises topic-name sanitising (masks/traffic_light).
CLASSES = ClassSet(("road", "traffic light", "sky"), ((128, 64, 128), (250, 170, 30), (70, 130, 180)))


def tree_env(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The environment for a subprocess that runs this working tree's code (through the venv's installed
    launchers too): this process's with REPO first on PYTHONPATH, or `base` with PYTHONPATH=REPO unless it names
    its own (a colcon workspace's shell names its install); then `extra`."""
    if base is None:
        inherited = os.environ.get("PYTHONPATH")  # a sourced ROS underlay's: kept, after the working tree
        return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), inherited))), **extra}
    return {"PYTHONPATH": str(REPO), **base, **extra}


def run_command(
    command: list[str] | str, *, env: Mapping[str, str] | None = None, timeout: float = 300, **options: object
) -> subprocess.CompletedProcess[str]:
    """`command` run to its end in `tree_env()` (or `env`), stdout and stderr captured as text; never raises on
    a non-zero exit (the test asserts on it, with the output)."""
    return subprocess.run(
        command,
        env=tree_env() if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        **options,
    )
