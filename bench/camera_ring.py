"""A camera ring: four cameras in one node (`cameras: [front, rear, left, right]`) against four single-camera nodes.

    python bench/camera_ring.py [--size 512x1024] [--rate 10] [--seconds 30] [--warmup 10] [--runs 2]
                                [--cameras front rear left right]

Three setups, one after the other, with the same cameras: one node running one frame per engine run
(`max_batch: 1`, the default on CPU), one node running a round's frames as one batch (`max_batch` =
the number of cameras; on a GPU this pair gives the batch's speed-up), and one single-camera node per
camera: the plain node pushed into the camera's namespace (`-r __ns:=/front`), so its topics are the
ring's. Each setup runs `--runs` times, in reversed order every other run (the machine's load drifts).
This process publishes one rgb8 stream per camera (`/<camera>/image`, sensor-data QoS, `--rate` Hz
each, all cameras at the same instants, as cameras triggered together) and subscribes each camera's
`/<camera>/segmentation/labels`. After `--warmup` seconds it measures for `--seconds`:
- memory of the node processes at the end: RSS summed (what `top` shows per process, so shared library
  pages count once per process) and PSS (shared pages split between the processes that map them);
- CPU time (user + system) of the node processes per labelled frame, and per second (the cores they
  got: on a machine shared with other work, more processes and threads get a larger share);
- labelled frames/s of each camera, and latency from publishing a frame to receiving its labels.
Default backend (`backend: auto`: onnxruntime on CPU), untrained 19-class checkpoint (speed and memory
do not depend on the weights), labels only subscribed, the Fast DDS large-images profile in every
process. Prints markdown tables; docs/ros.md records the numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from fast_scnn_core.labels import CITYSCAPES
from fast_scnn_core.limits import parse_size
from fast_scnn_core.model.checkpoint import save_checkpoint
from fast_scnn_core.model.network import FastSCNN
from fast_scnn_ros.conversions import numpy_to_image
from fast_scnn_ros.names import LABELS_TOPIC
from fast_scnn_ros.tools.probe import Collector, Probe, Stamp, stamp_key, use_private_domain
from fast_scnn_ros.tools.process import NodeProcess, use_large_images_profile

START_TIMEOUT = 300.0  # four nodes importing torch and exporting the model at once on a loaded 2-core machine
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class NodeSetup:
    """One node process of a setup: its parameters and the namespace it is pushed into ("" = the root)."""

    parameters: dict[str, object]
    namespace: str = ""

    def start(self, log: Path) -> NodeProcess:
        """In this process's session, as `ros2 launch` runs its nodes: in sessions of their own, four nodes
        took twice the CPU of one on this shared machine (Linux shares it between sessions first)."""
        ros_args = ["-r", f"__ns:={self.namespace}"] if self.namespace else []
        return NodeProcess(log, self.parameters, ros_args=ros_args, own_session=False)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of proc(5))


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of a process in MB."""
    lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    rollup = {key: int(value.split()[0]) / 1024 for key, value in (line.split(":", 1) for line in lines)}
    return rollup["Rss"], rollup["Pss"]


@dataclass
class Result:
    rss_mb: float
    pss_mb: float
    cpu_ms_per_frame: float
    fps: dict[str, float]  # labelled frames/s per camera
    latency_ms: list[float]

    @property
    def total_fps(self) -> float:
        return sum(self.fps.values())

    @property
    def cores(self) -> float:
        """CPU seconds the nodes used per second: their share of a machine shared with other work."""
        return self.cpu_ms_per_frame * self.total_fps / 1e3

    @classmethod
    def mean(cls, runs: list[Result]) -> Result:
        """The runs' means (memory, CPU, frames/s) and their latencies together."""
        return cls(
            rss_mb=float(np.mean([r.rss_mb for r in runs])),
            pss_mb=float(np.mean([r.pss_mb for r in runs])),
            cpu_ms_per_frame=float(np.mean([r.cpu_ms_per_frame for r in runs])),
            fps={camera: float(np.mean([r.fps[camera] for r in runs])) for camera in runs[0].fps},
            latency_ms=[ms for r in runs for ms in r.latency_ms],
        )

    def latency(self, percentile: float) -> float:
        return float(np.percentile(self.latency_ms, percentile)) if self.latency_ms else float("nan")


