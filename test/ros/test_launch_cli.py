"""`ros2 launch fast_scnn_ros segment.launch.py` as a user runs it: every launch argument read back from
the node and labels flowing from a camera process to a planner process; Ctrl-C; a node that cannot start."""

from __future__ import annotations

import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml
from harness import Process, Ros2, camera_info_yaml, compressed_yaml, image_yaml

pytestmark = [pytest.mark.ros_process, pytest.mark.training]

LAUNCH = ("launch", "fast_scnn_ros", "segment.launch.py")
INSTALLED_PROFILE = Path(sys.prefix) / "share/fast_scnn_ros/config/fastdds_large_images.xml"
H, W = 48, 64
IMAGE = "sensor_msgs/msg/Image"


def rgb(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def node_parameters(ros2: Ros2, names: list[str]) -> dict:
    """These parameters of /fast_scnn as `ros2 param get` reads them (run side by side: each is a process).

    (`ros2 param dump` of this ros2cli prints no parameters on this rclpy, so each is read with `get`.)
    """

    def get(name: str) -> object:
        out = ros2.run("param", "get", "--no-daemon", "--timeout", "30", "/fast_scnn", name)
        kind, _, text = out.strip().partition(" value is: ")  # "Integer value is: 40", "String value is: cpu"
        return {"Boolean": lambda t: t == "True", "Integer": int, "String": str}[kind](text)

    with ThreadPoolExecutor(len(names)) as pool:
        return dict(zip(names, pool.map(get, names), strict=True))


def node_environment(launch: Process) -> dict[str, str]:
    """The environment launch gave the node's process (its pid from launch's 'process started' line)."""
    pid = re.search(r"\[segmentation_node-1\]: process started with pid \[(\d+)\]", launch.output()).group(1)
    items = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(item.split("=", 1) for item in items if "=" in item)


def test_every_launch_argument_reaches_the_node_raw_input(ros2: Ros2, trained_checkpoint: Path, tmp_path: Path) -> None:
    """The user's params file sets width and height; height:=0 overrides one, the other keeps the file's value."""
    params = tmp_path / "robot.yaml"
    own_values = {"width": 40, "height": 30, "backend": "torch"}
    params.write_text(yaml.safe_dump({"fast_scnn": {"ros__parameters": own_values}}))
    profile = shutil.copy(INSTALLED_PROFILE, tmp_path / "my_fastdds.xml")
    launch = ros2.start(
        *LAUNCH,
        f"checkpoint:={trained_checkpoint}",
        "image_topic:=/front/image",
        "camera_info_topic:=/front/info",
        f"params_file:={params}",
        "device:=cpu",
        "height:=0",
        "input_compressed:=false",
        f"fastdds_profile:={profile}",
    )
    launch.wait_for("segmenting /front/image ")
    expected = {"checkpoint": str(trained_checkpoint), "device": "cpu", "width": 40, "height": 0}
    expected |= {"input_compressed": False, "backend": "torch"}
    assert node_parameters(ros2, list(expected)) == expected
    assert node_environment(launch)["FASTDDS_DEFAULT_PROFILES_FILE"] == str(profile)

    ros2.publish("/front/image", IMAGE, image_yaml(rgb(), "front"))
    ros2.publish("/front/info", "sensor_msgs/msg/CameraInfo", camera_info_yaml(W, H, "front"))
    labels = ros2.receive("/segmentation/labels", IMAGE, "front")
    assert (labels["height"], labels["width"], labels["encoding"]) == (H, W, "mono8")
    info = ros2.receive("/segmentation/camera_info", "sensor_msgs/msg/CameraInfo", "front")
    assert (info["height"], info["width"]) == (H, W)
    assert launch.interrupt() == 0, launch.output()


def test_every_launch_argument_reaches_the_node_compressed_input(ros2: Ros2, trained_checkpoint: Path) -> None:
    """The installed params file and Fast DDS profile (the defaults); the issue's width:=512 height:=256."""
    arguments = [f"checkpoint:={trained_checkpoint}", "image_topic:=/rear/image", "input_compressed:=true"]
    launch = ros2.start(*LAUNCH, *arguments, "width:=512", "height:=256")
    launch.wait_for("segmenting /rear/image/compressed ")
    expected = {"checkpoint": str(trained_checkpoint), "device": "auto", "width": 512, "height": 256}
    expected |= {"input_compressed": True}
    assert node_parameters(ros2, list(expected)) == expected
    assert node_environment(launch)["FASTDDS_DEFAULT_PROFILES_FILE"] == str(INSTALLED_PROFILE)
    ros2.publish("/rear/image/compressed", "sensor_msgs/msg/CompressedImage", compressed_yaml(rgb(1), "rear"))
    labels = ros2.receive("/segmentation/labels", IMAGE, "rear")
    assert (labels["height"], labels["width"], labels["encoding"]) == (H, W, "mono8")
    assert launch.interrupt() == 0, launch.output()


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (["checkpoint:=/nonexistent/model.pt"], "cannot start: checkpoint /nonexistent/model.pt does not exist"),
        (["width:=wide"], "launch argument width:=wide: expected an integer"),
        (["input_compressed:=maybe"], "launch argument input_compressed:=maybe: expected true or false"),
        (["fastdds_profile:=/nonexistent.xml"], "launch argument fastdds_profile:=/nonexistent.xml: no such file"),
    ],
)
def test_a_launch_that_cannot_start_its_node_exits_non_zero_with_the_reason(
    ros2: Ros2, trained_checkpoint: Path, arguments: list[str], reason: str
) -> None:
    launch = ros2.start(*LAUNCH, f"checkpoint:={trained_checkpoint}", *arguments)
    assert launch.popen.wait(timeout=120) != 0, launch.output()
    assert reason in launch.output() and "Traceback" not in launch.output(), launch.output()


def test_ctrl_c_stops_launch_and_node_cleanly_20_times_in_a_row(ros2: Ros2, trained_checkpoint: Path) -> None:
    """Ctrl-C to the launch's process group, as a terminal sends it, while a camera streams.

    Even cycles have a terminal on stdin (launch leaves SIGINT to the terminal), odd ones do not (as
    under CI or systemd: launch forwards a second SIGINT while the node is already stopping).
    """
    ros2.publish("/camera/image_raw", IMAGE, image_yaml(rgb(2), "camera"), rate=10.0)
    unclean = []
    for cycle in range(20):
        launch = ros2.start(*LAUNCH, f"checkpoint:={trained_checkpoint}", terminal=cycle % 2 == 0)
        launch.wait_for("segmenting")
        time.sleep(0.1 * (cycle % 4))  # interrupt at different points of the node's work
        status = launch.interrupt()
        output = launch.output()
        launch.stop()
        if status != 0 or "Traceback" in output or "process has finished cleanly" not in output:
            unclean.append(f"cycle {cycle}: ros2 launch exit {status}\n{output}")
    assert not unclean, f"{len(unclean)} of 20 stops were not clean:\n" + "\n".join(unclean)
