"""The ROS node's own overhead: end-to-end latency (publish -> outputs received) minus the engine's latency.

    python bench/node_latency.py [--checkpoint model.pt] [--sizes 512x1024 1024x2048] [--frames 10]
                                 [--outputs labels|all] [--against REVISION]

Starts the installed segmentation_node (fast_scnn_ros.tools.process) in its own DDS domain on localhost,
publishes one rgb8 image at a time (fast_scnn_ros.tools.probe) and waits for its outputs (no overlap, so
no frame is dropped or queued), alternating with the Segmenter alone on the same image in this process.
`--outputs all` also subscribes color, overlay and three mask topics (the node computes only what is
subscribed) and waits for every one of them. The node's overhead is split with its own per-frame timings
(/diagnostics): DDS transport in and out, wake-up (frame waiting for the worker), conversion, and
post-processing + publishing. A second table times the post-processing parts in this process; with
`--against REVISION` the fast_scnn_core/infer/visualize.py of that git revision runs side by side. The
transport floor: the same frames through an rclpy node that does nothing but what any node in the
segmentation node's place must (take the image as a view, publish labels of its size with the node's
QoS), round trip as above.
Without --checkpoint an untrained 19-class checkpoint is used: latency does not depend on the
weights. Prints markdown tables; docs/ros.md records the numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import rclpy
import torch
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image

import fast_scnn_core.infer.visualize
from fast_scnn_core.errors import ConfigError
from fast_scnn_core.infer.segmenter import InferenceConfig, Segmenter
from fast_scnn_core.labels import CITYSCAPES, mask_topic_names
from fast_scnn_core.limits import parse_size
from fast_scnn_core.model.checkpoint import class_set_of, load_checkpoint, save_checkpoint
from fast_scnn_core.model.network import FastSCNN
from fast_scnn_ros.conversions import image_to_rgb8, numpy_to_image
from fast_scnn_ros.names import COLOR_TOPIC, IMAGE_TOPIC, LABELS_TOPIC, MASKS_TOPIC, OVERLAY_TOPIC
from fast_scnn_ros.tools.probe import Collector, Probe, status_values, use_private_domain
from fast_scnn_ros.tools.process import NodeProcess, Process, node_environment, use_large_images_profile

REPO = Path(__file__).resolve().parents[1]
BENCH_IMAGE = "/bench/image"  # the camera topic, remapped onto the node's input
MASKS = 3  # --outputs all: masks of the first three classes
NODE_TIMINGS = ("wait", "convert", "inference", "publish", "end_to_end")
# The floor: image in, labels of its size out, nothing else; memory set up as the segmentation node's (main()).
ECHO_NODE = """
from fast_scnn_ros.pipeline import reuse_frame_buffers
reuse_frame_buffers()
import numpy as np, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from fast_scnn_ros.conversions import image_to_rgb8, numpy_to_image
rclpy.init()
node = rclpy.create_node("echo")
labels = node.create_publisher(Image, "/echo/labels", QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
def echo(msg):
    rgb = image_to_rgb8(msg)
    labels.publish(numpy_to_image(np.zeros(rgb.shape[:2], np.uint8), "mono8", msg.header))
node.create_subscription(Image, "/echo/image", echo, qos_profile_sensor_data)
try:
    rclpy.spin(node)
except KeyboardInterrupt:
    pass
"""


def time_engine(segmenter: Segmenter, rgb: np.ndarray) -> float:
    start = time.perf_counter()
    segmenter(rgb)
    if segmenter.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def start_node(checkpoint: Path, size: tuple[int, ...], options: argparse.Namespace, workdir: Path) -> NodeProcess:
    """The node under test: what `--outputs` subscribes computed, a diagnostics report every 50 ms."""
    parameters: dict[str, object] = {"checkpoint": checkpoint, "device": options.device, "diagnostics_period": 0.05}
    if options.outputs == "all":
        parameters["mask_classes"] = list(class_set_of(load_checkpoint(checkpoint)).names[:MASKS])
    return NodeProcess(workdir / f"node_{size[0]}x{size[1]}.log", parameters, {IMAGE_TOPIC: BENCH_IMAGE})


def output_topics(checkpoint: Path, options: argparse.Namespace) -> list[str]:
    """The outputs subscribed and waited for."""
    if options.outputs == "labels":
        return [LABELS_TOPIC]
    masks = [f"{MASKS_TOPIC}/{name}" for name in mask_topic_names(class_set_of(load_checkpoint(checkpoint)))[:MASKS]]
    return [LABELS_TOPIC, COLOR_TOPIC, OVERLAY_TOPIC, *masks]


def alternate(
    probe: Probe, outputs: list[Collector], segmenter: Segmenter, rgb: np.ndarray, options: argparse.Namespace
) -> tuple[list[float], list[float]]:
    """Seconds publish -> every output, and of the engine alone, frame by frame (warm-up frames left out)."""
    # The engine alone runs in a worker thread, as in the node: on a loaded 2-core machine torch's two
    # OpenMP threads measured 2-5x slower driven from the main thread than from a worker thread.
    worker = ThreadPoolExecutor(max_workers=1)
    publisher = probe.publisher(Image, BENCH_IMAGE)
    end_to_end, engine = [], []
    try:
        for i in range(1, options.warmup + options.frames + 1):
            msg = numpy_to_image(rgb, "rgb8", probe.header())
            sent = time.perf_counter()
            publisher.publish(msg)
            if not probe.spin_until(lambda m=msg: all(c.arrival(m.header.stamp) for c in outputs), 120):
                arrived = [c.subscription.topic_name for c in outputs if c.arrival(msg.header.stamp)]
                raise RuntimeError(f"frame {i}: only {arrived} of {len(outputs)} outputs arrived")
            time.sleep(0.3)  # let the node's threads go idle before this process computes
            engine_time = worker.submit(time_engine, segmenter, rgb).result()
            time.sleep(0.3)  # and ours, before the node computes
            if i > options.warmup:
                end_to_end.append(max(c.arrival(msg.header.stamp) for c in outputs) - sent)
                engine.append(engine_time)
    finally:
        worker.shutdown()
    return end_to_end, engine


def node_timings(probe: Probe, options: argparse.Namespace) -> dict[int, dict[str, float]]:
    """The node's own timings (ms) of each measured frame, from its diagnostics."""
    # Wait for the report holding the last frame, not for the next few: reports queue up in DDS while
    # this process builds its engine and runs it, and the executor serves the outputs first, so the
    # next ones taken can be older (under load they were: "a diagnostics window held two frames").
    last = str(options.warmup + options.frames)
    reports = lambda: [status_values(status) for status in probe.reports()]  # noqa: E731
    probe.spin_until(lambda: any(r["frames_processed"] == last and r["inference_ms"] != "nan" for r in reports()), 30)
    # Frames are sequential and far apart, so a 50 ms diagnostics window holds at most one: the window
    # whose frames_processed reads i reports frame i's own timings.
    own: dict[int, dict[str, float]] = {}
    for r in reports():
        if r["inference_ms"] != "nan":
            own[int(r["frames_processed"])] = {k: float(r[f"{k}_ms"]) for k in NODE_TIMINGS}
    measured = range(options.warmup + 1, options.warmup + options.frames + 1)
    if not all(i in own for i in measured):
        raise RuntimeError("a diagnostics window held two frames; use fewer, slower frames")
    return {i: own[i] for i in measured}


def measure(checkpoint: Path, rgb: np.ndarray, options: argparse.Namespace, workdir: Path) -> dict[str, float]:
    """Median latencies (ms): publish -> outputs through the node, the Segmenter alone, the node's own breakdown.

    Node and engine-alone runs alternate frame by frame (the node idles while this process infers), so
    both see the same machine load: the bench machine is shared.
    """
    proc = start_node(checkpoint, rgb.shape, options, workdir)
    # Diagnostics are held by DDS (up to 1000) while this process runs the engine alone and does not spin.
    probe = Probe("node_latency_bench", diagnostics_depth=1000)
    try:
        outputs = [probe.collect(Image, f"/{topic}", keep=False) for topic in output_topics(checkpoint, options)]
        probe.wait_ready(proc, BENCH_IMAGE)
        # The node computes an output only for matched subscribers: wait until each of ours is.
        probe.spin_until(lambda: all(c.subscription.get_publisher_count() > 0 for c in outputs), 30)
        segmenter = Segmenter.from_checkpoint(
            checkpoint, InferenceConfig(checkpoint=str(checkpoint), device=options.device)
        )
        end_to_end, engine = alternate(probe, outputs, segmenter, rgb, options)
        own = list(node_timings(probe, options).values())
        overhead = [1e3 * e - o["inference"] for e, o in zip(end_to_end, own, strict=True)]
        transport = [1e3 * e - o["end_to_end"] for e, o in zip(end_to_end, own, strict=True)]
        return {
            "end_to_end": 1e3 * float(np.median(end_to_end)),
            "engine": 1e3 * float(np.median(engine)),
            "overhead": float(np.median(overhead)),
            "transport": float(np.median(transport)),
            **{f"node_{k}": float(np.median([o[k] for o in own])) for k in NODE_TIMINGS},
        }
    finally:
        probe.close()
        proc.stop(timeout=60)


def transport_floor(rgb: np.ndarray, options: argparse.Namespace, workdir: Path) -> list[float]:
    """Round trips (ms) of `rgb` through ECHO_NODE in its own process, one frame at a time as `measure` sends them."""
    echo = Process([sys.executable, "-c", ECHO_NODE], workdir / "echo.log", node_environment())
    probe = Probe("node_latency_floor")
    try:
        labels = probe.collect(Image, "/echo/labels", keep=False)
        publisher = probe.publisher(Image, "/echo/image", qos_profile_sensor_data)
        ready = lambda: publisher.get_subscription_count() > 0 and labels.subscription.get_publisher_count() > 0  # noqa: E731
        if not probe.spin_until(ready, 60):
            raise RuntimeError(f"the echo node did not come up:\n{echo.output()}")
        round_trips = []
        for i in range(1, options.warmup + options.frames + 1):
            msg = numpy_to_image(rgb, "rgb8", probe.header())
            for _ in range(10):  # best effort: a frame sent just after matching can be lost; the warm-up absorbs it
                sent = time.perf_counter()
                publisher.publish(msg)
                if probe.spin_until(lambda m=msg: labels.arrival(m.header.stamp) is not None, 2):
                    break
            else:
                raise RuntimeError(f"frame {i} did not come back from the echo node:\n{echo.output()}")
            if i > options.warmup:
                round_trips.append(1e3 * (labels.arrival(msg.header.stamp) - sent))
            time.sleep(0.3)  # the same pace as the node's frames
        return round_trips
    finally:
        probe.close()
        echo.stop()


def visualize_at(revision: str) -> types.ModuleType:
    """fast_scnn_core/infer/visualize.py as it was at a git revision, loaded as a module of its own."""
    path = "fast_scnn_core/infer/visualize.py"
    show = ["git", "-C", str(REPO), "show", f"{revision}:{path}"]
    source = subprocess.run(show, capture_output=True, text=True, check=True).stdout
    module = types.ModuleType(f"visualize_{revision}")
    exec(compile(source, f"{revision}:{path}", "exec"), module.__dict__)
    return module


def post_processing_parts(visualize: types.ModuleType, rgb: np.ndarray) -> dict[str, Callable[[], object]]:
    """What the node does per frame besides inference, each as a call; `visualize` supplies the pictures."""
    height, width, _ = rgb.shape
    labels = np.random.default_rng(1).integers(0, 19, (height, width), dtype=np.uint8)
    palette = CITYSCAPES.palette()
    msg = numpy_to_image(rgb, "rgb8")
    return {
        "rgb8 Image -> engine input": lambda: image_to_rgb8(msg),
        "labels -> Image": lambda: numpy_to_image(labels, "mono8"),
        f"{MASKS} masks -> Images": lambda: [
            numpy_to_image(visualize.class_mask(labels, c), "mono8") for c in range(MASKS)
        ],
        "color -> Image": lambda: numpy_to_image(visualize.colorize(labels, palette), "rgb8"),
        "overlay -> Image": lambda: numpy_to_image(visualize.overlay(rgb, labels, palette, 0.5), "rgb8"),
        "serialize an rgb8 Image (publish's copy)": lambda: serialize_message(msg),
    }


def time_parts(versions: dict[str, types.ModuleType], rgb: np.ndarray, repeats: int) -> dict[str, dict[str, float]]:
    """Median ms of each part per version; versions alternate call by call so they share the machine's load."""
    calls = {version: post_processing_parts(module, rgb) for version, module in versions.items()}
    times: dict[str, dict[str, list[float]]] = {v: {part: [] for part in parts} for v, parts in calls.items()}
    for repeat in range(repeats + 1):
        for part in calls[next(iter(calls))]:
            # Which version runs first swaps each round: the first call of a part pays its cache misses.
            for version, parts in list(calls.items())[:: 1 if repeat % 2 else -1]:
                start = time.perf_counter()
                parts[part]()
                if repeat:  # the first round warms caches and allocators
                    times[version][part].append(time.perf_counter() - start)
    return {v: {part: 1e3 * float(np.median(t)) for part, t in parts.items()} for v, parts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="default: an untrained 19-class checkpoint")
    parser.add_argument("--sizes", nargs="+", default=["512x1024", "1024x2048"], help="HxW")
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--outputs", choices=("labels", "all"), default="labels", help="what is subscribed")
    parser.add_argument("--against", metavar="REVISION", help="also time visualize.py of this git revision")
    parser.add_argument("--repeats", type=int, default=20, help="calls per post-processing part (default: 20)")
    options = parser.parse_args()
    try:
        sizes = [parse_size(size, what="--sizes") for size in options.sizes]
    except ConfigError as error:
        parser.error(str(error))
    images = {size: np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8) for size in sizes}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = options.checkpoint
        if checkpoint is None:
            checkpoint = Path(tmp) / "untrained19.pt"
            save_checkpoint(checkpoint, FastSCNN(19), CITYSCAPES)
        use_private_domain()  # like the tests
        use_large_images_profile()  # this process publishes the camera-sized frames
        rclpy.init()
        rows = [(size, measure(checkpoint, images[size], options, Path(tmp))) for size in sizes]
        floors = {size: transport_floor(images[size], options, Path(tmp)) for size in sizes}
        rclpy.shutdown()
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"device {options.device}, outputs subscribed: {options.outputs}, {options.frames} frames after "
        f"{options.warmup} warm-up, load average {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| input HxW | engine alone ms | node end-to-end ms | node overhead ms (end-to-end - own inference) "
        "| overhead % of inference | of which DDS in + out / wake-up / convert / post-process + publish ms |"
    )
    print("|---|---|---|---|---|---|")
    for (height, width), r in rows:
        print(
            f"| {height}x{width} | {r['engine']:.0f} | {r['end_to_end']:.0f} | {r['overhead']:.1f} "
            f"| {100 * r['overhead'] / r['node_inference']:.1f} % | {r['transport']:.1f} / {r['node_wait']:.1f} "
            f"/ {r['node_convert']:.1f} / {r['node_publish']:.1f} |"
        )
    for (height, width), floor in floors.items():
        p10, p50, p90 = np.percentile(floor, [10, 50, 90])
        print(
            f"\ntransport floor at {height}x{width}: the image in and labels of its size out through an rclpy node "
            f"doing nothing else, round trip median {p50:.1f} ms (p10 {p10:.1f}, p90 {p90:.1f})"
        )
    versions = {"this tree": fast_scnn_core.infer.visualize}
    if options.against:
        versions = {options.against: visualize_at(options.against), **versions}
    for size in sizes:
        parts = time_parts(versions, images[size], options.repeats)
        print(f"\npost-processing parts at {size[0]}x{size[1]}, ms (median of {options.repeats}):\n")
        print("| part | " + " | ".join(versions) + " |")
        print("|---|" + "---:|" * len(versions))
        for part in parts["this tree"]:
            print(f"| {part} | " + " | ".join(f"{parts[v][part]:.2f}" for v in versions) + " |")


if __name__ == "__main__":
    main()
