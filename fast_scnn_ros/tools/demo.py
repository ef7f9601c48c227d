"""`make demo`: synthetic data -> a few minutes of training -> the real node -> a planner's view.

Every step is the product's own program, run the way a user runs it: `fast-scnn synth`,
`fast-scnn train`, the installed `lib/fast_scnn_ros/segmentation_node` with `--ros-args`. This
process plays the camera driver (publishes sensor_msgs/Image + CameraInfo with sensor-data QoS)
and the planner (subscribes /segmentation/labels and masks), then prints a report and writes
side-by-side PNGs (input | colour labels | overlay). Exits 0 only when every step worked, and
leaves nothing running.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from fast_scnn_core.data.synthetic import synthetic_frame
from fast_scnn_core.infer.visualize import colorize, overlay
from fast_scnn_core.metrics import confusion_matrix, metrics_from_confusion
from fast_scnn_core.model.checkpoint import class_set_of, load_checkpoint
from fast_scnn_ros.conversions import image_to_numpy, numpy_to_image
from fast_scnn_ros.node import diagnostic_name
from fast_scnn_ros.tools.process import NodeProcess, installed_config

REPO = Path(__file__).resolve().parents[1]
MASK_CLASSES = ("road", "car", "person")
DIAGNOSTIC_KEYS = ("device", "backend", "inference_ms", "overhead_ms", "frames_dropped", "bad_messages")


@dataclass
class Sent:
    image: np.ndarray
    labels: np.ndarray
    time: float


@dataclass
class Received:
    labels: dict[tuple[int, int], tuple[np.ndarray, float]] = field(default_factory=dict)
    masks: dict[tuple[str, tuple[int, int]], np.ndarray] = field(default_factory=dict)
    color: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    overlay: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    class_info: str = ""
    diagnostics: dict[str, str] = field(default_factory=dict)


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def run_cli(*args: str) -> None:
    """Run `python -m fast_scnn_core ARGS` (the `fast-scnn` command) in the foreground."""
    print("$ fast-scnn " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "fast_scnn_core", *args], check=True)


def stamp_key(header: Header) -> tuple[int, int]:
    return header.stamp.sec, header.stamp.nanosec


def camera_info(header: Header, width: int, height: int) -> CameraInfo:
    f = 0.8 * width
    info = CameraInfo(header=header, width=width, height=height, distortion_model="plumb_bob")
    info.k = [f, 0.0, width / 2, 0.0, f, height / 2, 0.0, 0.0, 1.0]
    info.p = [f, 0.0, width / 2, 0.0, 0.0, f, height / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.d = [0.0] * 5
    return info


def start_node(checkpoint: Path, log: Path) -> NodeProcess:
    """The installed executable, started exactly as `ros2 launch fast_scnn_ros segment.launch.py` would."""
    remaps = {"image": "/camera/image_raw", "camera_info": "/camera/camera_info"}
    node = NodeProcess(log, parameters={"checkpoint": checkpoint, "mask_classes": MASK_CLASSES}, remaps=remaps)
    print("$ " + " ".join(node.command), flush=True)
    return node


def stream(args: argparse.Namespace, checkpoint: Path, out: Path) -> dict:
    """Camera driver + planner in this process; the node in its own. Returns the report's numbers."""
    log = out / "node.log"
    node_process = start_node(checkpoint, log)
    classes = class_set_of(load_checkpoint(checkpoint))
    rclpy.init(args=None)
    node = rclpy.create_node("demo_camera_and_planner")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    sent: dict[tuple[int, int], Sent] = {}
    got = Received()

    def on_labels(msg: Image) -> None:
        got.labels[stamp_key(msg.header)] = (image_to_numpy(msg).copy(), time.monotonic())

    def on_mask(name: str):
        def callback(msg: Image) -> None:
            got.masks[name, stamp_key(msg.header)] = image_to_numpy(msg).copy()

        return callback

    node.create_subscription(Image, "/segmentation/labels", on_labels, 10)
    for name in MASK_CLASSES:
        node.create_subscription(Image, f"/segmentation/masks/{name}", on_mask(name), 10)
    node.create_subscription(
        Image, "/segmentation/color", lambda m: got.color.__setitem__(stamp_key(m.header), image_to_numpy(m)), 10
    )
    node.create_subscription(
        Image, "/segmentation/overlay", lambda m: got.overlay.__setitem__(stamp_key(m.header), image_to_numpy(m)), 10
    )

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == diagnostic_name():
                values = {kv.key: kv.value for kv in status.values}
                if values.get("inference_ms", "nan") != "nan":  # keep the last period that saw frames
                    got.diagnostics = values

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    image_pub = node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
    info_pub = node.create_publisher(CameraInfo, "/camera/camera_info", qos_profile_sensor_data)

    try:
        got.class_info = node_process.wait_ready(executor, node, image_pub)
        print(f"node is up; class_info: {got.class_info[:100]}...", flush=True)

        period = 1.0 / args.fps
        start = time.monotonic()
        for index in range(args.frames):
            image, labels = synthetic_frame(index, args.height, args.width, seed=args.seed, split="demo")
            now = node.get_clock().now()
            header = Header(stamp=now.to_msg(), frame_id="camera_optical_frame")
            sent[stamp_key(header)] = Sent(image, labels, time.monotonic())
            info_pub.publish(camera_info(header, args.width, args.height))
            image_pub.publish(numpy_to_image(image, "rgb8", header))
            next_time = start + (index + 1) * period
            while time.monotonic() < next_time:
                executor.spin_once(timeout_sec=max(0.0, next_time - time.monotonic()))
        drain = time.monotonic() + 5.0
        while time.monotonic() < drain and len(got.labels) < len(sent):
            executor.spin_once(timeout_sec=0.05)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        exit_code = node_process.stop(timeout=30)

    matched = [key for key in got.labels if key in sent]
    arrivals = [got.labels[key][1] for key in matched]
    latencies = sorted(1000 * (got.labels[k][1] - sent[k].time) for k in matched)
    confusion = torch.zeros(classes.num_classes, classes.num_classes, dtype=torch.int64)
    for key in matched:
        confusion += confusion_matrix(
            torch.from_numpy(got.labels[key][0]), torch.from_numpy(sent[key].labels), classes.num_classes
        )
    metrics = metrics_from_confusion(confusion, classes)
    pictures = []
    for key in [k for k in matched if k in got.color and k in got.overlay][:: max(1, len(matched) // 3)][:3]:
        path = out / f"demo_{len(pictures)}.png"
        row = np.concatenate([sent[key].image, got.color[key], got.overlay[key]], axis=1)
        cv2.imwrite(str(path), cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
        pictures.append(path)
    if matched:  # the same picture from the ground truth, for comparison
        key = matched[-1]
        truth = np.concatenate(
            [
                sent[key].image,
                colorize(sent[key].labels, classes.palette()),
                overlay(sent[key].image, sent[key].labels, classes.palette()),
            ],
            axis=1,
        )
        path = out / "ground_truth.png"
        cv2.imwrite(str(path), cv2.cvtColor(truth, cv2.COLOR_RGB2BGR))
        pictures.append(path)
    return {
        "sent": len(sent),
        "received": len(matched),
        "output_fps": (len(matched) - 1) / (max(arrivals) - min(arrivals)) if len(matched) > 1 else 0.0,
        "latency_ms": latencies,
        "masks": {name: sum(1 for n, _ in got.masks if n == name) for name in MASK_CLASSES},
        "mask_agreement": (
            sum(
                np.array_equal(mask == 255, got.labels[key][0] == classes.index(name))
                for (name, key), mask in got.masks.items()
                if key in got.labels
            ),
            sum(1 for _, key in got.masks if key in got.labels),
        ),
        "stream_miou": metrics["miou"],
        "stream_pixel_accuracy": metrics["pixel_accuracy"],
        "node_exit_code": exit_code,
        "diagnostics": got.diagnostics,
        "pictures": pictures,
        "log": log,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fast-scnn-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo", help="output folder (default: demo/)")
    parser.add_argument("--epochs", type=int, default=0, help="training epochs (default: the quick-start config's)")
    parser.add_argument("--frames", type=int, default=40, help="camera frames to stream (default: 40)")
    parser.add_argument("--fps", type=float, default=4.0, help="camera rate in Hz (default: 4)")
    parser.add_argument("--width", type=int, default=512, help="camera width (default: 512)")
    parser.add_argument("--height", type=int, default=256, help="camera height (default: 256)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the streamed scenes (default: 7)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    started = time.monotonic()

    data, run_dir = out / "data", out / "run"
    step("1/4  synthetic dataset in the Cityscapes layout")
    if (data / "leftImg8bit").is_dir():
        print(f"reusing {data}")
    else:
        run_cli("synth", "--out", str(data))

    step("2/4  training on the CPU (or GPU) with the paper's recipe, scaled down")
    checkpoint = run_dir / "best.pt"
    if checkpoint.is_file():
        print(f"reusing {checkpoint} (delete {out} to train again)")
    else:
        overrides = [f"run_dir={run_dir}", f"data.root={data}"]
        if args.epochs:
            overrides.append(f"epochs={args.epochs}")
        run_cli("train", "--config", str(installed_config("train_synthetic.yaml")), *overrides)
    payload = load_checkpoint(checkpoint)
    val_miou = payload["metrics"].get("miou", float("nan"))
    train_done = time.monotonic()

    step("3/4  the segmentation node, a camera driver and a planner over ROS 2 (Fast DDS)")
    os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))  # the node inherits our environment
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    result = stream(args, checkpoint, out)

    step("4/4  report")
    lat = result["latency_ms"]
    diagnostics = result["diagnostics"]
    agrees, checked = result["mask_agreement"]
    lines = [
        f"validation mIoU of the trained model (synthetic val): {100 * val_miou:.1f} %",
        f"frames sent / labels received: {result['sent']} / {result['received']} "
        f"({result['output_fps']:.1f} labelled frames/s from a {args.fps:g} Hz camera)",
        f"mIoU of the streamed labels vs ground truth: {100 * result['stream_miou']:.1f} % "
        f"(pixel accuracy {100 * result['stream_pixel_accuracy']:.1f} %)",
        f"end-to-end latency publish -> labels: median {np.median(lat):.0f} ms, max {max(lat):.0f} ms"
        if lat
        else "end-to-end latency: no frames",
        "node diagnostics: " + ", ".join(f"{k} {diagnostics[k]}" for k in DIAGNOSTIC_KEYS if k in diagnostics),
        f"mask messages: {result['masks']}; masks equal to labels == class in {agrees}/{checked}",
        f"node exit code after SIGINT: {result['node_exit_code']} (log: {result['log']})",
        f"time: training {train_done - started:.0f} s, total {time.monotonic() - started:.0f} s",
        "pictures (input | colour labels | overlay):",
        *[f"  {p}" for p in result["pictures"]],
    ]
    print("\n".join(lines), flush=True)
    (out / "report.txt").write_text("\n".join(lines) + "\n")
    ok = result["received"] > 0 and result["node_exit_code"] == 0 and agrees == checked > 0
    print("\ndemo " + ("passed" if ok else "FAILED"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
