"""The README's ROS 2 workspace section, run as written in a fresh colcon workspace (see workspace.py for
what the test adapts and why): build, synthetic data, `ros2 run fast_scnn_core train`, then `ros2 launch`
with the result, a camera and a planner; and the section's `ros2 run` example."""

from __future__ import annotations

import re
import shlex
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from harness import Ros2, image_yaml
from support import REPO
from workspace import Workspace, section_commands

pytestmark = [pytest.mark.ros_process, pytest.mark.training]

H, W = 48, 64


def test_the_workspace_runs_its_own_install(ros2_workspace: Workspace) -> None:
    """After `source install/setup.bash`: fast-scnn on PATH, both packages (and their manifests) from install/."""
    install = ros2_workspace.cwd / "install/fast_scnn_ros"
    checks = ["command -v fast-scnn", *(f"ros2 pkg prefix {p}" for p in ("fast_scnn_ros", "fast_scnn_core"))]
    result = ros2_workspace.shell("; ".join([*checks, "ros2 pkg xml fast_scnn_core"]))
    assert result.returncode == 0, result.stdout + result.stderr
    fast_scnn, ros_prefix, core_prefix, *xml = result.stdout.splitlines()
    assert (fast_scnn, ros_prefix, core_prefix) == (str(install / "bin/fast-scnn"), str(install), str(install))
    assert "<name>fast_scnn_core</name>" in "\n".join(xml)


def run_and_receive(ros2: Ros2, workspace: Workspace, command: str, topic: str, frame_id: str) -> None:
    """Start `command` in the workspace's shell, stream camera frames to it, receive `topic`, then Ctrl-C it."""
    node = ros2.start_command(["bash", "-c", command], env=workspace.env, cwd=workspace.cwd, terminal=True)
    node.wait_for("segmenting")
    image_topic = re.search(r"(?:image_topic|image):=(\S+)", command).group(1)
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    camera = ros2.publish(image_topic, "sensor_msgs/msg/Image", image_yaml(rgb, frame_id))
    msg = ros2.receive(topic, "sensor_msgs/msg/Image", frame_id)
    camera.stop()
    assert (msg["height"], msg["width"], msg["encoding"]) == (H, W, "mono8")
    assert node.interrupt() == 0, node.output()
    assert "Traceback" not in node.output()


def test_readme_launch_command_segments_a_camera_for_a_planner(ros2: Ros2, ros2_workspace: Workspace) -> None:
    assert ros2_workspace.last_command.startswith("ros2 launch fast_scnn_ros segment.launch.py")
    run_and_receive(ros2, ros2_workspace, ros2_workspace.last_command, "/segmentation/labels", "ws_camera")


def test_readme_ros2_run_example_publishes_the_masks_it_asks_for(ros2: Ros2, ros2_workspace: Workspace) -> None:
    [command] = section_commands()[1]
    assert command.startswith("ros2 run fast_scnn_ros segmentation_node")
    run_and_receive(ros2, ros2_workspace, command, "/segmentation/masks/road", "run_camera")


def test_without_a_checkpoint_launch_fails_naming_the_installed_quick_start_config(ros2_workspace: Workspace) -> None:
    result = ros2_workspace.shell("ros2 launch fast_scnn_ros segment.launch.py")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    config = ros2_workspace.cwd / "install/fast_scnn_ros/share/fast_scnn_ros/config/train_synthetic.yaml"
    assert f"fast-scnn train --config {config}" in output and config.is_file(), output
    assert "parameter 'checkpoint' is not set" in output and "Traceback" not in output


def test_training_without_data_says_how_to_make_it(ros2_workspace: Workspace) -> None:
    command = next(c for c in section_commands()[0] if c.startswith("ros2 run fast_scnn_core train"))
    result = ros2_workspace.shell(f"{command} data.root=data/missing {shlex.quote('run_dir=runs/missing')}")
    assert result.returncode == 2
    assert "`fast-scnn synth --out data/missing`" in result.stderr, result.stderr


def test_docs_camera_driver_export_names_the_installed_profile(ros2_workspace: Workspace) -> None:
    """docs/ros.md's line for a camera driver's shell, run in the workspace: it names the installed profile."""
    docs = (REPO / "docs/ros.md").read_text()
    [export] = re.findall(r"^\s*(export FASTDDS_DEFAULT_PROFILES_FILE=.*)$", docs, re.M)
    result = ros2_workspace.shell(
        f'{export} && test -f "$FASTDDS_DEFAULT_PROFILES_FILE" && echo "$FASTDDS_DEFAULT_PROFILES_FILE"'
    )
    profile = ros2_workspace.cwd / "install/fast_scnn_ros/share/fast_scnn_ros/config/fastdds_large_images.xml"
    assert result.stdout.strip() == str(profile), result.stdout + result.stderr


def test_readme_camera_ring_launch_segments_every_camera(ros2: Ros2, ros2_workspace: Workspace) -> None:
    """The README's four-camera launch, as written: each camera's frames, from its own driver topic, come back
    labelled on <camera>/segmentation/labels with that camera's header."""
    [command] = section_commands()[2]
    cameras = re.search(r"cameras:='\[(.*?)\]'", command).group(1).split(", ")
    assert cameras == ["front", "rear", "left", "right"]
    node = ros2.start_command(["bash", "-c", command], env=ros2_workspace.env, cwd=ros2_workspace.cwd, terminal=True)
    node.wait_for("segmenting")
    rgb = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    drivers = [ros2.publish(f"/{name}/image_raw", "sensor_msgs/msg/Image", image_yaml(rgb, name)) for name in cameras]

    def receive(name: str) -> dict:
        return ros2.receive(f"/{name}/segmentation/labels", "sensor_msgs/msg/Image", name)

    with ThreadPoolExecutor(len(cameras)) as pool:
        labels = list(pool.map(receive, cameras))
    for driver in drivers:
        driver.stop()
    assert [(msg["header"]["frame_id"], msg["height"], msg["width"]) for msg in labels] == [
        (name, H, W) for name in cameras
    ]
    assert node.interrupt() == 0, node.output()
    assert "Traceback" not in node.output()
