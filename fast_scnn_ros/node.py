"""SegmentationNode (`fast_scnn`): camera images in, Fast-SCNN labels, masks and visualisations out.

The subscription callback only validates a message's fields and keeps the newest frame; a worker
thread runs the Segmenter on that frame and publishes, so latency stays bounded when the camera is
faster than the model (older frames are dropped and counted). Outputs nobody subscribes to are not
computed, except labels. See docs/ros.md for the parameter and topic tables.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import typing
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header, String

from fast_scnn_core.config import quick_start_hint
from fast_scnn_core.errors import CheckpointError, ConfigError, FastSCNNError, InputError
from fast_scnn_core.inference import InferenceConfig, Segmenter, option_help, option_range
from fast_scnn_core.labels import IGNORE_INDEX, mask_class_ids, mask_topic_names
from fast_scnn_core.visualize import class_mask, colorize, overlay
from fast_scnn_ros.conversions import (
    ImageConversionError,
    check_compressed_image,
    check_image,
    compressed_to_rgb8,
    image_to_rgb8,
    numpy_to_image,
)
from fast_scnn_ros.shutdown import StopRequested, stop_on_first_signal, stopped_by_signal

NODE_NAME = "fast_scnn"
# Input names are relative so that launch remaps them (image -> /camera/image_raw); compressed input
# follows image_transport: <resolved image topic>/compressed.
IMAGE_TOPIC = "image"
CAMERA_INFO_TOPIC = "camera_info"
# Outputs are relative too: /segmentation/... in the root namespace, /<ns>/segmentation/... when pushed
# into a namespace, and remappable one by one.
LABELS_TOPIC = "segmentation/labels"
MASKS_TOPIC = "segmentation/masks"
COLOR_TOPIC = "segmentation/color"
OVERLAY_TOPIC = "segmentation/overlay"
CONFIDENCE_TOPIC = "segmentation/confidence"
CAMERA_INFO_OUT_TOPIC = "segmentation/camera_info"
CLASS_INFO_TOPIC = "segmentation/class_info"
DIAGNOSTICS_TOPIC = "/diagnostics"


def diagnostic_name(node_name: str = NODE_NAME) -> str:
    """Name of the node's DiagnosticStatus ('<node name>: segmentation', as diagnostic_updater names tasks)."""
    return f"{node_name}: segmentation"


@dataclass(frozen=True)
class ParameterSpec:
    """One ROS parameter: its default (which fixes its type), meaning and constraints."""

    name: str
    default: Any  # a value, or a Parameter.Type for an initially unset array
    description: str
    read_only: bool = False
    choices: tuple[str, ...] = ()
    integer_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None

    def descriptor(self) -> ParameterDescriptor:
        constraints = f"one of: {', '.join(self.choices)}" if self.choices else ""
        descriptor = ParameterDescriptor(
            description=self.description, read_only=self.read_only, additional_constraints=constraints
        )
        if self.integer_range:
            descriptor.integer_range = [IntegerRange(from_value=self.integer_range[0], to_value=self.integer_range[1])]
        if self.float_range:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=self.float_range[0], to_value=self.float_range[1])
            ]
        return descriptor


_READ_ONLY_ENGINE = {"checkpoint"}  # a new checkpoint may bring a new class set: restart the node


def engine_parameters() -> list[ParameterSpec]:
    """One parameter per InferenceConfig field (bool, int, float, str, Literal, str sequences).

    Meaning, bounds and choices come from the field's metadata (`option_help`, `option_range`), the one
    place the engine's own checks read too.
    """
    hints = typing.get_type_hints(InferenceConfig)
    specs = []
    for field in dataclasses.fields(InferenceConfig):
        hint = hints[field.name]
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        choices: tuple[str, ...] = ()
        if typing.get_origin(hint) is typing.Literal:
            choices = tuple(str(v) for v in typing.get_args(hint))
        elif isinstance(default, (tuple, list)):
            if not all(isinstance(v, str) for v in default):
                continue
            default = list(default) if default else Parameter.Type.STRING_ARRAY
        elif not isinstance(default, (bool, int, float, str)):
            continue  # not expressible as a ROS parameter
        specs.append(
            ParameterSpec(
                field.name,
                default,
                option_help(field.name),
                read_only=field.name in _READ_ONLY_ENGINE,
                choices=choices,
                integer_range=option_range(field.name) if type(default) is int else None,
            )
        )
    return specs


