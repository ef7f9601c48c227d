"""ROS test fixtures: a private DDS domain on localhost, a tiny checkpoint, the node as a real process.

Everything here is real rclpy over Fast DDS. The domain id is derived from the pid and set before
rclpy.init (and inherited by every process started), so parallel test runs never see each other;
discovery stays on localhost.
"""

from __future__ import annotations

import os

os.environ["ROS_DOMAIN_ID"] = str(os.getpid() % 100 + 1)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_STATIC_PEERS", None)

from collections.abc import Iterator
from pathlib import Path

import pytest
import rclpy
from harness import NodeProcess, RosHarness

from fast_scnn_core.checkpoint import save_checkpoint
from fast_scnn_core.labels import ClassSet
from fast_scnn_core.model import FastSCNN

# "traffic light" exercises topic-name sanitising (masks/traffic_light).
CLASSES = ClassSet(("road", "traffic light", "sky"), ((128, 64, 128), (250, 170, 30), (70, 130, 180)))


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
    """Factory: start the installed segmentation_node with extra --ros-args; all are stopped at the end."""
    started: list[NodeProcess] = []

    def start(*ros_args: str) -> NodeProcess:
        proc = NodeProcess(list(ros_args), tmp_path_factory.mktemp("node"))
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
