"""Offline labelling speed: `fast-scnn label-bag` against the Segmenter's own batch rate (and the live node).

    python bench/bag_speed.py [--frames 60] [--size 512x1024] [--batch 4] [--repeats 3] [--node]

Writes bags of synthetic street scenes at --size (rgb8 in mcap and sqlite3, and jpeg CompressedImage
in mcap), then alternates, --repeats times, the Segmenter alone on the same frames already decoded
in memory (batches of --batch, and one frame at a time as the node runs it) with label-bag on each
bag through the same Segmenter object (so the ONNX export is not timed). label-bag's time is the
whole run: reading, deserializing, decoding, inference, serializing and writing OUT. --node also
times the live node as bench/node_latency.py does (one frame at a time, publish -> labels), which
needs the installed node and rclpy. Without --checkpoint an untrained 19-class checkpoint is used:
speed does not depend on the weights. Prints a markdown table (medians over the repeats);
docs/benchmarks.md records the numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fast_scnn_core import cli
from fast_scnn_core.bags.io import (
    COMPRESSED_IMAGE,
    TYPESTORE,
    add_image_topic,
    create_writer,
    open_bag,
    serialize_image,
)
from fast_scnn_core.bags.label import CPU_BATCH
from fast_scnn_core.cli import label_bag as label_bag_command
from fast_scnn_core.data.synthetic import synthetic_frame
from fast_scnn_core.image_msgs import compress_rgb8
from fast_scnn_core.infer.segmenter import InferenceConfig, Segmenter
from fast_scnn_core.labels import CITYSCAPES
from fast_scnn_core.limits import parse_size
from fast_scnn_core.model.checkpoint import save_checkpoint
from fast_scnn_core.model.network import FastSCNN

TOPIC = "/camera/image_raw"
HEADER = TYPESTORE.types["std_msgs/msg/Header"]
TIME = TYPESTORE.types["builtin_interfaces/msg/Time"]


def write_bag(path: Path, storage: str, frames: list[np.ndarray], count: int, compressed: bool) -> None:
    """`count` frames (cycling through `frames`) at 10 Hz on /camera/image_raw[/compressed]."""
    writer = create_writer(path, storage)
    topic = f"{TOPIC}/compressed" if compressed else TOPIC
    conn = (
        writer.add_connection(topic, COMPRESSED_IMAGE, typestore=TYPESTORE)
        if compressed
        else add_image_topic(writer, topic)
    )
    for i in range(count):
        t = 1_700_000_000_000_000_000 + i * 100_000_000
        header = HEADER(stamp=TIME(sec=t // 10**9, nanosec=t % 10**9), frame_id="camera")
        rgb = frames[i % len(frames)]
        if compressed:
            fmt, data = compress_rgb8(rgb, "jpeg")
            msg = TYPESTORE.types[COMPRESSED_IMAGE](header=header, format=fmt, data=data)
            writer.write(conn, t, TYPESTORE.serialize_cdr(msg, COMPRESSED_IMAGE))
        else:
            writer.write(conn, t, serialize_image(rgb, "rgb8", header))
    writer.close()


def segmenter_rate(segmenter: Segmenter, frames: list[np.ndarray], count: int, batch: int) -> float:
    """Frames/s of the Segmenter alone on `count` in-memory frames in batches of `batch`."""
    started = time.perf_counter()
    done = 0
    while done < count:
        n = min(batch, count - done)
        segmenter(
            np.stack([frames[(done + k) % len(frames)] for k in range(n)]) if n > 1 else frames[done % len(frames)]
        )
        done += n
    return count / (time.perf_counter() - started)


def label_bag_rate(segmenter: Segmenter, bag: Path, out: Path, batch: int, compressed: bool) -> float:
    """Frames/s of a whole label-bag run over `bag` (reading, decoding, inference, writing)."""
    topic = f"{TOPIC}/compressed" if compressed else TOPIC
    argv = ["label-bag", str(bag), str(out), "--checkpoint", "-", "--topic", topic, "--batch", str(batch)]
    args = cli.build_parser().parse_args([*argv, "--overwrite"])
    with open(os.devnull, "w") as quiet:
        stdout, stderr, sys.stdout, sys.stderr = sys.stdout, sys.stderr, quiet, quiet
        try:
            started = time.perf_counter()
            assert label_bag_command.run(args, segmenter) == 0
            seconds = time.perf_counter() - started
        finally:
            sys.stdout, sys.stderr = stdout, stderr
    with open_bag(out) as reader:
        count = reader.topics[topic].msgcount
    return count / seconds


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="default: an untrained 19-class checkpoint")
    parser.add_argument("--size", default="512x1024", help="HxW of the recorded frames")
    parser.add_argument("--frames", type=int, default=60, help="frames per bag")
    parser.add_argument("--batch", type=int, default=CPU_BATCH)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--node", action="store_true", help="also time the live node (bench/node_latency.py)")
    return parser.parse_args()


def measure(options: argparse.Namespace, root: Path, frames: list[np.ndarray]) -> tuple[Segmenter, dict]:
    """The Segmenter and {variant: frames/s of each repeat}, variants interleaved over the repeats."""
    checkpoint = options.checkpoint
    if checkpoint is None:
        checkpoint = root / "untrained19.pt"
        save_checkpoint(checkpoint, FastSCNN(19), CITYSCAPES)
    segmenter = Segmenter.from_checkpoint(
        checkpoint, InferenceConfig(checkpoint=str(checkpoint), device=options.device)
    )
    bags = {
        "label-bag, rgb8 Image, mcap": (root / "rgb8_mcap", "mcap", False),
        "label-bag, rgb8 Image, sqlite3": (root / "rgb8_sqlite3", "sqlite3", False),
        "label-bag, jpeg CompressedImage, mcap": (root / "jpeg_mcap", "mcap", True),
    }
    for path, storage, compressed in bags.values():
        write_bag(path, storage, frames, options.frames, compressed)
    segmenter_rate(segmenter, frames, 2 * options.batch, options.batch)  # warm-up
    rates: dict[str, list[float]] = {}
    batched = f"Segmenter alone, batch {options.batch}, frames in memory"
    single = "Segmenter alone, batch 1 (as the node runs it)"
    for _ in range(options.repeats):  # interleaved, so load from other processes hits every variant alike
        rates.setdefault(batched, []).append(segmenter_rate(segmenter, frames, options.frames, options.batch))
        rates.setdefault(single, []).append(segmenter_rate(segmenter, frames, options.frames, 1))
        for name, (path, _, compressed) in bags.items():
            rates.setdefault(name, []).append(label_bag_rate(segmenter, path, root / "out", options.batch, compressed))
    if options.node:
        rates["live node, one frame at a time (publish -> labels)"] = [node_rate(checkpoint, frames[0], options)]
    return segmenter, rates


def node_rate(checkpoint: Path, frame: np.ndarray, options: argparse.Namespace) -> float:
    """Frames/s of the live node, one frame at a time (bench/node_latency.py; needs the installed node and rclpy)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import node_latency
    import rclpy

    rclpy.init()
    try:
        result = node_latency.measure(checkpoint, frame, 10, 2, options.device)
    finally:
        rclpy.shutdown()
    return 1e3 / result["end_to_end"]


def main() -> None:
    options = parse_options()
    height, width = parse_size(options.size, minimum=1)
    frames = [synthetic_frame(i, height, width, split="val")[0] for i in range(8)]
    with tempfile.TemporaryDirectory() as tmp:
        segmenter, rates = measure(options, Path(tmp), frames)
    reference = float(np.median(rates[f"Segmenter alone, batch {options.batch}, frames in memory"]))
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"backend {segmenter.backend} on {segmenter.device}, {options.size}, {options.frames} frames per bag, "
        f"median of {options.repeats} interleaved runs\n"
    )
    print("| what | frames/s | ms per frame | vs Segmenter batch |")
    print("|---|---:|---:|---:|")
    for name, values in rates.items():
        rate = float(np.median(values))
        print(f"| {name} | {rate:.1f} | {1e3 / rate:.1f} | {rate / reference:.2f} |")


if __name__ == "__main__":
    main()
