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
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rclpy
import torch
import yaml
from nav_msgs.msg import OccupancyGrid
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from fast_scnn_core.config import shipped_config
from fast_scnn_core.data.synthetic import synthetic_frame
from fast_scnn_core.ground.pose import CameraPose
from fast_scnn_core.infer.visualize import (
    COST_LEGEND,
    colorize,
    cost_picture,
    labelled_row,
    legend,
    overlay,
    with_title,
)
from fast_scnn_core.labels import ClassSet
from fast_scnn_core.metrics import confusion_matrix, metrics_from_confusion
from fast_scnn_core.model.checkpoint import class_set_of, load_checkpoint
from fast_scnn_ros.conversions import image_to_numpy
from fast_scnn_ros.names import (
    CAMERA_INFO_TOPIC,
    COLOR_TOPIC,
    GROUND_GRID_TOPIC,
    IMAGE_TOPIC,
    LABELS_TOPIC,
    MASKS_TOPIC,
    OVERLAY_TOPIC,
)
from fast_scnn_ros.tools.probe import Collector, Probe, Stamp, stamp_key, status_values, use_private_domain
from fast_scnn_ros.tools.process import NodeProcess

MASK_CLASSES = ("road", "car", "person")
# Training speed of config/train_synthetic.yaml on the 2 idle CPU cores of the development machine (docs/training.md).
IDLE_ITERATIONS_PER_S = 1.3
DIAGNOSTIC_KEYS = ("device", "backend", "inference_ms", "overhead_ms", "frames_dropped", "bad_messages")
# The camera driver's topics, remapped onto the node's inputs as a launch file does.
CAMERA_IMAGE, CAMERA_INFO = "/camera/image_raw", "/camera/camera_info"
# What the planner subscribes: output name -> topic.
OUTPUTS = {
    "labels": f"/{LABELS_TOPIC}",
    "color": f"/{COLOR_TOPIC}",
    "overlay": f"/{OVERLAY_TOPIC}",
    **{f"masks/{name}": f"/{MASKS_TOPIC}/{name}" for name in MASK_CLASSES},
}


@dataclass
class Sent:
    image: np.ndarray
    labels: np.ndarray
    time: float  # time.perf_counter(), the clock of the probe's arrival times


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def run_cli(*args: str) -> None:
    """Run `python -m fast_scnn_core ARGS` (the `fast-scnn` command) in the foreground."""
    print("$ fast-scnn " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "fast_scnn_core", *args], check=True)


# The ground projection of the demo's camera: the synthetic scenes are drawn, not rendered through a camera model;
# a dashcam 1.5 m up, pitched 2.7 degrees down, puts the horizon where they draw it on average (row 109 of 256 at
# focal 0.8 x width), so their bird's-eye view is an illustration, not a measurement.
DEMO_CAMERA = CameraPose.looking(1.5, 2.7)
GROUND = {
    "ground.enabled": True,
    "ground.camera_translation": [float(v) for v in DEMO_CAMERA.translation],
    "ground.camera_rotation": [round(float(v), 6) for v in DEMO_CAMERA.quaternion()],
    "ground.resolution": 0.25,
    "ground.x_min": 0.0,
    "ground.x_max": 30.0,
    "ground.y_min": -15.0,
    "ground.y_max": 15.0,
    "ground.max_range": 30.0,
}
GROUND_GRID = f"/{GROUND_GRID_TOPIC}"


def start_node(checkpoint: Path, log: Path) -> NodeProcess:
    """The installed executable, started exactly as `ros2 launch fast_scnn_ros segment.launch.py` would."""
    remaps = {IMAGE_TOPIC: CAMERA_IMAGE, CAMERA_INFO_TOPIC: CAMERA_INFO}
    parameters = {"checkpoint": checkpoint, "mask_classes": MASK_CLASSES, **GROUND}
    node = NodeProcess(log, parameters=parameters, remaps=remaps)
    print("$ " + " ".join(node.command), flush=True)
    return node


def play_camera(probe: Probe, args: argparse.Namespace, labels: Collector) -> dict[Stamp, Sent]:
    """Publish the synthetic scenes at `args.fps` as a camera driver does; wait a little for the last labels."""
    camera = probe.camera(CAMERA_IMAGE, CAMERA_INFO)
    sent: dict[Stamp, Sent] = {}
    period = 1.0 / args.fps
    start = time.monotonic()
    for index in range(args.frames):
        image, truth = synthetic_frame(index, args.height, args.width, seed=args.seed, split="demo")
        header = probe.header(now=True)
        sent[stamp_key(header.stamp)] = Sent(image, truth, time.perf_counter())
        camera.publish(image, header, focal=0.8 * args.width)
        next_time = start + (index + 1) * period
        probe.spin_until(lambda t=next_time: time.monotonic() >= t, timeout=period + 1.0)
    probe.spin_until(lambda: len(labels.arrivals) >= len(sent), timeout=5.0)
    return sent


