"""One node for a camera ring, as a real process over Fast DDS: every camera's outputs under its own name,
each equal to segmenting that frame alone, batched, and no camera held back by a slow or silent one."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from harness import NodeProcess, RosHarness, random_rgb
from sensor_msgs.msg import CameraInfo, Image

from fast_scnn_core.infer.segmenter import InferenceConfig, Segmenter
from fast_scnn_ros.conversions import image_to_numpy, numpy_to_image

pytestmark = pytest.mark.ros_process

NODE = "fast_scnn_ring"
CAMERAS = ("front", "rear", "left", "right")
# Each camera its own input size: a ring mixes cameras (front and left share one: they batch together).
SIZES = {"front": (64, 96), "rear": (48, 64), "left": (64, 96), "right": (80, 120)}
# The front camera is remapped as launch does; the others read their default <name>/image.
IMAGE_TOPICS = {"front": "/ring/front/image_raw", "rear": "/rear/image", "left": "/left/image", "right": "/right/image"}


@pytest.fixture(scope="module")
def ring(start_node, checkpoint: Path, ros: RosHarness) -> Iterator[NodeProcess]:
    """The ring node of this module, stopped at its end: its latched class_info and its diagnostics would
    otherwise reach later modules' subscribers (test_node's class_info, test_node_memory's tracemalloc)."""
    proc = start_node(
        "-p", f"checkpoint:={checkpoint}", "-p", f"cameras:=[{','.join(CAMERAS)}]", "-p", "mode:=prob",
        "-p", "mask_classes:=[road]", "-p", "diagnostics_period:=0.2", "-p", "max_batch:=4",  # batches on CPU too
        "-r", "front/image:=/ring/front/image_raw", "-r", "front/camera_info:=/ring/front/camera_info",
        "-r", f"__node:={NODE}",
    )  # fmt: skip
    ros.wait_ready(proc, IMAGE_TOPICS["front"], Image, node_name=NODE)
    yield proc
    proc.stop()


class RingDiagnostics:
    """Every /diagnostics status of the ring node, by name."""

    def __init__(self, ros: RosHarness) -> None:
        self.statuses: dict[str, list[dict[str, str]]] = {}
        self.collector = ros.collect(DiagnosticArray, "/diagnostics")

    def update(self) -> None:
        for array in self.collector.messages:
            for status in array.status:
                if status.name.startswith(f"{NODE}: "):
                    self.statuses.setdefault(status.name, []).append({kv.key: kv.value for kv in status.values})
        self.collector.messages.clear()


