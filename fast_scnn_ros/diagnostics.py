"""The node's /diagnostics message: one DiagnosticStatus for the engine and all cameras, and in a camera
ring one more per camera, named as diagnostic_updater names tasks (names.diagnostic_name)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from fast_scnn_ros.engine import Engine
from fast_scnn_ros.names import diagnostic_name
from fast_scnn_ros.pipeline import Report

GroundStatus = tuple[bool, str, int, int]  # projecting, state (or why not), frames projected, frames skipped


def diagnostic_array(
    node_name: str,
    engine: Engine,
    cameras: Sequence[tuple[str, Report]],
    memory_releases: int,
    now: float,
    ground: Sequence[GroundStatus] | None = None,
) -> DiagnosticArray:
    """The statuses of one diagnostics period from each camera's (name, report); `now` is perf_counter's; `ground`
    per camera when ground.enabled (a camera that is not projecting makes its status WARN, with the reason).

    A single camera has the name "" and gets only the node's status; its header stamp is the caller's to set.
    """
    engine_values = {
        "device": str(engine.segmenter.device),
        "backend": engine.segmenter.backend,
        "precision": engine.segmenter.precision,
        # why `auto` chose this backend/precision (openvino missing, no accuracy gate, ...); "" when asked for
        "backend_reason": engine.segmenter.choice.reason,
        "cameras": len(cameras),
        "memory_releases": memory_releases,
        "engine_loaded_at": engine.loaded_at.isoformat(timespec="milliseconds"),
    }
    hardware_id = str(engine.segmenter.device)
    reports = [report for _, report in cameras]
    node_ground = _merge_ground(ground, [name for name, _ in cameras]) if ground else None
    statuses = [
        segmentation_status(
            diagnostic_name(node_name), Report.merge(reports), now, hardware_id, engine_values, node_ground
        )
    ]
    if cameras[0][0]:  # a ring: one status per camera besides the node's
        for index, (camera, report) in enumerate(cameras):
            camera_ground = ground[index] if ground else None
            statuses.append(
                segmentation_status(diagnostic_name(node_name, camera), report, now, hardware_id, {}, camera_ground)
            )
    return DiagnosticArray(status=statuses)


def _merge_ground(ground: Sequence[GroundStatus], names: Sequence[str]) -> GroundStatus:
    """The node's ground status: projecting when every camera is, else the first reason, named by its camera."""
    problems = [(name, state) for name, (ok, state, _, _) in zip(names, ground, strict=True) if not ok]
    state = "projecting" if not problems else "; ".join(f"{n}: {s}" if n else s for n, s in problems[:2])
    return (not problems, state, sum(g[2] for g in ground), sum(g[3] for g in ground))


def segmentation_status(
    name: str,
    report: Report,
    now: float,
    hardware_id: str,
    extra: Mapping[str, Any],
    ground: GroundStatus | None = None,
) -> DiagnosticStatus:
    """OK "running" or "waiting for images", WARN naming the bad messages and failed frames of the period, or why
    the ground projection is not running."""
    values = {**report.values(now), **extra}
    if ground is not None:
        values.update(ground=ground[1], ground_frames=ground[2], ground_skipped=ground[3])
    level, message = DiagnosticStatus.OK, "running"
    if report.delta["bad"] or report.delta["errors"]:
        level = DiagnosticStatus.WARN
        problems = [f"{report.delta['bad']} bad message(s)"] * bool(report.delta["bad"])
        problems += [f"{report.delta['errors']} failed frame(s)"] * bool(report.delta["errors"])
        message = f"{', '.join(problems)}: {report.last_error}"
    elif report.delta["received"] == 0:
        message = "waiting for images"
    if ground is not None and not ground[0] and ground[2] + ground[3]:  # a frame came and was not projected
        level = max(level, DiagnosticStatus.WARN)
        message = (
            f"ground projection: {ground[1]}" if message == "running" else f"{message}; ground projection: {ground[1]}"
        )
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v)) for k, v in values.items()],
    )