NODE_PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("input_compressed", False, "subscribe <image>/compressed (jpeg/png) instead of raw image", True),
    ParameterSpec("use_camera_info", True, "subscribe camera_info and republish it scaled to the output size", True),
    ParameterSpec(
        "qos_reliability",
        "best_effort",
        "input QoS reliability; best_effort is REP 2003 sensor-data QoS",
        True,
        choices=("best_effort", "reliable"),
    ),
    ParameterSpec("qos_depth", 5, "input and output queue depth (keep last)", True, integer_range=(1, 100)),
    ParameterSpec(
        "mask_classes",
        Parameter.Type.STRING_ARRAY,
        "class names (or their topic names) that get a segmentation/masks/<name> topic; empty = none",
    ),
    ParameterSpec("publish_color", True, "publish segmentation/color (rgb8 colour-coded labels)"),
    ParameterSpec("publish_overlay", True, "publish segmentation/overlay (rgb8 image blended with colours)"),
    ParameterSpec("publish_confidence", True, "publish segmentation/confidence (32FC1; needs mode prob)"),
    ParameterSpec("publish_camera_info", True, "publish segmentation/camera_info scaled to the output size"),
    ParameterSpec("overlay_alpha", 0.5, "weight of the colours in the overlay", float_range=(0.0, 1.0)),
    ParameterSpec("diagnostics_period", 1.0, "seconds between /diagnostics reports", True, float_range=(0.05, 60.0)),
)


def parameter_specs() -> list[ParameterSpec]:
    """Every parameter the node declares, engine options first."""
    return [*engine_parameters(), *NODE_PARAMETERS]


def scale_camera_info(info: CameraInfo, width: int, height: int, header: Header) -> CameraInfo:
    """CameraInfo for an image resized to width x height (intrinsics and ROI scaled, as image_proc's resize does)."""
    sx, sy = width / info.width, height / info.height
    out = CameraInfo(header=header, width=width, height=height, distortion_model=info.distortion_model)
    out.d, out.r = info.d, info.r
    k, p = list(info.k), list(info.p)
    k[0], k[2], k[4], k[5] = k[0] * sx, k[2] * sx, k[4] * sy, k[5] * sy
    p[0], p[2], p[3], p[5], p[6] = p[0] * sx, p[2] * sx, p[3] * sx, p[5] * sy, p[6] * sy
    out.k, out.p = k, p
    out.binning_x, out.binning_y = info.binning_x, info.binning_y
    roi = info.roi
    out.roi.x_offset, out.roi.width = round(roi.x_offset * sx), round(roi.width * sx)
    out.roi.y_offset, out.roi.height = round(roi.y_offset * sy), round(roi.height * sy)
    out.roi.do_rectify = roi.do_rectify
    return out


@dataclass(frozen=True)
class OutputSettings:
    """The runtime-changeable output parameters, swapped as a whole by the parameter callback."""

    mask_classes: tuple[int, ...]
    color: bool
    overlay: bool
    confidence: bool
    camera_info: bool
    overlay_alpha: float


@dataclass
class Frame:
    msg: Image | CompressedImage
    received: float  # perf_counter() in the subscription callback


class LatestFrame:
    """A one-frame mailbox: put() replaces an unprocessed frame (counted as dropped), take() waits for the newest."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False
        self.dropped = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify()

    def take(self) -> Frame | None:
        """The newest frame, or None once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._closed)
            frame, self._frame = self._frame, None
            return None if self._closed else frame

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Stats:
    """Counters and per-frame timings, summarised and reset each diagnostics period."""

    TIMINGS = ("wait", "convert", "inference", "publish", "end_to_end")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received = self.processed = self.bad = self.errors = 0
        self.last_error = ""
        self._window_start = perf_counter()
        self._window_counts = (0, 0, 0)
        self._timings: dict[str, list[float]] = {key: [] for key in self.TIMINGS}

    def record(self, **seconds: float) -> None:
        with self.lock:
            self.processed += 1
            for key, value in seconds.items():
                self._timings[key].append(value)

    def window(self) -> tuple[float, dict[str, float], dict[str, list[float]]]:
        """(seconds, {received, processed, bad} deltas, timings) since the last call; starts a new window."""
        with self.lock:
            now = perf_counter()
            elapsed, self._window_start = now - self._window_start, now
            counts = (self.received, self.processed, self.bad)
            delta = dict(zip(("received", "processed", "bad"), np.subtract(counts, self._window_counts), strict=True))
            self._window_counts = counts
            timings, self._timings = self._timings, {key: [] for key in self.TIMINGS}
        return elapsed, delta, timings


