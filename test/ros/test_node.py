"""The segmentation node as a real process over Fast DDS: outputs, runtime parameters, bad input, overload, exit."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticStatus
from harness import TIMEOUT, NodeProcess, RosHarness, random_rgb
from rcl_interfaces.srv import DescribeParameters
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String
from support import CLASSES

from fast_scnn_core.infer.segmenter import Segmenter
from fast_scnn_core.infer.visualize import overlay
from fast_scnn_ros.conversions import image_to_numpy, numpy_to_image

pytestmark = pytest.mark.ros_process

H, W = 64, 96
IMAGE = "/test/image"
LABELS = "/segmentation/labels"


@pytest.fixture(scope="module")
def node(start_node, checkpoint: Path, ros: RosHarness) -> NodeProcess:
    """One node for the module, started exactly as the launch file starts it (params file, overrides, remaps)."""
    proc = start_node(
        "-p",
        f"checkpoint:={checkpoint}",
        "-p",
        "mask_classes:=[traffic light]",
        "-p",
        "mode:=prob",
        "-p",
        "diagnostics_period:=0.2",
        "-r",
        f"image:={IMAGE}",
        "-r",
        "camera_info:=/test/camera_info",
    )
    ros.wait_ready(proc, IMAGE, Image)
    return proc


def segment(ros: RosHarness, msg: Image, topic: str = LABELS) -> Image:
    collector = ros.collect(Image, topic)
    try:
        return ros.send_until(IMAGE, msg, collector)
    finally:
        ros.stop_collecting(collector)


def test_labels_carry_the_input_header_size_and_the_engines_ids(node, ros: RosHarness, checkpoint: Path) -> None:
    rgb = random_rgb(H, W)
    msg = numpy_to_image(rgb, "rgb8", ros.header("camera_optical_frame"))
    labels = segment(ros, msg)
    assert labels.header.stamp == msg.header.stamp and labels.header.frame_id == "camera_optical_frame"
    assert (labels.height, labels.width, labels.encoding, labels.step) == (H, W, "mono8", W)
    ids = image_to_numpy(labels)
    assert ids.max() < CLASSES.num_classes
    expected = Segmenter.from_checkpoint(checkpoint)(rgb).labels
    assert np.mean(ids == expected) > 0.99  # same engine, same image; float noise may flip a tie


def test_every_colour_encoding_reaches_the_engine_as_the_same_rgb(node, ros: RosHarness) -> None:
    rgb = random_rgb(H, W, seed=1)
    reference = image_to_numpy(segment(ros, numpy_to_image(rgb, "rgb8", ros.header())))
    bgra = np.concatenate([rgb[:, :, ::-1], np.full((H, W, 1), 255, np.uint8)], axis=2)
    padded = numpy_to_image(bgra, "bgra8", ros.header())
    padded.step += 8  # row padding must be skipped
    padded.data = b"".join(bytes(padded.data[r * W * 4 : (r + 1) * W * 4]) + b"\0" * 8 for r in range(H))
    for msg in (numpy_to_image(np.ascontiguousarray(rgb[:, :, ::-1]), "bgr8", ros.header()), padded):
        assert np.mean(image_to_numpy(segment(ros, msg)) == reference) > 0.99, msg.encoding


def test_mask_topics_exist_only_for_the_selected_classes(node, ros: RosHarness) -> None:
    def mask_topics() -> set[str]:
        return {name for name, _ in ros.node.get_topic_names_and_types() if name.startswith("/segmentation/masks/")}

    ros.spin_until(lambda: mask_topics() == {"/segmentation/masks/traffic_light"}, timeout=10)
    assert mask_topics() == {"/segmentation/masks/traffic_light"}


def test_masks_agree_with_labels_after_a_runtime_change_of_mask_classes(node, ros: RosHarness) -> None:
    names = ["road", "traffic_light", "sky"]  # class names or their topic names
    assert all(r.successful for r in ros.set_parameters(mask_classes=names))
    try:
        collectors = {name: ros.collect(Image, f"/segmentation/masks/{name}") for name in names}
        labels = ros.collect(Image, LABELS)
        msg = numpy_to_image(random_rgb(H, W, seed=2), "rgb8", ros.header())
        masks = {name: image_to_numpy(ros.send_until(IMAGE, msg, c)) for name, c in collectors.items()}
        ids = image_to_numpy(ros.send_until(IMAGE, msg, labels))
        for class_id, name in enumerate(names):
            assert set(np.unique(masks[name])) <= {0, 255}
            np.testing.assert_array_equal(masks[name] == 255, ids == class_id, err_msg=name)
    finally:
        assert all(r.successful for r in ros.set_parameters(mask_classes=["traffic light"]))


def test_resolution_change_at_runtime_resizes_labels_and_scales_camera_info(node, ros: RosHarness) -> None:
    info = CameraInfo(width=W, height=H, distortion_model="plumb_bob")
    info.k = [80.0, 0.0, 48.0, 0.0, 80.0, 32.0, 0.0, 0.0, 1.0]
    info.p = [80.0, 0.0, 48.0, 0.0, 0.0, 80.0, 32.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    camera_info = ros.publisher(CameraInfo, "/test/camera_info")
    results = ros.set_parameters(width=48, height=32, output_resolution="inference")
    assert all(r.successful for r in results), results
    try:
        scaled = ros.collect(CameraInfo, "/segmentation/camera_info")
        msg = numpy_to_image(random_rgb(H, W), "rgb8", ros.header())
        for _ in range(3):  # the node keeps the newest camera_info; give discovery a moment
            camera_info.publish(info)
            ros.spin_until(lambda: False, timeout=0.1)
        out = ros.send_until(IMAGE, msg, scaled)
        labels = segment(ros, msg)
        assert (labels.height, labels.width) == (32, 48)
        assert (out.width, out.height) == (48, 32) and out.header.frame_id == msg.header.frame_id
        np.testing.assert_allclose(out.k, [40, 0, 24, 0, 40, 16, 0, 0, 1])
        np.testing.assert_allclose(out.p, [40, 0, 24, 0, 0, 40, 16, 0, 0, 0, 1, 0])
    finally:
        assert all(r.successful for r in ros.set_parameters(width=0, height=0, output_resolution="input"))
    assert segment(ros, numpy_to_image(random_rgb(H, W), "rgb8", ros.header())).width == W


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("mask_classes", ["bicycle"], "road"),  # the reason lists the valid classes
        ("mode", "bogus", "cls"),
        ("device", "cuda:7", "cuda:7"),  # the engine refuses; the old one keeps running
        ("overlay_alpha", 1.5, "overlay_alpha"),  # descriptor range
        ("width", -1, "width"),
        # Bounds in the descriptors (rclpy's check; `ros2 param describe` shows them), from InferenceConfig's
        # metadata: threads=100000 killed the node with SIGSEGV (issue 13 #5).
        ("threads", 100_000, "Max: 1024"),
        # Inside the descriptor's range, over the machine's bound (4x the CPUs; issue 20: threads=1024 hung the node).
        ("threads", 1024, "CPU(s) available to this process"),
        ("width", 16_385, "Max: 16384"),
        ("width", 31, "32..16384"),  # inside the descriptor's 0..16384, refused by InferenceConfig
        ("checkpoint", "/other.pt", "checkpoint"),  # read-only
        ("publish_color", "yes", "type"),  # wrong type
    ],
)
def test_invalid_parameter_values_are_rejected_with_a_reason(node, ros: RosHarness, name, value, reason) -> None:
    [result] = ros.set_parameters(**{name: value})
    assert not result.successful
    assert reason in result.reason


def test_color_overlay_and_confidence_match_the_labels(node, ros: RosHarness) -> None:
    rgb = random_rgb(H, W, seed=3)
    msg = numpy_to_image(rgb, "rgb8", ros.header())
    outputs = {}
    for topic in ("labels", "color", "overlay", "confidence"):
        outputs[topic] = image_to_numpy(segment(ros, msg, f"/segmentation/{topic}"))
    palette = CLASSES.palette()
    np.testing.assert_array_equal(outputs["color"], palette[outputs["labels"]])
    np.testing.assert_array_equal(outputs["overlay"], overlay(rgb, outputs["labels"], palette, 0.5))
    confidence = outputs["confidence"]
    assert confidence.dtype == np.float32 and confidence.shape == (H, W)
    assert confidence.min() >= 1 / CLASSES.num_classes - 1e-5 and confidence.max() <= 1 + 1e-5

    assert all(r.successful for r in ros.set_parameters(overlay_alpha=1.0))
    try:
        again = numpy_to_image(rgb, "rgb8", ros.header())
        np.testing.assert_array_equal(image_to_numpy(segment(ros, again, "/segmentation/overlay")), outputs["color"])
    finally:
        ros.set_parameters(overlay_alpha=0.5)


def test_confidence_is_published_in_prob_mode_only(node, ros: RosHarness) -> None:
    def publishes_confidence() -> bool:
        return ros.node.count_publishers("/segmentation/confidence") > 0

    assert ros.spin_until(publishes_confidence, timeout=10)  # this module's node runs in prob mode
    assert all(r.successful for r in ros.set_parameters(mode="cls"))
    try:
        assert ros.spin_until(lambda: not publishes_confidence(), timeout=10)
    finally:
        assert all(r.successful for r in ros.set_parameters(mode="prob"))
    assert ros.spin_until(publishes_confidence, timeout=10)


def test_class_info_lists_every_class_and_the_mask_topics_published(node, ros: RosHarness) -> None:
    info = json.loads(ros.class_info)
    assert (info["ids"], info["names"], info["ignore_id"]) == ([0, 1, 2], list(CLASSES.names), 255)
    assert info["topic_names"] == ["road", "traffic_light", "sky"]  # masks/<topic_name>, also valid in mask_classes
    assert info["mask_topics"] == ["/segmentation/masks/traffic_light"]  # what mask_classes publishes now

    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    assert all(r.successful for r in ros.set_parameters(mask_classes=["sky", "road"]))
    try:
        late_joiner = ros.collect(String, "/segmentation/class_info", latched)
        published = ["/segmentation/masks/sky", "/segmentation/masks/road"]
        assert ros.spin_until(lambda: any(json.loads(m.data)["mask_topics"] == published for m in late_joiner.messages))
        ros.stop_collecting(late_joiner)
    finally:
        assert all(r.successful for r in ros.set_parameters(mask_classes=["traffic light"]))


def test_disabled_output_topic_disappears(node, ros: RosHarness) -> None:
    def has_color() -> bool:
        return any(name == "/segmentation/color" for name, _ in ros.node.get_topic_names_and_types())

    assert ros.spin_until(has_color, timeout=10)
    assert all(r.successful for r in ros.set_parameters(publish_color=False))
    try:
        assert ros.spin_until(lambda: not has_color(), timeout=10)
    finally:
        ros.set_parameters(publish_color=True)


def bad_images() -> dict[str, Image]:
    good = numpy_to_image(random_rgb(H, W), "rgb8")
    corpus = {}
    kinds = ("wrong_step", "truncated", "unknown_encoding", "zero_size", "absurd_size", "thin", "odd_width_yuv")
    for kind in kinds:
        msg = numpy_to_image(random_rgb(H, W), "rgb8")
        corpus[kind] = msg
    corpus["wrong_step"].step = W * 3 - 1
    corpus["truncated"].data = bytes(good.data[:-100])
    corpus["unknown_encoding"].encoding = "rgb9"
    corpus["zero_size"].width = corpus["zero_size"].height = corpus["zero_size"].step = 0
    corpus["zero_size"].data = b""
    corpus["absurd_size"].width = corpus["absurd_size"].height = 100_000
    corpus["absurd_size"].step = 300_000
    thin = corpus["thin"]  # 20000 pixels, far below max_pixels, but one side over the limit (issue 13 #4)
    thin.width, thin.height, thin.step, thin.data = 20_000, 1, 60_000, bytes(60_000)
    corpus["not_colour"] = numpy_to_image(np.ones((H, W), np.float32), "32FC1")  # a valid Image, but no picture
    odd = corpus["odd_width_yuv"]
    odd.encoding, odd.width, odd.step = "yuv422", W - 1, (W - 1) * 2
    odd.data = bytes(odd.step * H)
    return corpus


def test_every_bad_message_is_counted_and_survived(node, ros: RosHarness) -> None:
    for kind, msg in bad_images().items():
        before = int(ros.wait_diagnostics(lambda d: "bad_messages" in d)["bad_messages"])
        msg.header = ros.header()
        publisher = ros.publisher(Image, IMAGE)
        deadline = time.monotonic() + TIMEOUT
        while int(ros.diagnostics()["bad_messages"]) == before and time.monotonic() < deadline:
            publisher.publish(msg)  # best effort: resend until counted
            ros.spin_until(lambda b=before: int(ros.diagnostics()["bad_messages"]) > b, timeout=1.0)
        assert int(ros.diagnostics()["bad_messages"]) > before, kind
        assert node.popen.poll() is None, node.output()
    assert ros.diagnostics_seen(level=DiagnosticStatus.WARN, message="bad message")
    assert segment(ros, numpy_to_image(random_rgb(H, W), "rgb8", ros.header())).width == W
    assert "skipping bad image" in node.output()


def describe(ros: RosHarness, names: list[str]) -> dict:
    """The node's ParameterDescriptors through its real rcl_interfaces/DescribeParameters service."""
    client = ros.node.create_client(DescribeParameters, "/fast_scnn/describe_parameters")
    try:
        assert ros.spin_until(client.service_is_ready), "describe_parameters not available"
        future = client.call_async(DescribeParameters.Request(names=names))
        assert ros.spin_until(future.done)
        return dict(zip(names, future.result().descriptors, strict=True))
    finally:
        ros.node.destroy_client(client)