def wait_ready(probe: Probe, nodes: dict[str, NodeProcess], cameras: list[str]) -> None:
    """Until every node is up and every camera's stream is subscribed."""
    for namespace, proc in nodes.items():  # a node pushed into /<camera> is up once it takes that camera's frames
        camera = namespace.lstrip("/") or cameras[0]
        probe.wait_ready(
            proc, f"/{camera}/image", qos=qos_profile_sensor_data, namespace=namespace, timeout=START_TIMEOUT
        )
    publishers = [probe.publisher(Image, f"/{camera}/image", qos_profile_sensor_data) for camera in cameras]
    probe.spin_until(lambda: all(p.get_subscription_count() for p in publishers), timeout=START_TIMEOUT)


@dataclass
class Window:
    """What one streaming run saw: send times by (camera, stamp), the nodes' CPU seconds and memory."""

    start: float
    end: float
    sent: dict[tuple[str, Stamp], float]
    cpu_s: float = 0.0
    memory: tuple[tuple[float, float], ...] = ()


def stream(
    probe: Probe, nodes: dict[str, NodeProcess], frames: dict[str, Image], options: argparse.Namespace
) -> Window:
    """Publish every camera's frame at `--rate`, all at the same instants; sample the nodes over the window."""
    start = time.perf_counter()
    window = Window(start + options.warmup, start + options.warmup + options.seconds, {})
    cpu_start: float | None = None
    next_send = start
    while time.perf_counter() < window.end + 2.0:  # labels of the window's last frames arrive after it
        now = time.perf_counter()
        if next_send <= now < window.end:
            header = probe.header()
            for camera, frame in frames.items():
                frame.header = header
                probe.publisher(Image, f"/{camera}/image", qos_profile_sensor_data).publish(frame)
                window.sent[(camera, stamp_key(header.stamp))] = time.perf_counter()
            next_send += 1.0 / options.rate
        if cpu_start is None and now >= window.start:
            cpu_start = sum(cpu_seconds(n.pid) for n in nodes.values())
        if not window.memory and now >= window.end:
            window.cpu_s = sum(cpu_seconds(n.pid) for n in nodes.values()) - cpu_start
            window.memory = tuple(memory_mb(n.pid) for n in nodes.values())
        probe.executor.spin_once(timeout_sec=0.001)
    return window


def measure(nodes: dict[str, NodeProcess], frames: dict[str, Image], options: argparse.Namespace) -> Result:
    """Stream every camera to the running nodes (by namespace); measure after the warm-up."""
    cameras = list(frames)
    probe = Probe("camera_ring_bench")
    try:
        labels: dict[str, Collector] = {
            camera: probe.collect(Image, f"/{camera}/{LABELS_TOPIC}", keep=False) for camera in cameras
        }
        wait_ready(probe, nodes, cameras)
        window = stream(probe, nodes, frames, options)
    finally:
        probe.close()
    arrivals = {(camera, stamp): t for camera, c in labels.items() for stamp, t in c.arrivals.items()}
    labelled = [key for key, t in window.sent.items() if window.start <= t < window.end and key in arrivals]
    return Result(
        rss_mb=sum(m[0] for m in window.memory),
        pss_mb=sum(m[1] for m in window.memory),
        cpu_ms_per_frame=1e3 * window.cpu_s / max(len(labelled), 1),
        fps={camera: sum(key[0] == camera for key in labelled) / options.seconds for camera in cameras},
        latency_ms=[1e3 * (arrivals[key] - window.sent[key]) for key in labelled],
    )


def setups(checkpoint: Path, cameras: list[str]) -> dict[str, list[NodeSetup]]:
    """The compared setups by label: a ring node with max_batch 1 and with a round's batch, one node per camera."""
    compared = {
        f"one node, cameras: [{', '.join(cameras)}], max_batch {batch}": [
            NodeSetup({"checkpoint": checkpoint, "cameras": cameras, "max_batch": batch})
        ]
        for batch in (1, len(cameras))
    }
    compared[f"{len(cameras)} nodes, one camera each"] = [
        NodeSetup({"checkpoint": checkpoint}, f"/{camera}") for camera in cameras
    ]
    return compared


