"""Soak: the installed node fed at twice its sustainable rate for a long run, with runtime parameter changes.

    python bench/soak.py --duration 600 --size 512x1024 [--checkpoint model.pt] [--out bench/results]

Starts the installed segmentation_node (fast_scnn_ros.tools.process; own DDS domain, localhost, the large-
images profile) and plays a camera and its consumers in this process (fast_scnn_ros.tools.probe): rgb8
frames + camera_info with sensor-data QoS, subscriptions to every output (labels, color, overlay,
confidence, masks, camera_info), so the node computes all of them. First it measures the sustainable rate (one frame at
a time, the next sent when the labels of the last arrive), then publishes at `--rate-factor` (2) times
that rate for `--duration` seconds, and every `--change-every` seconds sends the next parameter change
of SCHEDULE through the node's parameter service (the last step of a cycle restores the start). It
records per labelled frame the latency (header stamp -> labels arrival, one clock), once a second the
node's RSS, threads, CPU time (psutil) and this machine's load average, and the node's /diagnostics
counters (reported over the soak, the measurement's frames subtracted; RSS also as a least-squares
slope after warm-up). Writes soak_<H>x<W>_<duration>s.json and .md under --out and exits 0 when the run passed:

- the node ran to the end and exited 0 on Ctrl-C (SIGINT);
- no errors and no bad messages in its diagnostics since it started, and labels kept arriving to the end;
- every parameter change was accepted, or refused where SCHEDULE expects it;
- memory flat: the median RSS of the last `--window` seconds is at most `--rss-tolerance` % above that
  of the first `--window` seconds after `--warmup` (one cycle of SCHEDULE by default: every
  configuration has been built once by then).

Without --checkpoint an untrained 19-class checkpoint is used (latency does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from fast_scnn_core.atomic import atomic_write_text
from fast_scnn_core.errors import ConfigError
from fast_scnn_core.labels import CITYSCAPES, ClassSet, mask_topic_names
from fast_scnn_core.limits import MAX_SIDE, MIN_SIDE, parse_size
from fast_scnn_core.model.checkpoint import class_set_of, load_checkpoint, save_checkpoint
from fast_scnn_core.model.network import FastSCNN
from fast_scnn_ros.conversions import numpy_to_image
from fast_scnn_ros.names import (
    CAMERA_INFO_OUT_TOPIC,
    CAMERA_INFO_TOPIC,
    COLOR_TOPIC,
    CONFIDENCE_TOPIC,
    IMAGE_TOPIC,
    LABELS_TOPIC,
    MASKS_TOPIC,
    OVERLAY_TOPIC,
)
from fast_scnn_ros.tools.probe import Probe, Stamp, stamp_key, use_private_domain
from fast_scnn_ros.tools.process import NodeProcess, use_large_images_profile

REPO = Path(__file__).resolve().parents[1]
CAMERA_IMAGE, CAMERA_INFO = "/soak/image", "/soak/camera_info"  # the camera's topics, remapped onto the node's
COUNTERS = ("frames_received", "frames_processed", "frames_dropped", "bad_messages", "errors")
MASKS = 2  # the schedule's mask_classes: the first two classes


@dataclass(frozen=True)
class Change:
    """One step of the schedule: parameters set together (atomically) and whether the node must accept them."""

    values: dict[str, object]
    accepted: bool = True


def schedule(height: int, width: int, classes: ClassSet) -> list[Change]:
    """A cycle through every kind of runtime change a user makes; its last step restores the start."""
    return [
        Change({"mode": "prob"}),  # a new engine; the confidence topic appears
        Change({"mask_classes": list(classes.names[:MASKS])}),  # mask publishers appear
        Change({"publish_overlay": False}),  # a publisher disappears
        Change({"width": width // 2, "height": height // 2}),  # a new engine at half resolution
        Change({"width": MAX_SIDE + 1}, accepted=False),  # out of range: refused, the node keeps running
        Change({"mode": "cls", "width": 0, "height": 0, "mask_classes": [], "publish_overlay": True}),
    ]


@dataclass
class Record:
    """Everything the run observed; `summary()` turns it into the report."""

    sent: int = 0  # frames published in the soak (those of the rate measurement: `sent_measuring`)
    sent_measuring: int = 0
    labels: list[tuple[float, float]] = field(default_factory=list)  # (seconds into the soak, latency ms)
    outputs: dict[str, int] = field(default_factory=dict)  # topic -> messages received
    samples: list[dict[str, float]] = field(default_factory=list)  # once a second
    changes: list[dict[str, object]] = field(default_factory=list)
    diagnostics: dict[str, str] = field(default_factory=dict)  # the newest report
    diagnostics_at_start: dict[str, str] = field(default_factory=dict)  # the report when the soak began


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {key: float("nan") for key in ("p50", "p90", "p99", "max")}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(max(values))}


class Soak:
    """This process's side of the run: camera, consumers, parameter client and sampler, on one probe."""

    def __init__(self, node_process: NodeProcess, height: int, width: int, classes: ClassSet) -> None:
        self.process = node_process
        self.psutil = psutil.Process(node_process.pid)  # segmentation_node execs python: the same pid
        self.probe = Probe("fast_scnn_soak")
        self.record = Record()
        self.soak_start = float("inf")
        rng = np.random.default_rng(0)
        self.frames = [numpy_to_image(rng.integers(0, 256, (height, width, 3), np.uint8), "rgb8") for _ in range(4)]
        self.camera = self.probe.camera(CAMERA_IMAGE, CAMERA_INFO)
        self.sent_at: dict[Stamp, float] = {}
        masks = [f"{MASKS_TOPIC}/{name}" for name in mask_topic_names(classes)[:MASKS]]
        outputs = [(Image, t) for t in (LABELS_TOPIC, COLOR_TOPIC, OVERLAY_TOPIC, CONFIDENCE_TOPIC, *masks)]
        self.outputs = {  # every output subscribed, so that the node computes all of them
            topic.removeprefix("segmentation/"): self.probe.collect(msg_type, f"/{topic}", keep=False)
            for msg_type, topic in [*outputs, (CameraInfo, CAMERA_INFO_OUT_TOPIC)]
        }

    def close(self) -> None:
        self.probe.close()

    def spin_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Spin until `condition()` holds; False after `timeout` or once the node has exited."""
        return self.probe.spin_until(condition, timeout, self.process)

    def publish(self) -> Stamp:
        """One camera frame (image + camera_info, same header, stamped now); its stamp."""
        header = self.probe.header("soak_camera", now=True)
        stamp = stamp_key(header.stamp)
        self.sent_at[stamp] = time.perf_counter()
        self.camera.publish(self.frames[self.record.sent % len(self.frames)], header)
        self.record.sent += 1
        return stamp

    def sustainable_rate(self, seconds: float, warmup_frames: int = 3) -> float:
        """Labelled frames per second with one frame in flight at a time (all outputs subscribed)."""
        if not self.spin_until(self.probe.parameter_client(atomically=True).service_is_ready, 30):
            raise RuntimeError(f"the node's parameter services did not come up:\n{self.process.output()[-3000:]}")
        labels = self.outputs["labels"].arrivals
        start, done = 0.0, -warmup_frames  # frames before 0 are warm-up (engine arenas, DDS matching)
        while done <= 0 or time.monotonic() - start < seconds:
            for _ in range(10):  # best effort: a frame lost in transport is sent again
                stamp = self.publish()
                if self.spin_until(lambda s=stamp: s in labels, 5.0):
                    break
            else:
                raise RuntimeError(f"no labels for 10 frames in a row:\n{self.process.output()[-3000:]}")
            done += 1
            if done == 0:
                start = time.monotonic()
        return done / (time.monotonic() - start)

    def run(self, rate: float, duration: float, change_every: float, steps: list[Change]) -> None:
        """Publish at `rate` Hz for `duration` s, changing parameters and sampling the node as it goes."""
        # The measurement left no frame in flight: the next report holds its counts, subtracted at the end.
        self.next_report()
        self.record.diagnostics_at_start = self.probe.diagnostics()
        self.record.sent_measuring, self.record.sent = self.record.sent, 0
        for collector in self.outputs.values():
            collector.clear()
        period, now = 1.0 / rate, time.perf_counter()
        self.soak_start = now
        end, next_frame, next_change, next_sample = now + duration, now, now + change_every, now
        cpu_start = sum(self.psutil.cpu_times()[:2])
        while (now := time.perf_counter()) < end and self.process.running():
            if now >= next_frame:
                self.publish()
                next_frame = max(next_frame + period, now)  # a late frame is not made up for with a burst
            if now >= next_change:
                self._change(steps[len(self.record.changes) % len(steps)], now - self.soak_start)
                next_change += change_every
            if now >= next_sample:
                self._sample(now - self.soak_start, cpu_start)
                next_sample += 1.0
            self.probe.executor.spin_once(timeout_sec=max(0.0, min(next_frame, next_change, next_sample, end) - now))
        # The answers still owed (a new engine takes seconds to build), the next diagnostics report, the
        # node's state once more.
        self.spin_until(lambda: all("accepted" in c for c in self.record.changes), 60.0)
        self.next_report()
        self._sample(time.perf_counter() - self.soak_start, cpu_start)
        self._tally()

    def _tally(self) -> None:
        """The soak's labels (seconds into the soak, latency ms), outputs received and newest diagnostics."""
        labels = self.outputs["labels"].arrivals
        self.record.labels = sorted(
            (t - self.soak_start, 1e3 * (t - self.sent_at[stamp]))
            for stamp, t in labels.items()
            if stamp in self.sent_at
        )
        self.record.outputs = {name: c.count for name, c in self.outputs.items() if c.count}
        self.record.diagnostics = self.probe.diagnostics()

    def next_report(self) -> None:
        """Wait for the node's next /diagnostics report (one a second)."""
        reports = len(self.probe.reports())
        self.spin_until(lambda: len(self.probe.reports()) > reports, 5.0)

    def _change(self, change: Change, at: float) -> None:
        entry: dict[str, object] = {"t": round(at, 1), "values": change.values, "expected": change.accepted}
        self.record.changes.append(entry)

        def answered(future) -> None:
            result = future.result().result
            entry.update(accepted=result.successful, reason=result.reason, answer_s=round(time.monotonic() - sent, 2))

        sent = time.monotonic()
        self.probe.request_parameters(change.values, atomically=True).add_done_callback(answered)

    def _sample(self, at: float, cpu_start: float) -> None:
        try:
            with self.psutil.oneshot():
                sample = {
                    "t": round(at, 1),
                    "rss_mb": self.psutil.memory_info().rss / 2**20,
                    "threads": self.psutil.num_threads(),
                    "cpu_s": sum(self.psutil.cpu_times()[:2]) - cpu_start,
                }
        except psutil.NoSuchProcess:
            return
        sample["load_1min"] = os.getloadavg()[0]
        sample["labels"] = self.outputs["labels"].count
        self.record.samples.append(sample)


