"""Issue 13 #4, node part: after a large or refused frame the node keeps nothing of it.

The node runs in the test's own process here (a real rclpy node on the harness's executor), so
tracemalloc sees every Python-side buffer it holds: the message's data, the RGB view, labels.
(RSS before and after such frames, for the installed node process: docs/ros.md, bench/node_memory.py.)
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from harness import RosHarness, random_rgb
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from fast_scnn_ros.conversions import numpy_to_image
from fast_scnn_ros.node import SegmentationNode

NAMESPACE = "memory_test"


def test_nothing_of_a_large_or_refused_frame_is_kept_once_it_is_handled(checkpoint: Path, ros: RosHarness) -> None:
    node = SegmentationNode(
        namespace=NAMESPACE,
        cli_args=["--ros-args", "-r", "__node:=memory_test"],  # not /fast_scnn: other tests' nodes share the domain
        parameter_overrides=[
            Parameter("checkpoint", value=str(checkpoint)),
            Parameter("backend", value="torch"),
            Parameter("diagnostics_period", value=0.2),
        ],
    )
    ros.executor.add_node(node)
    labelled: list[int] = []
    subscription = ros.node.create_subscription(
        Image, f"/{NAMESPACE}/segmentation/labels", lambda m: labelled.append(m.header.stamp.sec), 10
    )
    publisher = ros.node.create_publisher(Image, f"/{NAMESPACE}/image", 10)

    def segment(stamp: int) -> None:
        assert ros.spin_until(lambda: stamp in labelled, timeout=60), f"frame {stamp} not labelled"

    def small(stamp: int) -> Image:
        msg = numpy_to_image(random_rgb(32, 48), "rgb8")
        msg.header.stamp.sec = stamp
        return msg

    def held() -> int:
        ros.spin_until(lambda: False, timeout=0.5)  # the worker goes back to waiting
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    bad_messages: list[int] = []
    diagnostics = ros.node.create_subscription(
        DiagnosticArray,
        "/diagnostics",
        lambda a: bad_messages.extend(
            int(v.value) for s in a.status if s.name == "memory_test: segmentation" for v in s.values
            if v.key == "bad_messages"
        ),
        10,
    )  # fmt: skip
    try:
        assert ros.spin_until(lambda: publisher.get_subscription_count() > 0)
        tracemalloc.start()
        publisher.publish(small(1))
        segment(1)
        before = held()

        large = numpy_to_image(np.zeros((64, 16384, 3), np.uint8), "rgb8")  # 3 MB, within the limits
        large.header.stamp.sec = 2
        publisher.publish(large)
        del large  # only the node could keep it now
        segment(2)
        kept = held() - before
        assert kept < 500_000, f"the node keeps {kept} bytes after a 3 MB frame"

        refused = numpy_to_image(np.zeros((64, 16384, 3), np.uint8), "rgb8")
        refused.step += 1  # a bad message of 3 MB, refused by the callback
        publisher.publish(refused)
        del refused
        assert ros.spin_until(lambda: bool(bad_messages) and bad_messages[-1] == 1, timeout=30)
        kept = held() - before
        assert kept < 500_000, f"the node keeps {kept} bytes after a refused 3 MB message"
    finally:
        tracemalloc.stop()
        ros.node.destroy_subscription(subscription)
        ros.node.destroy_subscription(diagnostics)
        ros.node.destroy_publisher(publisher)
        ros.executor.remove_node(node)
        node.close()