def run_setups(frames: dict[str, Image], options: argparse.Namespace) -> dict[str, list[Result]]:
    """Every setup `--runs` times, in reversed order every other run; the results by setup."""
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "untrained19.pt"
        save_checkpoint(checkpoint, FastSCNN(19), CITYSCAPES)
        compared = setups(checkpoint, list(frames))
        results: dict[str, list[Result]] = {label: [] for label in compared}
        for run in range(options.runs):
            # Reversed every other run, so that a drift in the machine's load does not favour one setup.
            for label, node_setups in list(compared.items())[:: -1 if run % 2 else 1]:
                nodes = {n.namespace: n.start(Path(tmp) / f"{run}_{n.namespace.strip('/')}.log") for n in node_setups}
                try:
                    results[label].append(measure(nodes, frames, options))
                finally:
                    for proc in nodes.values():
                        proc.stop(timeout=60)
    return results


def print_tables(results: dict[str, list[Result]], options: argparse.Namespace, loads: list[tuple[float, ...]]) -> None:
    cameras = options.cameras
    load_before, load_after = loads
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {options.size} rgb8, "
        f"{len(cameras)} cameras at {options.rate:g} Hz each, {options.seconds:g} s measured after "
        f"{options.warmup:g} s, {options.runs} run(s), backend auto, labels subscribed; load average "
        f"(1, 5, 15 min) before {', '.join(f'{v:.2f}' for v in load_before)}, "
        f"after {', '.join(f'{v:.2f}' for v in load_after)}\n"
    )
    print(
        "| setup | run | RSS of the nodes MB | PSS MB | CPU ms per labelled frame | CPU cores used "
        f"| labelled frames/s per camera ({', '.join(cameras)}) | all cameras frames/s | latency p50 / p90 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|---|")
    for label, runs in results.items():
        for run, r in enumerate(runs, 1):
            fps = ", ".join(f"{v:.2f}" for v in r.fps.values())
            print(
                f"| {label} | {run} | {r.rss_mb:.0f} | {r.pss_mb:.0f} | {r.cpu_ms_per_frame:.1f} | {r.cores:.2f} "
                f"| {fps} | {r.total_fps:.2f} | {r.latency(50):.0f} / {r.latency(90):.0f} |"
            )
    *rings, separate = (Result.mean(runs) for runs in results.values())
    for label, ring in zip(list(results)[:-1], rings, strict=True):
        print(
            f"\n{label} against {len(cameras)} nodes, mean of the runs: "
            f"RSS {100 * ring.rss_mb / separate.rss_mb:.0f} %, PSS {100 * ring.pss_mb / separate.pss_mb:.0f} %, "
            f"labelled frames/s {100 * ring.total_fps / max(separate.total_fps, 1e-9):.0f} %, CPU per labelled frame "
            f"{100 * ring.cpu_ms_per_frame / separate.cpu_ms_per_frame:.0f} %"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512x1024", help="HxW of every camera's frames")
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second of each camera")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds streamed before measuring")
    parser.add_argument("--cameras", nargs="+", default=["front", "rear", "left", "right"])
    parser.add_argument("--runs", type=int, default=2, help="runs of every setup, in reversed order each run")
    options = parser.parse_args()
    try:
        size = parse_size(options.size)
    except ValueError as error:
        parser.error(str(error))
    frames = {
        camera: numpy_to_image(np.random.default_rng(i).integers(0, 256, (*size, 3), dtype=np.uint8), "rgb8")
        for i, camera in enumerate(options.cameras)
    }
    load_before = os.getloadavg()
    use_private_domain()  # like the tests
    use_large_images_profile()  # this process publishes the camera-sized frames
    rclpy.init()
    results = run_setups(frames, options)
    rclpy.shutdown()
    print_tables(results, options, [load_before, os.getloadavg()])


if __name__ == "__main__":
    main()