def diagnostics_with_frames(probe: Probe) -> dict[str, str]:
    """The node's last diagnostics report of a period that saw frames."""
    reports = (status_values(status) for status in reversed(probe.reports()))
    return next((values for values in reports if values.get("inference_ms", "nan") != "nan"), {})


def score(
    sent: dict[Stamp, Sent],
    received: dict[str, dict[Stamp, np.ndarray]],
    arrivals: dict[Stamp, float],
    classes: ClassSet,
) -> dict:
    """The planner's view of the stream: frames labelled, rate, latency, accuracy, masks against labels."""
    labels = received["labels"]
    matched = [key for key in labels if key in sent]
    times = [arrivals[key] for key in matched]
    confusion = torch.zeros(classes.num_classes, classes.num_classes, dtype=torch.int64)
    for key in matched:
        confusion += confusion_matrix(
            torch.from_numpy(labels[key]), torch.from_numpy(sent[key].labels), classes.num_classes
        )
    metrics = metrics_from_confusion(confusion, classes)
    masks = [(name, key, received[f"masks/{name}"][key]) for name in MASK_CLASSES for key in received[f"masks/{name}"]]
    checked = [(name, key, mask) for name, key, mask in masks if key in labels]
    return {
        "sent": len(sent),
        "received": len(matched),
        "matched": matched,
        "output_fps": (len(matched) - 1) / (max(times) - min(times)) if len(matched) > 1 else 0.0,
        "latency_ms": sorted(1000 * (arrivals[key] - sent[key].time) for key in matched),
        "masks": {name: len(received[f"masks/{name}"]) for name in MASK_CLASSES},
        "mask_agreement": (
            sum(np.array_equal(mask == 255, labels[key] == classes.index(name)) for name, key, mask in checked),
            len(checked),
        ),
        "stream_miou": metrics["miou"],
        "stream_pixel_accuracy": metrics["pixel_accuracy"],
    }


PANELS = ("input", "colour labels", "overlay")