def test_every_numeric_parameter_describes_its_range_from_one_place(node, ros: RosHarness) -> None:
    """Issue 13 #5: width/height 20000 or 2^31-1 were accepted by the descriptor (0..2^31-1); threads=100000
    killed the node. The ranges now come from InferenceConfig's fields, and `ros2 param describe` shows them."""
    descriptors = describe(ros, ["width", "height", "threads", "max_pixels", "qos_depth", "overlay_alpha"])
    ranges = {name: (d.integer_range or d.floating_point_range)[0] for name, d in descriptors.items()}
    bounds = {name: (r.from_value, r.to_value) for name, r in ranges.items()}
    assert bounds == {
        "width": (0, 16384),
        "height": (0, 16384),
        "threads": (0, 1024),
        "max_pixels": (1024, 16384 * 16384),
        "qos_depth": (1, 100),
        "overlay_alpha": (0.0, 1.0),
    }
    assert "32..16384, or 0 = the input image's width" in descriptors["width"].description
    for name, value in (("width", 20000), ("height", 2**31 - 1), ("threads", 100_000), ("width", 16)):
        [result] = ros.set_parameters(**{name: value})
        assert not result.successful and name in result.reason and "range" in result.reason, (name, result)
    for threads in (1, 0):  # 0 after 1: the library's default again (the engine resets it)
        assert all(r.successful for r in ros.set_parameters(threads=threads))
    assert segment(ros, numpy_to_image(random_rgb(H, W), "rgb8", ros.header())).width == W
    assert node.popen.poll() is None


