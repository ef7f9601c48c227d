"""The ROS node's own overhead: end-to-end latency (publish -> labels received) minus the engine's latency.

    python bench/node_latency.py [--checkpoint model.pt] [--sizes 512x1024 1024x2048] [--frames 10]

Starts the installed segmentation_node (lib/fast_scnn_ros/segmentation_node) in its own DDS domain on
localhost, publishes one rgb8 image at a time and waits for its labels (no overlap, so no frame is
dropped or queued), then stops the node and times the Segmenter alone on the same image in this
process. Without --checkpoint an untrained 19-class checkpoint is used: latency does not depend on
the weights. Prints a markdown table; docs/ros.md records the numbers.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))  # a private domain, like the tests
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# Images above Fast DDS's 512 KiB shared-memory segment are lost over best effort without this profile.
os.environ.setdefault(
    "FASTDDS_DEFAULT_PROFILES_FILE", str(os.path.join(os.path.dirname(__file__), "../config/fastdds_large_images.xml"))
)

import platform
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String

from fast_scnn_core.checkpoint import save_checkpoint
from fast_scnn_core.inference import InferenceConfig, Segmenter
from fast_scnn_core.labels import CITYSCAPES
from fast_scnn_core.model import FastSCNN
from fast_scnn_ros.conversions import numpy_to_image
from fast_scnn_ros.node import diagnostic_name

REPO = Path(__file__).resolve().parents[1]
EXECUTABLE = Path(sys.prefix) / "lib/fast_scnn_ros/segmentation_node"
QOS = os.environ.get("BENCH_QOS", "best_effort")


def spin_until(executor, condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=0.005)
    return True


def time_engine(segmenter: Segmenter, rgb: np.ndarray) -> float:
    start = time.perf_counter()
    segmenter(rgb)
    if segmenter.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(checkpoint: Path, rgb: np.ndarray, frames: int, warmup: int, device: str) -> dict[str, float]:
    """Median latencies (ms): publish -> labels through the node, the Segmenter alone, the node's own breakdown.

    Node and engine-alone runs alternate frame by frame (the node idles while this process infers), so
    both see the same machine load: the bench machine is shared.
    """
    # The engine alone runs in a worker thread, as in the node: on a loaded 2-core machine torch's two
    # OpenMP threads measured 2-5x slower driven from the main thread than from a worker thread.
    worker = ThreadPoolExecutor(max_workers=1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [f"checkpoint:={checkpoint}", f"device:={device}", "diagnostics_period:=0.05"]
    proc = subprocess.Popen(
        [str(EXECUTABLE), "--ros-args", "--params-file", str(REPO / "config/segment.yaml")]
        + [a for arg in args for a in ("-p", arg)]
        + ["-r", "image:=/bench/image"],
        env=env,
    )
    node = rclpy.create_node("node_latency_bench")
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    try:
        received: dict[int, float] = {}
        node.create_subscription(
            Image, "/segmentation/labels", lambda m: received.setdefault(m.header.stamp.sec, time.perf_counter()), 10
        )
        reports: list[dict[str, str]] = []
        node.create_subscription(
            DiagnosticArray,
            "/diagnostics",
            lambda a: reports.extend(
                {kv.key: kv.value for kv in s.values} for s in a.status if s.name == diagnostic_name()
            ),
            1000,  # held by DDS while this process runs the engine alone and does not spin
        )
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        ready: list[str] = []
        node.create_subscription(String, "/segmentation/class_info", lambda m: ready.append(m.data), latched)
        publisher = node.create_publisher(Image, "/bench/image", 10)
        if not spin_until(executor, lambda: ready and publisher.get_subscription_count() > 0, 120):
            raise RuntimeError("segmentation_node did not start")
        segmenter = Segmenter.from_checkpoint(checkpoint, InferenceConfig(checkpoint=str(checkpoint), device=device))
        end_to_end, engine = [], []
        for i in range(1, warmup + frames + 1):
            msg = numpy_to_image(rgb, "rgb8")
            msg.header.stamp.sec = i
            sent = time.perf_counter()
            publisher.publish(msg)
            if not spin_until(executor, lambda i=i: i in received, 120):
                raise RuntimeError(
                    f"no labels for frame {i} (large images over best effort: FASTDDS_DEFAULT_PROFILES_FILE)"
                )
            time.sleep(0.3)  # let the node's OpenMP threads stop spinning before this process computes
            engine_time = worker.submit(time_engine, segmenter, rgb).result()
            time.sleep(0.3)  # and ours, before the node computes
            if i > warmup:
                end_to_end.append(received[i] - sent)
                engine.append(engine_time)
        before = len(reports)
        spin_until(executor, lambda: len(reports) > before + 1, 5)  # the report holding the last frame
        # Frames are sequential and far apart, so a 50 ms diagnostics window holds at most one: the window
        # whose frames_processed reads i reports frame i's own timings.
        own: dict[int, dict[str, float]] = {}
        for r in reports:
            if r["inference_ms"] != "nan":
                own[int(r["frames_processed"])] = {k: float(r[f"{k}_ms"]) for k in ("convert", "inference", "publish")}
        measured = range(warmup + 1, warmup + frames + 1)
        if not all(i in own for i in measured):
            raise RuntimeError("a diagnostics window held two frames; use fewer, slower frames")
        return {
            "end_to_end": 1e3 * float(np.median(end_to_end)),
            "engine": 1e3 * float(np.median(engine)),
            "overhead": float(
                np.median([1e3 * e - own[i]["inference"] for e, i in zip(end_to_end, measured, strict=True)])
            ),
            **{
                f"node_{k}": float(np.median([own[i][k] for i in measured]))
                for k in ("convert", "inference", "publish")
            },
        }
    finally:
        executor.shutdown()
        node.destroy_node()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        worker.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="default: an untrained 19-class checkpoint")
    parser.add_argument("--sizes", nargs="+", default=["512x1024", "1024x2048"], help="HxW")
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="auto")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = options.checkpoint
        if checkpoint is None:
            checkpoint = Path(tmp) / "untrained19.pt"
            save_checkpoint(checkpoint, FastSCNN(19), CITYSCAPES)
        rclpy.init()
        rows = []
        for size in options.sizes:
            height, width = (int(v) for v in size.split("x"))
            rgb = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
            rows.append((size, measure(checkpoint, rgb, options.frames, options.warmup, options.device)))
        rclpy.shutdown()
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"device {options.device}, {options.frames} frames after {options.warmup} warm-up\n"
    )
    print(
        "| input HxW | engine alone ms | node end-to-end ms | in node: convert / inference / publish ms "
        "| node overhead ms: end-to-end - own inference, per frame | overhead % of inference |"
    )
    print("|---|---|---|---|---|---|")
    for size, r in rows:
        print(
            f"| {size} | {r['engine']:.0f} | {r['end_to_end']:.0f} "
            f"| {r['node_convert']:.1f} / {r['node_inference']:.0f} / {r['node_publish']:.1f} "
            f"| {r['overhead']:.1f} | {100 * r['overhead'] / r['node_inference']:.1f} % |"
        )


if __name__ == "__main__":
    main()
