"""Which side needs config/fastdds_large_images.xml? Camera-sized frames over Fast DDS, per side's settings.

    python bench/fastdds_large_images.py [--sizes 1024x512 2048x1024] [--frames 40] [--rate 10]

Three links, each measured for every pairing of Fast DDS settings (the publisher's, the subscriber's):
- camera -> node: rgb8 frames with sensor-data QoS (best effort, keep last 5) on both sides, as a
  REP 2003 camera driver publishes and the segmentation node subscribes by default;
- node -> planner: mono8 labels with the node's output QoS (reliable, keep last 5) on both sides;
- node -> viewer: rgb8 (colour, overlay) from the node's reliable writer to a best-effort reader
  (a viewer or planner subscribing with sensor-data QoS).
A publisher process sends `--frames` frames at `--rate` Hz once matched; a subscriber process counts
the frames that arrive and their latency (header stamp -> callback, same clock). Each process gets
its own environment, so the profile (or Fast DDS's LARGE_DATA builtin transports) can be given to the
publisher only, the subscriber only, or both. All on this machine in a private domain (ROS_DOMAIN_ID
from the pid, localhost discovery). Prints markdown tables; docs/ros.md records the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

from fast_scnn_core.errors import ConfigError
from fast_scnn_core.limits import parse_size
from fast_scnn_ros.tools.probe import use_private_domain

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "config/fastdds_large_images.xml"
TOPIC = "/bench/image"

# Fast DDS environment of one process: nothing (Fast DDS defaults), the shipped profile, or LARGE_DATA.
DEFAULTS: dict[str, str] = {}
WITH_PROFILE = {"FASTDDS_DEFAULT_PROFILES_FILE": str(PROFILE)}
LARGE_DATA = {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}
# (label, publisher environment, subscriber environment)
PAIRINGS = (
    ("defaults on both sides", DEFAULTS, DEFAULTS),
    ("profile on the subscriber only", DEFAULTS, WITH_PROFILE),
    ("profile on the publisher only", WITH_PROFILE, DEFAULTS),
    ("profile on both sides", WITH_PROFILE, WITH_PROFILE),
    ("LARGE_DATA on both sides", LARGE_DATA, LARGE_DATA),
)
# (link, encoding, publisher reliability, subscriber reliability)
LINKS = (
    ("camera -> node", "rgb8", "best_effort", "best_effort"),
    ("node -> planner", "mono8", "reliable", "reliable"),
    ("node -> viewer", "rgb8", "reliable", "best_effort"),
)


def qos(reliability: str):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    policy = ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE
    return QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=policy)


def publish(width: int, height: int, encoding: str, reliability: str, frames: int, rate: float) -> None:
    """Publish `frames` images once the subscription is matched; print how many were sent."""
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    from fast_scnn_ros.conversions import numpy_to_image

    rclpy.init()
    node = rclpy.create_node("bench_publisher")
    pub = node.create_publisher(Image, TOPIC, qos(reliability))
    deadline = time.monotonic() + 20.0
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let both sides finish matching (the subscriber may see us later than we see it)
    shape = (height, width, 3) if encoding == "rgb8" else (height, width)
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    for index in range(frames):
        msg = numpy_to_image(pixels, encoding)
        msg.header.frame_id = str(index)
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        time.sleep(1.0 / rate)
    print(json.dumps({"sent": frames}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


def subscribe(reliability: str) -> None:
    """Count the frames that arrive and their latency until stdin closes, then print both."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.time import Time
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_subscriber")
    latency: dict[str, float] = {}

    def on_image(msg: Image) -> None:
        latency[msg.header.frame_id] = (node.get_clock().now() - Time.from_msg(msg.header.stamp)).nanoseconds / 1e6

    node.create_subscription(Image, TOPIC, on_image, qos(reliability))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    stdin_closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stdin_closed.set()), daemon=True).start()
    print("ready", flush=True)
    while not stdin_closed.is_set():
        executor.spin_once(timeout_sec=0.1)
    values = sorted(latency.values())
    print(json.dumps({"received": len(values), "median_ms": values[len(values) // 2] if values else None}), flush=True)


def trial(link: tuple[str, ...], size: tuple[int, int], args: argparse.Namespace, pub_env: dict, sub_env: dict):
    """(frames sent, frames received, median latency ms) for one link, one size, one pairing of environments."""
    _, encoding, pub_reliability, sub_reliability = link
    base = {**os.environ, "PYTHONPATH": str(REPO)}
    for name in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTDDS_BUILTIN_TRANSPORTS"):
        base.pop(name, None)
    me = [sys.executable, __file__]
    receiver = subprocess.Popen(
        [*me, "--role", "subscribe", "--reliability", sub_reliability],
        env={**base, **sub_env},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdout.readline().strip() == "ready"
    options = ["--encoding", encoding, "--sizes", "x".join(map(str, size)), "--frames", str(args.frames)]
    sender = subprocess.run(
        [*me, "--role", "publish", "--reliability", pub_reliability, *options, "--rate", str(args.rate)],
        env={**base, **pub_env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    time.sleep(2.0)  # the last frames in flight (reliable fragments may still be repaired)
    result = json.loads(receiver.communicate(input="", timeout=60)[0].splitlines()[-1])  # EOF: stop counting
    return json.loads(sender.stdout.splitlines()[-1])["sent"], result["received"], result["median_ms"]


def width_height(text: str) -> tuple[int, int]:
    """`1024x512` -> (1024, 512): this bench names camera sizes width first, as docs/ros.md's tables do."""
    try:
        width, height = parse_size(text, minimum=1, what="--sizes")  # the one parser; its two sides read as W, H
    except ConfigError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 1024x512") from None
    return width, height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=width_height, default=[(1024, 512), (2048, 1024)], help="WxH")
    parser.add_argument("--frames", type=int, default=40, help="frames per trial (default: 40)")
    parser.add_argument("--rate", type=float, default=10.0, help="publisher rate in Hz (default: 10)")
    parser.add_argument("--role", choices=("publish", "subscribe"), help=argparse.SUPPRESS)
    parser.add_argument("--encoding", default="rgb8", help=argparse.SUPPRESS)
    parser.add_argument("--reliability", default="best_effort", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "publish":
        publish(*args.sizes[0], args.encoding, args.reliability, args.frames, args.rate)
        return
    if args.role == "subscribe":
        subscribe(args.reliability)
        return

    use_private_domain()  # like the tests; both processes of every trial inherit it
    print(f"{platform.machine()}, {os.cpu_count()} cores; {args.frames} frames at {args.rate:g} Hz per cell")
    for link in LINKS:
        name, encoding, pub_reliability, sub_reliability = link
        channels = 3 if encoding == "rgb8" else 1
        qos = f"{pub_reliability} writer, {sub_reliability} reader, keep last 5"
        print(f"\n{name}: {encoding}, {qos} — received / sent (median latency)\n")
        sizes = [f"{w}x{h} {encoding} ({w * h * channels / 2**20:.1f} MiB)" for w, h in args.sizes]
        print("| publisher / subscriber settings | " + " | ".join(sizes) + " |")
        print("|---|" + "---:|" * len(sizes))
        for label, pub_env, sub_env in PAIRINGS:
            cells = []
            for size in args.sizes:
                sent, received, median_ms = trial(link, size, args, pub_env, sub_env)
                cells.append(f"{received} / {sent}" + (f" ({median_ms:.0f} ms)" if median_ms is not None else ""))
            print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
