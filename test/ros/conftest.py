"""ROS test fixtures: a private DDS domain on localhost, a tiny checkpoint, the node as a real process.

Everything here is real rclpy over Fast DDS. The domain id is derived from the pid and set before
rclpy.init (and inherited by every process started), so parallel test runs never see each other;
discovery stays on localhost.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import rclpy
from harness import NodeProcess, Ros2, RosHarness
from support import CLASSES, REPO
from workspace import Workspace, build_workspace

from fast_scnn_core.model.checkpoint import save_checkpoint
from fast_scnn_core.model.network import FastSCNN
from fast_scnn_ros.tools.probe import use_private_domain

use_private_domain(override=True)  # before rclpy.init; every process started inherits it


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 3-class checkpoint: outputs are arbitrary but valid class ids."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, FastSCNN(len(CLASSES.names)), CLASSES)
    return path


@pytest.fixture(scope="session")
def ros() -> Iterator[RosHarness]:
    """The test process's own rclpy node, used to publish, subscribe and call parameter services."""
    rclpy.init()
    harness = RosHarness()
    yield harness
    harness.close()
    rclpy.try_shutdown()


@pytest.fixture(scope="session")
def start_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Factory: start the installed segmentation_node (or, `lifecycle`, segmentation_lifecycle_node) with extra
    --ros-args; all are stopped at the end."""
    started: list[NodeProcess] = []

    def start(*ros_args: str, lifecycle: bool = False) -> NodeProcess:
        proc = NodeProcess(list(ros_args), tmp_path_factory.mktemp("node"), lifecycle=lifecycle)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="session")
def ros2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ros2]:
    """The real `ros2` command line (launch, run, param, topic, pkg) over this environment's installation.

    Missing (no ROS install, no ../shared/ros2-cli at `make venv`): the tests that need it FAIL under
    CI=true and skip elsewhere, with the reason.
    """
    bin_dir = Path(sys.executable).parent
    missing = [module for module in ("launch", "launch_ros", "ros2launch") if importlib.util.find_spec(module) is None]
    if shutil.which("ros2", path=f"{bin_dir}{os.pathsep}{os.environ['PATH']}") is None:
        missing.insert(0, "the ros2 command")
    if missing:
        reason = (
            f"the ROS 2 command line is missing ({', '.join(missing)}): `make venv` installs it from "
            "../shared/ros2-cli; a ROS 2 install provides it"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    installed = Path(sys.prefix) / "share/fast_scnn_ros/launch/segment.launch.py"
    if not installed.is_file() or installed.read_text() != (REPO / "launch/segment.launch.py").read_text():
        pytest.fail(f"{installed} is not the working tree's launch file: run `make venv` (it reinstalls the project)")
    underlay = os.environ.get("AMENT_PREFIX_PATH")  # a ROS install's, where there is one
    prefixes = os.pathsep.join(p for p in (sys.prefix, underlay) if p)
    env = {**os.environ, "AMENT_PREFIX_PATH": prefixes, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)  # the launch file's default profile is under test
    cli = Ros2(env, tmp_path_factory)
    yield cli
    cli.stop_all()


@pytest.fixture(scope="session")
def ros2_workspace(ros2: Ros2, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A fresh colcon workspace made by the README's workspace section (all but its last command)."""
    return build_workspace(tmp_path_factory.mktemp("home"), ros2.env)


@pytest.fixture(scope="session")
def trained_checkpoint(ros2_workspace: Workspace) -> Path:
    """The tiny checkpoint `ros2 run fast_scnn_core train` made in that workspace, shared by the ros2 CLI tests."""
    return ros2_workspace.checkpoint
