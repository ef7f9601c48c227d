"""The lifecycle (managed) node over real DDS across processes.

docs/ros.md's session runs as written: its node command in the background, then each of its
`ros2 lifecycle set|get` and `ros2 param set` commands (the real ros2 command line) with the output
the docs show, and between them this process checks the state the node is in: frames in, labels out
(or nothing), parameters, the engine's identity. One node process serves the whole session. The
README's `ros2 launch ... lifecycle:=true` runs as typed in the workspace test's colcon workspace.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from harness import TIMEOUT, Process, Ros2, RosHarness, random_rgb
from sensor_msgs.msg import Image
from support import REPO
from workspace import Workspace, section_commands

from fast_scnn_ros.conversions import numpy_to_image
from fast_scnn_ros.names import diagnostic_name

pytestmark = pytest.mark.ros_process

SECTION = "### Lifecycle (managed) node"
H, W = 40, 56


def docs_session() -> tuple[str, list[tuple[str, str]]]:
    """docs/ros.md's lifecycle section: its node command (the ```bash block) and its session (the ```console
    block) as (command, the output shown under it)."""
    docs = (REPO / "docs/ros.md").read_text()
    start = docs.index(SECTION)
    section = docs[start : docs.find("\n### ", start + len(SECTION))]
    [node_command] = re.findall(r"```bash\n(.*?)\n```", section, re.S)
    [console] = re.findall(r"```console\n(.*?)```", section, re.S)
    session: list[tuple[str, list[str]]] = []
    for line in console.splitlines():
        if line.startswith("$ "):
            session.append((line[2:], []))
        else:
            session[-1][1].append(line)
    return node_command, [(command, "\n".join(output)) for command, output in session]


def segment(ros: RosHarness, camera: str, masks: list[str]) -> None:
    """A frame into `camera` ("": the single camera) comes back as labels and each of `masks` with its header."""
    prefix = f"/{camera}" if camera else ""
    outputs = [ros.collect(Image, f"{prefix}/segmentation/{topic}") for topic in ("labels", *masks)]
    frame = numpy_to_image(random_rgb(H, W), "rgb8", ros.header(camera or "camera"))
    camera_pub = ros.publisher(Image, f"{prefix}/image")
    # Re-sent each second: the input is best effort, and an output is computed only once its subscriber is matched.
    for _ in range(int(TIMEOUT)):
        camera_pub.publish(frame)
        if ros.spin_until(lambda: all(c.with_stamp(frame.header.stamp) for c in outputs), timeout=1.0):
            break
    received = [c.with_stamp(frame.header.stamp) for c in outputs]
    for collector in outputs:
        ros.stop_collecting(collector)
    missing = [topic for topic, msg in zip(("labels", *masks), received, strict=True) if msg is None]
    assert not missing, f"{camera or 'camera'}: nothing on {missing}"
    for msg in received:
        assert (msg.header, msg.height, msg.width, msg.encoding) == (frame.header, H, W, "mono8")


def labels_flow(ros: RosHarness, cameras: list[str], masks: list[str]) -> str:
    """Each camera segments a frame (segment()); the engine_loaded_at of this activation's diagnostics."""
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics")  # volatile: only reports from now on
    for camera in cameras or [""]:
        segment(ros, camera, masks)

    def loaded_at() -> str | None:
        statuses = [s for array in diagnostics.messages for s in array.status if s.name == diagnostic_name()]
        return next((kv.value for s in statuses for kv in s.values if kv.key == "engine_loaded_at"), None)

    assert ros.spin_until(lambda: loaded_at() is not None), "no diagnostics from the active node"
    ros.stop_collecting(diagnostics)
    return loaded_at()


def nothing_flows(ros: RosHarness) -> None:
    """Inactive: no subscription on the input, no output publisher, and frames in give nothing out."""
    camera = ros.publisher(Image, "/image")
    assert ros.spin_until(lambda: camera.get_subscription_count() == 0), "the inactive node still subscribes"
    assert ros.spin_until(lambda: ros.node.count_publishers("/segmentation/labels") == 0)
    labels = ros.collect(Image, "/segmentation/labels")
    for _ in range(3):
        camera.publish(numpy_to_image(random_rgb(H, W), "rgb8", ros.header()))
        ros.spin_until(lambda: False, timeout=0.5)
    ros.stop_collecting(labels)
    assert labels.messages == []