def quiescent(diagnostics: dict) -> bool:
    """Every frame received is accounted for exactly once: processed, dropped, bad or failed."""
    counts = {key: int(diagnostics[key]) for key in ("frames_received", "frames_processed", "frames_dropped")}
    counts |= {key: int(diagnostics[key]) for key in ("bad_messages", "errors")}
    return counts["frames_received"] == sum(counts.values()) - counts["frames_received"]


def test_error_text_is_bounded_and_the_last_error_kept_with_its_age(node, ros: RosHarness) -> None:
    """Issue 13 #9: a 1 MB encoding string gave a 1 MB log line and last_error (here 300 kB: one
    shared-memory sample without a Fast DDS profile)."""
    msg = numpy_to_image(random_rgb(H, W), "rgb8", ros.header())
    msg.encoding = "x" * 300_000
    before = int(ros.wait_diagnostics(lambda d: "bad_messages" in d)["bad_messages"])
    publisher = ros.publisher(Image, IMAGE)
    deadline = time.monotonic() + TIMEOUT
    while int(ros.diagnostics()["bad_messages"]) == before and time.monotonic() < deadline:
        publisher.publish(msg)
        ros.spin_until(lambda: int(ros.diagnostics()["bad_messages"]) > before, timeout=1.0)
    report = ros.diagnostics()
    assert int(report["bad_messages"]) > before
    assert "unsupported image encoding 'xxxx" in report["last_error"] and len(report["last_error"]) < 400
    assert max(len(line) for line in node.output().splitlines()) < 1000
    # Kept after later frames succeed, with its age: an intermittent fault stays visible.
    assert segment(ros, numpy_to_image(random_rgb(H, W), "rgb8", ros.header())).width == W
    later = ros.wait_diagnostics(lambda d: float(d["last_error_age_s"]) > float(report["last_error_age_s"]))
    assert later["last_error"] == report["last_error"]
    assert ros.wait_diagnostics(quiescent, timeout=10), ros.diagnostics()


