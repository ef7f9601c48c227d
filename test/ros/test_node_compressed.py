"""The node on CompressedImage input (image_transport's <image>/compressed): decode, segment, survive corrupt data."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from harness import TIMEOUT, NodeProcess, RosHarness, random_rgb
from sensor_msgs.msg import CompressedImage, Image

from fast_scnn_core.infer.segmenter import Segmenter
from fast_scnn_ros.conversions import image_to_numpy, rgb8_to_compressed

pytestmark = pytest.mark.ros_process

H, W = 64, 96
COMPRESSED = "/test/camera/image_raw/compressed"
PNG = bytes(rgb8_to_compressed(random_rgb(H, W, seed=7), "png").data)


@pytest.fixture(scope="module")
def node(start_node, checkpoint: Path, ros: RosHarness) -> NodeProcess:
    """Remapped like launch does: image -> /test/camera/image_raw, so the node reads .../compressed."""
    proc = start_node(
        "-p", f"checkpoint:={checkpoint}", "-p", "input_compressed:=true", "-p", "diagnostics_period:=0.2",
        "-r", "image:=/test/camera/image_raw", "-r", "__node:=fast_scnn_compressed",
    )  # fmt: skip
    ros.wait_ready(proc, COMPRESSED, CompressedImage, node_name="fast_scnn_compressed")
    return proc


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_input_is_segmented_with_its_header(node, ros: RosHarness, checkpoint: Path, fmt: str) -> None:
    rgb = random_rgb(H, W, seed=5)
    msg = rgb8_to_compressed(rgb, fmt, ros.header("compressed_frame"))
    labels_collector = ros.collect(Image, "/segmentation/labels")
    labels = ros.send_until(COMPRESSED, msg, labels_collector)
    ros.stop_collecting(labels_collector)
    assert labels.header.stamp == msg.header.stamp and labels.header.frame_id == "compressed_frame"
    assert (labels.height, labels.width, labels.encoding) == (H, W, "mono8")
    if fmt == "png":  # lossless: the node saw exactly our pixels
        expected = Segmenter.from_checkpoint(checkpoint)(rgb).labels
        assert np.mean(image_to_numpy(labels) == expected) > 0.99


def test_the_bytes_decide_the_codec_not_the_format_string(node, ros: RosHarness, checkpoint: Path) -> None:
    """A PNG labelled jpeg is labelled like the PNG it is (image_transport decodes by content too)."""
    rgb = random_rgb(H, W, seed=6)
    msg = rgb8_to_compressed(rgb, "png", ros.header())
    msg.format = "rgb8; jpeg compressed bgr8"
    labels_collector = ros.collect(Image, "/segmentation/labels")
    labels = ros.send_until(COMPRESSED, msg, labels_collector)
    ros.stop_collecting(labels_collector)
    expected = Segmenter.from_checkpoint(checkpoint)(rgb).labels
    assert np.mean(image_to_numpy(labels) == expected) > 0.99


def garbled_jpeg() -> bytes:
    """A camera-like JPEG with 200 bytes of garbage mid-stream (OpenCV decodes it into smeared blocks)."""
    jpeg = bytes(rgb8_to_compressed(cv2.GaussianBlur(random_rgb(H, W, seed=3), (9, 9), 3), "jpeg").data)
    middle = len(jpeg) // 2
    return jpeg[:middle] + bytes(np.random.default_rng(1).integers(0, 256, 200, dtype=np.uint8)) + jpeg[middle + 200 :]


def png_bomb(side: int = 5000) -> bytes:
    """A valid 25 Mpixel PNG of zeros in 81 kB: over max_pixels, refused from its header (issue 13 #3)."""
    return bytes(rgb8_to_compressed(np.zeros((side, side, 3), np.uint8), "png").data)


def test_corrupt_compressed_messages_are_counted_and_survived(node, ros: RosHarness) -> None:
    corpus = {
        "corrupt_jpeg": CompressedImage(format="jpeg", data=b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8),
        "empty": CompressedImage(format="jpeg", data=b""),
        "depth": CompressedImage(format="16UC1; compressedDepth png", data=b"\0" * 32),
        "garbage_mid_stream": CompressedImage(format="jpeg", data=garbled_jpeg()),
        "png_bomb": CompressedImage(format="png", data=png_bomb()),
        "truncated_png": CompressedImage(format="png", data=PNG[: len(PNG) // 2]),  # refused when decoded
        "bmp_bytes": CompressedImage(format="jpeg", data=bytes(cv2.imencode(".bmp", random_rgb(H, W))[1])),
        "tiff": CompressedImage(format="tiff", data=PNG),  # a format naming another codec
    }
    publisher = ros.publisher(CompressedImage, COMPRESSED)
    for kind, msg in corpus.items():
        before = int(ros.wait_diagnostics(lambda d: "bad_messages" in d)["bad_messages"])
        msg.header = ros.header()
        deadline = time.monotonic() + TIMEOUT
        while int(ros.diagnostics()["bad_messages"]) == before and time.monotonic() < deadline:
            publisher.publish(msg)  # best effort: resend until counted
            ros.spin_until(lambda b=before: int(ros.diagnostics()["bad_messages"]) > b, timeout=1.0)
        assert int(ros.diagnostics()["bad_messages"]) > before, kind
    labels = ros.collect(Image, "/segmentation/labels")
    assert ros.send_until(COMPRESSED, rgb8_to_compressed(random_rgb(H, W), "png", ros.header()), labels).width == W
    assert node.popen.poll() is None


def accounted(diagnostics: dict) -> bool:
    """Every frame received is accounted for exactly once: processed, dropped, bad or failed."""
    received, *outcomes = (int(diagnostics[k]) for k in ("frames_received", "frames_processed", "frames_dropped"))
    outcomes += [int(diagnostics["bad_messages"]), int(diagnostics["errors"])]
    return received == sum(outcomes)


def test_a_frame_refused_by_the_worker_is_received_once_and_costs_no_good_frame(node, ros: RosHarness) -> None:
    """Issue 13 #9: a corrupt JPEG (found bad only when decoded, in the worker) was counted twice in
    frames_received and replaced the good frame waiting before it, which was then counted as dropped.

    While the worker segments a large frame, a good frame and then a corrupt one arrive: the good one
    must still be labelled, and the books must balance."""
    busy = rgb8_to_compressed(np.zeros((1024, 2048, 3), np.uint8), "png")  # small to send, slow to segment
    publisher = ros.publisher(CompressedImage, COMPRESSED)
    labels = ros.collect(Image, "/segmentation/labels")
    for _ in range(5):  # best effort: an attempt counts once the node has seen the corrupt frame
        bad_before = int(ros.wait_diagnostics(lambda d: "bad_messages" in d)["bad_messages"])
        good = rgb8_to_compressed(random_rgb(H, W, seed=6), "png", ros.header("good"))
        corrupt = CompressedImage(header=ros.header("corrupt"), format="jpeg", data=garbled_jpeg())
        for msg in (busy, good, corrupt):
            publisher.publish(msg)
        if ros.spin_until(lambda b=bad_before: int(ros.diagnostics()["bad_messages"]) > b, timeout=10):
            break
    assert ros.spin_until(lambda: labels.with_stamp(good.header.stamp) is not None, timeout=10), (
        "the good frame before a corrupt one was never labelled"
    )
    ros.stop_collecting(labels)
    assert ros.wait_diagnostics(accounted, timeout=10), ros.diagnostics()


def test_sigterm_stops_the_node_cleanly(node: NodeProcess) -> None:
    """Runs last in this module: it ends the module's node."""
    assert node.signal(signal.SIGTERM) == 0, node.output()
    assert "Traceback" not in node.output()