def write_row(path: Path, pictures: tuple[np.ndarray, ...], labels: np.ndarray, classes: ClassSet) -> Path:
    """input | colour labels | overlay, each under its title, over the legend of the classes in `labels`."""
    row = labelled_row(list(zip(PANELS, pictures, strict=True)), labels, classes)
    cv2.imwrite(str(path), cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
    return path


def write_pictures(
    out: Path,
    sent: dict[Stamp, Sent],
    received: dict[str, dict[Stamp, np.ndarray]],
    matched: list[Stamp],
    classes: ClassSet,
) -> list[Path]:
    """Up to three frames as input | colour labels | overlay, and the last one from its ground truth."""
    shown = [k for k in matched if k in received["color"] and k in received["overlay"]]
    pictures = [
        write_row(
            out / f"demo_{i}.png",
            (sent[key].image, received["color"][key], received["overlay"][key]),
            received["labels"][key],
            classes,
        )
        for i, key in enumerate(shown[:: max(1, len(matched) // 3)][:3])
    ]
    if matched:  # the same picture from the ground truth, for comparison
        frame = sent[matched[-1]]
        truth = (colorize(frame.labels, classes.palette()), overlay(frame.image, frame.labels, classes.palette()))
        pictures.append(write_row(out / "ground_truth.png", (frame.image, *truth), frame.labels, classes))
    return pictures


def write_ground_picture(
    path: Path, sent: dict[Stamp, Sent], received: dict, grids: dict[Stamp, np.ndarray]
) -> Path | None:
    """The newest frame with a ground grid: input | overlay | the grid from above, over the legend of its values."""
    keys = [key for key in grids if key in sent and key in received["overlay"]]
    if not keys:
        return None
    key = keys[-1]
    image = sent[key].image
    panels = [
        ("input", image),
        ("overlay", received["overlay"][key]),
        ("ground grid from above", cost_picture(grids[key], image.shape[0])),
    ]
    row = np.concatenate([with_title(picture, title) for title, picture in panels], axis=1)
    row = np.concatenate([row, legend(range(COST_LEGEND.num_classes), COST_LEGEND, row.shape[1])])
    cv2.imwrite(str(path), cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
    return path


def stream(args: argparse.Namespace, checkpoint: Path, out: Path) -> dict:
    """Camera driver + planner in this process; the node in its own. Returns the report's numbers."""
    log = out / "node.log"
    node_process = start_node(checkpoint, log)
    classes = class_set_of(load_checkpoint(checkpoint))
    rclpy.init(args=None)
    probe = Probe("demo_camera_and_planner")
    outputs = {name: probe.collect(Image, topic) for name, topic in OUTPUTS.items()}
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    grids = probe.collect(OccupancyGrid, GROUND_GRID, latched)
    try:
        class_info = probe.wait_ready(node_process, CAMERA_IMAGE, qos=qos_profile_sensor_data)
        print(f"node is up; class_info: {class_info[:100]}...", flush=True)
        sent = play_camera(probe, args, outputs["labels"])
        diagnostics = diagnostics_with_frames(probe)
    finally:
        probe.close()
        rclpy.shutdown()
        exit_code = node_process.stop(timeout=30)
    received = {
        name: {stamp_key(msg.header.stamp): image_to_numpy(msg) for msg in collector.messages}
        for name, collector in outputs.items()
    }
    result = score(sent, received, outputs["labels"].arrivals, classes)
    pictures = write_pictures(out, sent, received, result["matched"], classes)
    grid_of = {
        stamp_key(m.header.stamp): np.array(m.data, np.int8).reshape(m.info.height, m.info.width)
        for m in grids.messages
    }
    ground = write_ground_picture(out / "ground_grid.png", sent, received, grid_of)
    pictures += [ground] if ground else []
    result["ground_grids"] = len(grid_of)
    return {**result, "node_exit_code": exit_code, "diagnostics": diagnostics, "pictures": pictures, "log": log}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fast-scnn-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo", help="output folder (default: demo/)")
    parser.add_argument("--epochs", type=int, default=0, help="training epochs (default: the quick-start config's)")
    parser.add_argument("--frames", type=int, default=40, help="camera frames to stream (default: 40)")
    parser.add_argument("--fps", type=float, default=4.0, help="camera rate in Hz (default: 4)")
    parser.add_argument("--width", type=int, default=512, help="camera width (default: 512)")
    parser.add_argument("--height", type=int, default=256, help="camera height (default: 256)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the streamed scenes (default: 7)")
    return parser.parse_args(argv)


def train(args: argparse.Namespace, out: Path) -> Path:
    """Steps 1 and 2: the synthetic dataset and a model trained on it (both reused when present); the checkpoint."""
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
        config = shipped_config("train_synthetic.yaml")
        epochs = args.epochs or yaml.safe_load(config.read_text())["epochs"]
        print(training_plan(config, data, epochs), flush=True)
        run_cli("train", "--config", str(config), f"run_dir={run_dir}", f"data.root={data}", f"epochs={epochs}")
    return checkpoint


def training_plan(config: Path, data: Path, epochs: int) -> str:
    """What the training step does and what its progress bar counts, in one line."""
    batch = yaml.safe_load(config.read_text())["batch_size"]
    frames = len(list((data / "leftImg8bit/train").glob("*/*.png")))
    iterations = epochs * (frames // batch)
    minutes = max(1, round(iterations / IDLE_ITERATIONS_PER_S / 60))
    return (
        f"training on synthetic data: {iterations} iterations ({frames} frames in batches of {batch}, "
        f"{epochs} {'epoch' if epochs == 1 else 'epochs'}); the bar counts them and estimates the time left from "
        f"the last few (about {minutes} min on 2 otherwise idle CPU cores; several times that when other work "
        "shares them)"
    )


def report(args: argparse.Namespace, result: dict, val_miou: float, train_s: float, total_s: float) -> list[str]:
    """The report's lines."""
    lat = result["latency_ms"]
    diagnostics = result["diagnostics"]
    agrees, checked = result["mask_agreement"]
    return [
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
        f"ground grids received: {result['ground_grids']} (segmentation/ground_grid, nav_msgs/OccupancyGrid)",
        f"node exit code after SIGINT: {result['node_exit_code']} (log: {result['log']})",
        f"time: training {train_s:.0f} s, total {total_s:.0f} s",
        "pictures (input | colour labels | overlay, titled, over a legend of the classes present; ground_grid.png: "
        "input | overlay | the ground grid from above):",
        *[f"  {p}" for p in result["pictures"]],
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out).resolve()
    started = time.monotonic()
    checkpoint = train(args, out)
    val_miou = load_checkpoint(checkpoint)["metrics"].get("miou", float("nan"))
    train_done = time.monotonic()

    step("3/4  the segmentation node, a camera driver and a planner over ROS 2 (Fast DDS)")
    use_private_domain()  # the node inherits our environment
    result = stream(args, checkpoint, out)

    step("4/4  report")
    lines = report(args, result, val_miou, train_done - started, time.monotonic() - started)
    print("\n".join(lines), flush=True)
    (out / "report.txt").write_text("\n".join(lines) + "\n")
    agrees, checked = result["mask_agreement"]
    ok = (
        result["received"] > 0
        and result["node_exit_code"] == 0
        and agrees == checked > 0
        and result["ground_grids"] > 0
    )
    print("\ndemo " + ("passed" if ok else "FAILED"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