def test_every_camera_gets_its_outputs_under_its_name_equal_to_segmenting_it_alone(
    ring, ros: RosHarness, checkpoint: Path
) -> None:
    frames = {name: random_rgb(*SIZES[name], seed=10 + i) for i, name in enumerate(CAMERAS)}
    headers = {name: ros.header(f"{name}_optical") for name in CAMERAS}
    messages = {name: numpy_to_image(frames[name], "rgb8", headers[name]) for name in CAMERAS}
    outputs = ("labels", "masks/road", "color", "overlay", "confidence", "camera_info")
    collectors = {
        (name, output): ros.collect(CameraInfo if output == "camera_info" else Image, f"/{name}/segmentation/{output}")
        for name in CAMERAS
        for output in outputs
    }
    info = ros.publisher(CameraInfo, "/ring/front/camera_info")
    front_info = CameraInfo(width=96, height=64)
    front_info.k = [96.0, 0.0, 48.0, 0.0, 96.0, 32.0, 0.0, 0.0, 1.0]

    def received() -> bool:
        return all(c.with_stamp(headers[name].stamp) is not None for (name, output), c in collectors.items()
                   if output != "camera_info" or name == "front")  # fmt: skip

    deadline = time.monotonic() + 60
    while not received() and time.monotonic() < deadline:  # best effort: send all four again each second
        info.publish(front_info)
        for name in CAMERAS:
            ros.publisher(Image, IMAGE_TOPICS[name]).publish(messages[name])
        ros.spin_until(received, timeout=1.0)
    assert received(), {key: len(c.messages) for key, c in collectors.items()}

    alone = Segmenter.from_checkpoint(checkpoint, InferenceConfig(checkpoint=str(checkpoint), mode="prob"))
    for name in CAMERAS:
        labels_msg = collectors[(name, "labels")].with_stamp(headers[name].stamp)
        assert labels_msg.header.frame_id == f"{name}_optical"
        expected = alone(frames[name])  # this frame alone, batch of one
        np.testing.assert_array_equal(image_to_numpy(labels_msg), expected.labels, err_msg=name)
        confidence = image_to_numpy(collectors[(name, "confidence")].with_stamp(headers[name].stamp))
        np.testing.assert_allclose(confidence, expected.confidence, rtol=0, atol=1e-6, err_msg=name)
        mask = image_to_numpy(collectors[(name, "masks/road")].with_stamp(headers[name].stamp))
        np.testing.assert_array_equal(mask == 255, expected.labels == 0, err_msg=name)
    scaled = collectors[("front", "camera_info")].with_stamp(headers["front"].stamp)
    assert (scaled.width, scaled.height, scaled.header.frame_id) == (96, 64, "front_optical")
    for collector in collectors.values():
        ros.stop_collecting(collector)

    class_info = json.loads(ros.class_info)  # one class_info for the ring, naming every camera's mask topic
    assert class_info["mask_topics"] == [f"/{name}/segmentation/masks/road" for name in CAMERAS]
    topics = {name for name, _ in ros.node.get_topic_names_and_types()}
    assert {"/segmentation/class_info", *(f"/{n}/segmentation/labels" for n in CAMERAS)} <= topics
    assert not ros.node.get_publishers_info_by_topic("/segmentation/labels")  # other tests may subscribe to it


def test_no_camera_waits_for_a_slow_or_silent_one_and_frames_that_arrive_together_run_as_one_batch(
    ring, ros: RosHarness
) -> None:
    """front and rear stream faster than the node can segment, left sends a frame every 0.4 s, right is
    silent: front and rear keep being labelled, every left frame is labelled (none dropped while waiting),
    and frames taken in one round ran as one batch."""
    diagnostics = RingDiagnostics(ros)
    labels = {name: ros.collect(Image, f"/{name}/segmentation/labels") for name in CAMERAS}
    publishers = {name: ros.publisher(Image, IMAGE_TOPICS[name]) for name in CAMERAS}
    large = {name: random_rgb(240, 320, seed=i) for i, name in enumerate(("front", "rear"))}
    left_sent = []
    start = next_left = time.monotonic()
    while time.monotonic() - start < 4.0:
        for name, rgb in large.items():
            publishers[name].publish(numpy_to_image(rgb, "rgb8", ros.header(name)))
        if time.monotonic() >= next_left:
            msg = numpy_to_image(random_rgb(*SIZES["left"]), "rgb8", ros.header("left"))
            publishers["left"].publish(msg)
            left_sent.append(msg.header.stamp)
            next_left += 0.4
        ros.spin_until(lambda: False, timeout=0.01)
    ros.spin_until(lambda: all(labels["left"].with_stamp(s) for s in left_sent), timeout=10)
    ros.spin_until(lambda: False, timeout=0.5)  # a last diagnostics report
    diagnostics.update()
    for collector in [*labels.values(), diagnostics.collector]:
        ros.stop_collecting(collector)

    assert len(labels["front"].messages) >= 3 and len(labels["rear"].messages) >= 3
    assert not labels["right"].messages
    assert all(labels["left"].with_stamp(s) is not None for s in left_sent), "a left frame was never labelled"
    report = {name.split()[-1]: values[-1] for name, values in diagnostics.statuses.items()}
    assert int(report["front"]["frames_dropped"]) > 0  # front streams faster than the node: newest frame only
    assert float(report["right"]["input_fps"]) == 0 and report["right"]["wait_ms"] == "nan"  # silent
    batch_sizes = [float(v["batch_size"]) for v in diagnostics.statuses[f"{NODE}: segmentation front"]]
    assert max(b for b in batch_sizes if b == b) >= 2  # front ran together with rear (same size) in a batch
    node_status = report["segmentation"]
    assert int(node_status["cameras"]) == 4