class SegmentationNode(Node):
    """Fast-SCNN semantic segmentation of a camera stream; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        try:
            self._setup()
        except BaseException:
            self.destroy_node()
            raise

    def _setup(self) -> None:
        self._specs = {spec.name: spec for spec in parameter_specs()}
        for spec in self._specs.values():
            self.declare_parameter(spec.name, spec.default, spec.descriptor())
        self._check_choices(self._values({}, self._specs))
        self._engine = self._engine_config({})
        if not self._engine.checkpoint:
            raise CheckpointError(
                "parameter 'checkpoint' is not set: pass checkpoint:=/path/to/model.pt (launch argument) or "
                f"-p checkpoint:=... Train one with `fast-scnn train` ({quick_start_hint()})"
            )
        self._segmenter = Segmenter.from_checkpoint(self._engine.checkpoint, self._engine)
        self._classes = self._segmenter.classes
        self._palette = self._classes.palette()
        self._mask_tokens = mask_topic_names(self._classes)
        self._settings = self._output_settings({})

        depth = self.get_parameter("qos_depth").value
        self._output_qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
        input_qos = QoSProfile(
            depth=depth,
            history=qos_profile_sensor_data.history,
            durability=qos_profile_sensor_data.durability,
            reliability=ReliabilityPolicy.BEST_EFFORT
            if self.get_parameter("qos_reliability").value == "best_effort"
            else ReliabilityPolicy.RELIABLE,
        )

        self._frames = LatestFrame()
        self._stats = Stats()
        self._camera_info: CameraInfo | None = None
        self._publish_lock = threading.Lock()  # publishers change under a parameter update
        self._publishers_by_topic: dict[str, Any] = {}
        self._sync_publishers(self._settings)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        self._class_info_pub = self.create_publisher(String, CLASS_INFO_TOPIC, latched)
        self._class_info_pub.publish(String(data=self.class_info_json()))

        if self.get_parameter("input_compressed").value:
            topic = self.resolve_topic_name(IMAGE_TOPIC) + "/compressed"
            self.create_subscription(CompressedImage, topic, self._on_compressed, input_qos)
        else:
            topic = self.resolve_topic_name(IMAGE_TOPIC)
            self.create_subscription(Image, IMAGE_TOPIC, self._on_image, input_qos)
        if self.get_parameter("use_camera_info").value:
            self.create_subscription(CameraInfo, CAMERA_INFO_TOPIC, self._on_camera_info, input_qos)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(self.get_parameter("diagnostics_period").value, self._publish_diagnostics)

        self._worker = threading.Thread(target=self._run_worker, name="fast_scnn_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"segmenting {topic} on {self._segmenter.device} ({self._segmenter.backend}, {self._classes.num_classes} "
            f"classes from {self._engine.checkpoint}) -> {self.resolve_topic_name(LABELS_TOPIC)}"
        )

    # ---- parameters ------------------------------------------------------------------------------

    def _values(self, changes: dict[str, Any], names: typing.Iterable[str]) -> dict[str, Any]:
        """Current parameter values with pending `changes` applied; unset arrays read as []."""
        values = {}
        for name in names:
            value = changes[name] if name in changes else self.get_parameter_or(name).value
            values[name] = [] if value is None and self._specs[name].default is Parameter.Type.STRING_ARRAY else value
        return values

    def _check_choices(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            choices = self._specs[name].choices
            if choices and value not in choices:
                raise ConfigError(f"parameter {name!r} must be one of {', '.join(choices)}; got {value!r}")

    def _engine_config(self, changes: dict[str, Any]) -> InferenceConfig:
        names = [field.name for field in dataclasses.fields(InferenceConfig) if field.name in self._specs]
        values = self._values(changes, names)
        self._check_choices(values)
        return dataclasses.replace(getattr(self, "_engine", InferenceConfig()), **values)

    def _output_settings(self, changes: dict[str, Any]) -> OutputSettings:
        names = ("mask_classes", "publish_color", "publish_overlay", "publish_confidence", "publish_camera_info")
        values = self._values(changes, (*names, "overlay_alpha"))
        try:
            mask_ids = mask_class_ids(self._classes, values["mask_classes"])
        except ValueError as exc:
            raise ConfigError(f"mask_classes: {exc}") from None
        return OutputSettings(mask_ids, *(values[n] for n in names[1:]), float(values["overlay_alpha"]))

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Runtime changes: output settings swap at once; engine options build a new Segmenter first."""
        changes = {p.name: p.value for p in parameters}
        try:
            settings = self._output_settings(changes)
            engine = self._engine_config(changes)
            segmenter = self._segmenter
            if engine != self._engine:
                segmenter = Segmenter.from_checkpoint(engine.checkpoint, engine)
        except (FastSCNNError, ValueError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        with self._publish_lock:
            published_masks = self._settings.mask_classes
            self._segmenter, self._engine, self._settings = segmenter, engine, settings
            self._sync_publishers(settings)
        if settings.mask_classes != published_masks:
            self._class_info_pub.publish(String(data=self.class_info_json()))  # latched: late joiners see the new list
        return SetParametersResult(successful=True)

    def _sync_publishers(self, settings: OutputSettings) -> None:
        """Create the publishers the settings ask for and destroy the others (caller holds the publish lock)."""
        wanted = {LABELS_TOPIC: Image}
        wanted.update({self._mask_topic(i): Image for i in settings.mask_classes})
        for enabled, topic, kind in (
            (settings.color, COLOR_TOPIC, Image),
            (settings.overlay, OVERLAY_TOPIC, Image),
            (settings.confidence and self._engine.mode == "prob", CONFIDENCE_TOPIC, Image),  # cls mode has none
            (settings.camera_info, CAMERA_INFO_OUT_TOPIC, CameraInfo),
        ):
            if enabled:
                wanted[topic] = kind
        for topic in set(self._publishers_by_topic) - set(wanted):
            self.destroy_publisher(self._publishers_by_topic.pop(topic))
        for topic, kind in wanted.items():
            if topic not in self._publishers_by_topic:
                self._publishers_by_topic[topic] = self.create_publisher(kind, topic, self._output_qos)

    def _mask_topic(self, class_id: int) -> str:
        return f"{MASKS_TOPIC}/{self._mask_tokens[class_id]}"

    def class_info_json(self) -> str:
        """What /segmentation/class_info carries: per class id its name, RGB colour and topic name (the
        `masks/<topic_name>` a class gets when listed in mask_classes), and the mask topics published now."""
        return json.dumps(
            {
                "ids": list(range(self._classes.num_classes)),
                "names": list(self._classes.names),
                "colors": [list(c) for c in self._classes.colors],
                "topic_names": self._mask_tokens,
                "mask_topics": [self.resolve_topic_name(self._mask_topic(i)) for i in self._settings.mask_classes],
                "ignore_id": IGNORE_INDEX,
            }
        )

    # ---- input: callbacks only validate and store ------------------------------------------------

    def _on_image(self, msg: Image) -> None:
        try:
            check_image(msg, self._engine.max_pixels)
        except ImageConversionError as exc:
            self._reject(exc)
            return
        self._accept(msg)

    def _on_compressed(self, msg: CompressedImage) -> None:
        try:
            check_compressed_image(msg, self._engine.max_pixels)  # the JPEG/PNG header only: microseconds
        except ImageConversionError as exc:
            self._reject(exc)
            return
        self._accept(msg)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _accept(self, msg: Image | CompressedImage) -> None:
        with self._stats.lock:
            self._stats.received += 1
        self._frames.put(Frame(msg, perf_counter()))

    def _reject(self, exc: Exception) -> None:
        with self._stats.lock:
            self._stats.received += 1
            self._stats.bad += 1
            self._stats.last_error = str(exc)
        self.get_logger().warning(f"skipping bad image: {exc}", throttle_duration_sec=5.0)

    # ---- worker: infer on the newest frame and publish ------------------------------------------

    def _run_worker(self) -> None:
        while (frame := self._frames.take()) is not None:
            try:
                self._process(frame)
            except (ImageConversionError, InputError) as exc:
                self._reject(exc)
            except Exception as exc:  # the node must outlive any single frame (e.g. CUDA OOM)
                if not self.context.ok():
                    return
                with self._stats.lock:
                    self._stats.errors += 1
                    self._stats.last_error = f"{type(exc).__name__}: {exc}"
                self.get_logger().error(f"frame failed: {type(exc).__name__}: {exc}", throttle_duration_sec=5.0)

    def _process(self, frame: Frame) -> None:
        started = perf_counter()
        msg = frame.msg
        rgb = (
            compressed_to_rgb8(msg, self._engine.max_pixels) if isinstance(msg, CompressedImage) else image_to_rgb8(msg)
        )
        converted = perf_counter()
        result = self._segmenter(rgb)
        inferred = perf_counter()
        with self._publish_lock:
            self._publish(msg.header, rgb, result.labels, result.confidence)
        done = perf_counter()
        self._stats.record(
            wait=started - frame.received,
            convert=converted - started,
            inference=inferred - converted,
            publish=done - inferred,
            end_to_end=done - frame.received,
        )

    def _publish(self, header: Header, rgb: np.ndarray, labels: np.ndarray, confidence: np.ndarray | None) -> None:
        """Labels always; every other output only when enabled and subscribed."""
        pubs, settings = self._publishers_by_topic, self._settings
        pubs[LABELS_TOPIC].publish(numpy_to_image(labels, "mono8", header))

        def wanted(topic: str) -> bool:
            return topic in pubs and pubs[topic].get_subscription_count() > 0

        for class_id in settings.mask_classes:
            topic = self._mask_topic(class_id)
            if wanted(topic):
                pubs[topic].publish(numpy_to_image(class_mask(labels, class_id), "mono8", header))
        if wanted(COLOR_TOPIC):
            pubs[COLOR_TOPIC].publish(numpy_to_image(colorize(labels, self._palette), "rgb8", header))
        if wanted(OVERLAY_TOPIC):
            if rgb.shape[:2] != labels.shape:  # output at inference resolution: shrink the image to match
                rgb = cv2.resize(np.ascontiguousarray(rgb), labels.shape[::-1], interpolation=cv2.INTER_AREA)
            blended = overlay(rgb, labels, self._palette, settings.overlay_alpha)
            pubs[OVERLAY_TOPIC].publish(numpy_to_image(blended, "rgb8", header))
        if confidence is not None and wanted(CONFIDENCE_TOPIC):
            pubs[CONFIDENCE_TOPIC].publish(numpy_to_image(confidence, "32FC1", header))
        info = self._camera_info
        if info is not None and info.width and info.height and wanted(CAMERA_INFO_OUT_TOPIC):
            pubs[CAMERA_INFO_OUT_TOPIC].publish(scale_camera_info(info, labels.shape[1], labels.shape[0], header))

    # ---- diagnostics -----------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        stats = self._stats
        elapsed, delta, timings = stats.window()
        with stats.lock:
            totals = {
                "frames_received": stats.received,
                "frames_processed": stats.processed,
                "frames_dropped": self._frames.dropped,
                "bad_messages": stats.bad,
                "errors": stats.errors,
            }
            last_error = stats.last_error
        values = {
            **totals,
            "input_fps": delta["received"] / elapsed,
            "output_fps": delta["processed"] / elapsed,
            **{f"{key}_ms": 1e3 * float(np.mean(v)) if v else float("nan") for key, v in timings.items()},
            "overhead_ms": 1e3 * float(np.mean(np.subtract(timings["end_to_end"], timings["inference"])))
            if timings["inference"]
            else float("nan"),
            "device": str(self._segmenter.device),
            "backend": self._segmenter.backend,
            "last_error": last_error,
        }
        level, message = DiagnosticStatus.OK, "running"
        if delta["bad"]:
            level, message = DiagnosticStatus.WARN, f"{delta['bad']} bad message(s): {last_error}"
        elif delta["received"] == 0:
            message = "waiting for images"
        status = DiagnosticStatus(
            level=level,
            name=diagnostic_name(self.get_name()),
            message=message,
            hardware_id=str(self._segmenter.device),
            values=[KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v)) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)

    def close(self) -> None:
        """Stop the worker (finishing the frame in flight) and destroy the node."""
        self._frames.close()
        self._worker.join(timeout=10.0)
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    stop_on_first_signal()
    node = None
    try:
        rclpy.init(args=args)
        node = SegmentationNode()
        rclpy.spin(node)
    except (FastSCNNError, ParameterException) as exc:
        rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {exc}")
        return 2
    except (StopRequested, ExternalShutdownException):
        pass
    except Exception:
        if not stopped_by_signal():
            raise
        # rclpy's handler shut the context down while the node was being built (RCLError): that is the stop
    finally:
        if node is not None:
            node.close()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