def summary(record: Record, options: argparse.Namespace, rate: float, alive: bool, exit_status: int) -> dict:
    """The report: figures, the pass/fail checks and the time series."""
    latencies = [latency for _, latency in record.labels]
    samples = record.samples
    warmup, window, duration = options.warmup, options.window, options.duration
    first = [s["rss_mb"] for s in samples if warmup <= s["t"] < warmup + window]
    last = [s["rss_mb"] for s in samples if s["t"] >= duration - window]
    rss_start, rss_end = (float(np.median(v)) if v else float("nan") for v in (first, last))
    # The trend after warm-up (least squares): a leak shows as a steady slope even within the tolerance.
    settled = [(s["t"], s["rss_mb"]) for s in samples if s["t"] >= warmup]
    slope = float(np.polyfit(*zip(*settled, strict=True), 1)[0]) * 60 if len(settled) >= 2 else float("nan")
    totals, at_start = (
        {key: int(float(report.get(key, "-1"))) for key in COUNTERS}
        for report in (record.diagnostics, record.diagnostics_at_start)
    )
    counters = {key: totals[key] - at_start[key] for key in COUNTERS}  # over the soak, like the latencies
    growth = 100 * (rss_end / rss_start - 1)
    late_labels = sum(1 for t, _ in record.labels if t >= duration - window)
    checks = {
        "node ran to the end and exited 0 on SIGINT": alive and exit_status == 0,
        "no errors, no bad messages": totals["errors"] == 0 and totals["bad_messages"] == 0,
        "labels kept arriving (last window)": late_labels > 0,
        "parameter changes answered as expected": bool(record.changes)
        and all(c.get("accepted") == c["expected"] for c in record.changes),
        f"RSS flat (last window at most {options.rss_tolerance:g} % above the first)": growth <= options.rss_tolerance,
    }
    cpu = samples[-1]["cpu_s"] if samples else float("nan")
    loads = [s["load_1min"] for s in samples]
    return {
        "passed": all(checks.values()),
        "checks": checks,
        "command": " ".join(["python", "bench/soak.py", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or ''}".strip(", "),
        "size": options.size,
        "duration_s": duration,
        "sustainable_fps": rate,
        "publish_fps": rate * options.rate_factor,
        "frames_sent": record.sent,
        "frames_sent_measuring": record.sent_measuring,
        "labels_received": len(latencies),
        "outputs_received": record.outputs,
        "latency_ms": percentiles(latencies),
        "rss_mb": {
            "at_start": samples[0]["rss_mb"] if samples else float("nan"),
            "first_window": rss_start,
            "last_window": rss_end,
            "growth_percent": growth,
            "slope_mb_per_min": slope,
        },
        "rss_max_mb": max((s["rss_mb"] for s in samples), default=float("nan")),
        "threads": {"first": samples[0]["threads"], "last": samples[-1]["threads"]} if samples else {},
        "node_cpu_s_per_labelled_frame": cpu / max(1, counters["frames_processed"]),
        "counters": counters,
        "counters_since_start": totals,
        "load_1min": {"mean": float(np.mean(loads)), "max": float(max(loads))} if loads else {},
        "changes": record.changes,
        "changes_accepted": sum(c.get("accepted") is True for c in record.changes),
        "changes_refused": sum(c.get("accepted") is False for c in record.changes),
        "samples": samples,
    }


def markdown(report: dict, options: argparse.Namespace) -> str:
    lat, rss, counters = report["latency_ms"], report["rss_mb"], report["counters"]
    load = report["load_1min"] or {"mean": float("nan"), "max": float("nan")}
    lines = [
        f"# Soak: {report['size']} for {report['duration_s']:g} s — {'PASSED' if report['passed'] else 'FAILED'}",
        "",
        f"Command: `{report['command']}`; machine: {report['machine']}; 1-min load average during the run: "
        f"mean {load['mean']:.1f}, max {load['max']:.1f}.",
        "",
        "| duration | size | sustainable / published fps | labels / frames sent | latency p50 / p90 / p99 / max ms "
        "| RSS start / after warm-up / end MB (growth, slope) | received / processed / dropped / bad / errors "
        "| changes accepted / refused |",
        "|---|---|---|---|---|---|---|---|",
        f"| {report['duration_s']:g} s | {report['size']} | {report['sustainable_fps']:.1f} / "
        f"{report['publish_fps']:.1f} | {report['labels_received']} / {report['frames_sent']} | "
        f"{lat['p50']:.0f} / {lat['p90']:.0f} / {lat['p99']:.0f} / {lat['max']:.0f} | "
        f"{rss['at_start']:.0f} / {rss['first_window']:.0f} / {rss['last_window']:.0f} "
        f"({rss['growth_percent']:+.1f} %, {rss['slope_mb_per_min']:+.2f} MB/min) | "
        + " / ".join(str(counters[k]) for k in COUNTERS)
        + f" | {report['changes_accepted']} / {report['changes_refused']} |",
        "",
        *[f"- [{'x' if ok else ' '}] {check}" for check, ok in report["checks"].items()],
        "",
        f"Node CPU time per labelled frame: {1e3 * report['node_cpu_s_per_labelled_frame']:.0f} ms; threads "
        f"{report['threads'].get('first')} -> {report['threads'].get('last')}; peak RSS {report['rss_max_mb']:.0f} MB.",
        f"Outputs received: {', '.join(f'{k} {v}' for k, v in sorted(report['outputs_received'].items()))}.",
        "",
        f"Parameter changes ({len(report['changes'])}, every {options.change_every:g} s):",
        "",
        "| t s | values | expected | answer | seconds to answer |",
        "|---|---|---|---|---|",
    ]
    for change in report["changes"][: 2 * options.steps_per_cycle]:  # two cycles show the pattern
        answer = {True: "accepted", False: f"refused: {change.get('reason', '')[:80]}", None: "no answer"}
        expected = "accept" if change["expected"] else "refuse"
        lines.append(
            f"| {change['t']} | `{json.dumps(change['values'])}` | {expected} | {answer[change.get('accepted')]} "
            f"| {change.get('answer_s', '')} |"
        )
    lines += [
        "",
        "RSS over time:",
        "",
        "| t s | RSS MB | threads | labels so far | load (1 min) |",
        "|---|---|---|---|---|",
    ]
    step = max(1, len(report["samples"]) // 20)
    for s in report["samples"][::step] + report["samples"][-1:]:
        lines.append(f"| {s['t']:.0f} | {s['rss_mb']:.0f} | {s['threads']} | {s['labels']} | {s['load_1min']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds at the overload rate (default: 600)")
    parser.add_argument("--size", default="512x1024", help="camera HxW (default: 512x1024)")
    parser.add_argument("--checkpoint", type=Path, help="default: an untrained 19-class checkpoint")
    parser.add_argument("--rate-factor", type=float, default=2.0, help="times the sustainable rate (default: 2)")
    parser.add_argument("--measure", type=float, default=20.0, help="seconds measuring the rate (default: 20)")
    parser.add_argument("--change-every", type=float, default=10.0, help="seconds between changes (default: 10)")
    parser.add_argument("--warmup", type=float, help="seconds before the first RSS window (default: one cycle)")
    parser.add_argument("--window", type=float, default=60.0, help="RSS window in seconds (default: 60)")
    parser.add_argument("--rss-tolerance", type=float, default=10.0, help="allowed RSS growth in %% (default: 10)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results", help="folder for the JSON and Markdown")
    options = parser.parse_args(argv)
    try:
        height, width = parse_size(options.size, minimum=2 * MIN_SIDE)
    except ConfigError as error:
        parser.error(f"{error} (the schedule infers at half size)")
    options.steps_per_cycle = len(schedule(height, width, CITYSCAPES))
    if options.warmup is None:
        options.warmup = options.steps_per_cycle * options.change_every
    options.window = min(options.window, max(1.0, (options.duration - options.warmup) / 2))

    use_private_domain()  # like the tests
    use_large_images_profile()  # this process publishes the camera-sized frames
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = options.checkpoint
        if checkpoint is None:
            checkpoint = Path(tmp) / "untrained19.pt"
            save_checkpoint(checkpoint, FastSCNN(19), CITYSCAPES)
        classes = class_set_of(load_checkpoint(checkpoint))
        parameters = {"checkpoint": checkpoint, "diagnostics_period": 1.0}
        node_process = NodeProcess(
            Path(tmp) / "node.log", parameters, {IMAGE_TOPIC: CAMERA_IMAGE, CAMERA_INFO_TOPIC: CAMERA_INFO}
        )
        rclpy.init()
        soak = Soak(node_process, height, width, classes)
        alive, exit_status = False, None
        try:
            soak.probe.wait_ready(node_process, CAMERA_IMAGE, qos=qos_profile_sensor_data)
            rate = soak.sustainable_rate(options.measure)
            print(f"sustainable rate {rate:.2f} fps; publishing at {options.rate_factor * rate:.2f} fps", flush=True)
            soak.run(
                options.rate_factor * rate, options.duration, options.change_every, schedule(height, width, classes)
            )
        finally:
            soak.close()
            rclpy.try_shutdown()
            alive = node_process.running()
            exit_status = node_process.stop(timeout=60)
            log = node_process.output()
        report = summary(soak.record, options, rate, alive, exit_status)
    name = f"soak_{height}x{width}_{options.duration:g}s"
    atomic_write_text(options.out / f"{name}.json", json.dumps(report, indent=1) + "\n")
    atomic_write_text(options.out / f"{name}.md", markdown(report, options))
    print(markdown(report, options))
    if not report["passed"]:
        print(f"node output (tail):\n{log[-3000:]}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
