"""Checkpoints imported from the published files' stand-ins (mmsegmentation's and Tramac's layout, random
weights: ../shared/weights-fixtures), run by the installed node over real DDS: the node publishes the
Segmenter's labels for them (test/core/test_weights.py pins the Segmenter to the upstream code's own outputs),
with the camera image's header."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from harness import RosHarness, random_rgb
from sensor_msgs.msg import Image

from fast_scnn_core import cli
from fast_scnn_core.infer.segmenter import Segmenter
from fast_scnn_core.labels import CITYSCAPES
from fast_scnn_ros.conversions import image_to_numpy, numpy_to_image

pytestmark = pytest.mark.ros_process

H, W = 64, 128  # Tramac's own code needs sides divisible by 32


@pytest.mark.parametrize("source", ["mmseg", "tramac"])
def test_the_node_publishes_the_segmenters_labels_of_an_imported_checkpoint(
    source: str, weights_fixtures: Path, tmp_path: Path, start_node, ros: RosHarness
) -> None:
    checkpoint = tmp_path / f"{source}.pt"
    argv = ["import-weights", "--from", source, str(weights_fixtures / f"{source}_random.pth"), "--out"]
    assert cli.main([*argv, str(checkpoint)]) == 0
    topic = f"/imported_{source}/image"
    node = start_node("-p", f"checkpoint:={checkpoint}", "-r", f"image:={topic}")
    try:
        assert json.loads(ros.wait_ready(node, topic, Image))["names"] == list(CITYSCAPES.names)
        rgb = random_rgb(H, W, seed=5)
        msg = numpy_to_image(rgb, "rgb8", ros.header(f"{source}_camera"))
        collector = ros.collect(Image, "/segmentation/labels")
        labels = ros.send_until(topic, msg, collector)
        ros.stop_collecting(collector)
    finally:
        node.stop()
    assert labels.header == msg.header
    expected = Segmenter.from_checkpoint(checkpoint)(rgb).labels
    assert len(np.unique(expected)) > 1  # a frame that tells models apart
    np.testing.assert_array_equal(image_to_numpy(labels), expected)