def test_the_docs_lifecycle_session_runs_as_written(ros2: Ros2, ros: RosHarness, checkpoint: Path, tmp_path) -> None:
    node_command, session = docs_session()
    transitions = [command.split()[-1] for command, _ in session if command.startswith("ros2 lifecycle set")]
    assert transitions == [
        *["configure", "configure", "activate", "deactivate", "activate", "deactivate", "cleanup"],
        *["configure", "activate", "shutdown"],
    ], "the session no longer covers every transition this test checks"
    (tmp_path / "runs/synth").mkdir(parents=True)
    shutil.copy(checkpoint, tmp_path / "runs/synth/best.pt")  # the checkpoint the docs fix the typo to
    node = ros2.start_command(["bash", "-c", node_command], cwd=tmp_path)
    node.wait_for("unconfigured: ")
    ros2.wait_for_node("/fast_scnn")
    cameras: list[str] = []
    masks: list[str] = []
    loaded_at: list[str] = []
    for command, shown in session:
        assert ros2.shell(command, cwd=tmp_path).strip() == shown, command
        assert node.popen.poll() is None, node.output()
        if shown == "Transitioning failed":  # configure with the typo: the reason, one line
            [reason] = [line for line in node.output().splitlines() if "configure failed:" in line]
            assert "checkpoint runs/synth/bset.pt does not exist" in reason
        elif command.endswith(" activate"):
            loaded_at.append(labels_flow(ros, cameras, masks))
            if len(loaded_at) == 2:  # the same engine: not loaded again
                assert loaded_at[1] == loaded_at[0] and node.output().count("configured: loaded") == 1
                masks = check_runtime_change_while_active(ros, cameras)
        elif shown == "inactive [2]":
            nothing_flows(ros)
            check_parameters_while_inactive(ros)
            masks = ["masks/road"]  # set while inactive: published from the next activate on
        elif command.startswith("ros2 param set /fast_scnn cameras"):
            cameras = ["front", "rear"]
    assert len(loaded_at) == 3 and loaded_at[2] != loaded_at[0]  # cleanup freed it, configure loaded a new one
    assert node.output().count("configured: loaded") == 2
    assert shown == "finalized [4]"
    assert ros.spin_until(lambda: ros.node.count_subscribers("/front/image") == 0)
    assert node.interrupt() == 0, node.output()
    assert "Traceback" not in node.output()


def check_parameters_while_inactive(ros: RosHarness) -> None:
    """Configured, inactive: startup parameters refused with the reason, runtime ones checked and kept."""
    [refused] = ros.set_parameters(checkpoint="runs/synth/other.pt")
    assert not refused.successful and "only while the node is unconfigured" in refused.reason
    [refused] = ros.set_parameters(mode="bogus")
    assert not refused.successful and "cls, prob" in refused.reason
    [accepted] = ros.set_parameters(mask_classes=["road"])
    assert accepted.successful, accepted.reason


def check_runtime_change_while_active(ros: RosHarness, cameras: list[str]) -> list[str]:
    """Active: a runtime change applies from the next frame on, as in the plain node; a bad one is refused.
    The mask topics published from now on."""
    [refused] = ros.set_parameters(mask_classes=["no such class"])
    assert not refused.successful and "no such class" in refused.reason
    [accepted] = ros.set_parameters(mask_classes=["road", "sky"])
    assert accepted.successful, accepted.reason
    masks = ["masks/road", "masks/sky"]
    labels_flow(ros, cameras, masks)
    return masks


@pytest.mark.training
def test_readme_lifecycle_launch_comes_up_with_configure_and_activate(
    ros2: Ros2, ros2_workspace: Workspace, ros: RosHarness
) -> None:
    """As typed: the launch in one terminal, the two transitions in another, then a camera's frame is labelled."""
    [launch, *transitions] = section_commands()[3]
    assert launch.startswith("ros2 launch fast_scnn_ros segment.launch.py lifecycle:=true")
    assert [t.split()[-1] for t in transitions] == ["configure", "activate"]
    node: Process = ros2.start_command(
        ["bash", "-c", launch], env=ros2_workspace.env, cwd=ros2_workspace.cwd, terminal=True
    )
    node.wait_for("unconfigured: ")
    ros2.wait_for_node("/fast_scnn")
    for command in transitions:
        result = ros2_workspace.shell(command)
        assert result.stdout.strip() == "Transitioning successful", result.stdout + result.stderr
    labels = ros.collect(Image, "/segmentation/labels")
    frame = numpy_to_image(random_rgb(H, W), "rgb8", ros.header("ws_camera"))
    assert ros.send_until("/camera/image_raw", frame, labels).header == frame.header
    ros.stop_collecting(labels)
    assert node.interrupt() == 0, node.output()
    assert "Traceback" not in node.output() and "process has finished cleanly" in node.output()