def test_max_pixels_set_at_runtime_refuses_larger_images(node, ros: RosHarness) -> None:
    assert all(r.successful for r in ros.set_parameters(max_pixels=4096))  # 64x64; our images are 64x96
    try:
        before = int(ros.wait_diagnostics(lambda d: "bad_messages" in d)["bad_messages"])
        publisher = ros.publisher(Image, IMAGE)
        deadline = time.monotonic() + TIMEOUT
        while int(ros.diagnostics()["bad_messages"]) == before and time.monotonic() < deadline:
            publisher.publish(numpy_to_image(random_rgb(H, W), "rgb8", ros.header()))
            ros.spin_until(lambda: int(ros.diagnostics()["bad_messages"]) > before, timeout=1.0)
        assert ros.diagnostics_seen(level=DiagnosticStatus.WARN, message="exceeds max_pixels=4096")
    finally:
        assert all(r.successful for r in ros.set_parameters(max_pixels=4096 * 4096))
    assert segment(ros, numpy_to_image(random_rgb(H, W), "rgb8", ros.header())).width == W


def test_a_burst_of_bad_messages_logs_at_most_one_line_per_5_seconds(node, ros: RosHarness) -> None:
    """The warning is throttled (5 s), the count is not: a broken driver cannot flood the log."""
    lines = node.output().count("skipping bad image")
    before = int(ros.wait_diagnostics(lambda d: "bad_messages" in d)["bad_messages"])
    msg = bad_images()["unknown_encoding"]
    publisher = ros.publisher(Image, IMAGE)
    start = time.monotonic()
    for _ in range(30):
        msg.header = ros.header()
        publisher.publish(msg)
        ros.spin_until(lambda: False, timeout=0.01)
    assert ros.spin_until(lambda: int(ros.diagnostics()["bad_messages"]) >= before + 10)
    elapsed = time.monotonic() - start
    logged = node.output().count("skipping bad image") - lines
    assert logged <= elapsed // 5 + 1 < int(ros.diagnostics()["bad_messages"]) - before, (logged, elapsed)


def test_overload_keeps_processing_the_newest_frames_with_bounded_latency(node, ros: RosHarness) -> None:
    """Publish at ~4x the sustainable rate: frames are dropped, never queued, so latency does not grow."""
    rgb = random_rgb(240, 320, seed=4)
    labels = ros.collect(Image, LABELS)
    warmup = [ros.send_until(IMAGE, numpy_to_image(rgb, "rgb8", ros.header()), labels) for _ in range(3)]
    assert warmup
    stats = ros.wait_diagnostics(lambda d: d["inference_ms"] != "nan")
    inference = float(stats["inference_ms"]) / 1e3
    dropped_before = int(stats["frames_dropped"])
    period, duration = inference / 4, 4.0
    publisher = ros.publisher(Image, IMAGE)
    sent: dict[tuple[int, int], float] = {}
    start = next_send = time.perf_counter()
    while time.perf_counter() - start < duration:
        if time.perf_counter() >= next_send:
            msg = numpy_to_image(rgb, "rgb8", ros.header())
            publisher.publish(msg)
            sent[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = time.perf_counter()
            next_send += period
        ros.executor.spin_once(timeout_sec=0.001)
    last = msg.header.stamp
    assert ros.spin_until(lambda: labels.with_stamp(last) is not None, timeout=TIMEOUT), "newest frame not processed"
    latencies = [
        labels.times[i] - sent[(m.header.stamp.sec, m.header.stamp.nanosec)]
        for i, m in enumerate(labels.messages)
        if (m.header.stamp.sec, m.header.stamp.nanosec) in sent
    ]
    ros.stop_collecting(labels)
    # A FIFO would fall ~3/4 of `duration` behind by the end; the newest-frame worker stays ~2 inferences behind.
    assert len(latencies) < len(sent) / 2, (len(latencies), len(sent))
    assert max(latencies[-5:]) < duration / 3, latencies
    stats = ros.wait_diagnostics(lambda d: int(d["frames_dropped"]) > dropped_before)
    assert int(stats["frames_dropped"]) > dropped_before


def test_sigint_stops_the_node_cleanly(node: NodeProcess) -> None:
    """Runs last in this module: it ends the module's node."""
    assert node.signal(signal.SIGINT) == 0, node.output()
    assert "Traceback" not in node.output()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_node_starts_ends_it_quietly(start_node, checkpoint: Path, signum: int) -> None:
    """Ctrl-C while torch and rclpy are still loading (the first seconds): exit 0, no traceback."""
    proc = start_node("-p", f"checkpoint:={checkpoint}")
    time.sleep(0.5)
    assert proc.signal(signum) == 0, proc.output()
    assert "Traceback" not in proc.output()


@pytest.mark.parametrize("lifecycle", [False, True], ids=["plain", "lifecycle"])
def test_ctrl_c_held_down_still_ends_the_node_with_status_0(start_node, checkpoint: Path, lifecycle: bool) -> None:
    """SIGINT every 50 ms from the first until the process is gone, as when launch forwards a second SIGINT late
    (no terminal, a loaded machine): none reaches the interpreter's finalisation, which puts back the default
    handlers (before: killed by the second signal, exit -2, 3 of 3 times, both executables)."""
    proc = start_node("-p", f"checkpoint:={checkpoint}", "-p", "backend:=torch", lifecycle=lifecycle)
    proc.wait_for("unconfigured: " if lifecycle else "segmenting")
    deadline = time.monotonic() + TIMEOUT
    while proc.popen.poll() is None and time.monotonic() < deadline:
        proc.popen.send_signal(signal.SIGINT)
        time.sleep(0.05)
    assert proc.popen.wait(timeout=1) == 0, proc.output()
    assert "Traceback" not in proc.output()


@pytest.mark.parametrize("checkpoint_arg", ["/nonexistent/model.pt", None])
def test_without_a_checkpoint_the_node_refuses_to_start_and_says_how_to_train(start_node, checkpoint_arg) -> None:
    proc = start_node(*(["-p", f"checkpoint:={checkpoint_arg}"] if checkpoint_arg else []))
    assert proc.popen.wait(timeout=TIMEOUT) != 0
    output = proc.output()
    assert "fast-scnn train" in output and "Traceback" not in output, output


def test_a_checkpoint_with_a_nan_weight_refuses_to_start_naming_the_weight(
    start_node, checkpoint: Path, tmp_path: Path
) -> None:
    """Issue 13 #2: such a checkpoint labelled every pixel 0 without a word; the node must not run it."""
    payload = torch.load(checkpoint, weights_only=True)
    name = next(iter(payload["model"]))
    payload["model"][name].view(-1)[0] = float("nan")
    torch.save(payload, tmp_path / "nan.pt")
    proc = start_node("-p", f"checkpoint:={tmp_path / 'nan.pt'}")
    assert proc.popen.wait(timeout=TIMEOUT) == 2
    output = proc.output()
    assert "cannot start: " in output and f"weight {name} holds 1 NaN" in output and "Traceback" not in output


def test_an_invalid_startup_parameter_refuses_with_the_reason(start_node, checkpoint: Path) -> None:
    proc = start_node("-p", f"checkpoint:={checkpoint}", "-p", "qos_reliability:=reliabl")
    assert proc.popen.wait(timeout=TIMEOUT) == 2
    assert "qos_reliability" in proc.output() and "best_effort, reliable" in proc.output()
