"""The node's ROS wiring, created and destroyed as a unit: per camera its subscriptions and output
publishers, the latched class_info, the diagnostics timer (diagnostics.py builds the message) and the
worker thread that segments with the loaded `Engine` (engine.py).

`CameraRing(node, cameras, options, state)` creates everything on a node whose engine is loaded;
`update(state)` follows a runtime parameter change; `destroy()` stops the worker (finishing the frame
in flight) and destroys every subscription, publisher and timer it created, leaving the engine
loaded. A lifecycle node's activate and deactivate are exactly these two calls (see node.py).

Cameras: `()` is the single camera of the node's contract (inputs `image`, `camera_info`; outputs
`segmentation/...`). Named cameras read `<name>/image` (or `<name>/image/compressed`) and
`<name>/camera_info` and publish `<name>/segmentation/...`, all relative names so that remaps and
namespaces apply. The worker takes the newest frame of every camera that has one (pipeline.Mailbox)
and runs those that share an inference size as one engine batch (Segmenter.plan_batches).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header, String

from fast_scnn_core.errors import InputError
from fast_scnn_core.infer.segmenter import SegmentationResult
from fast_scnn_core.infer.visualize import class_mask, colorize, overlay
from fast_scnn_core.labels import IGNORE_INDEX
from fast_scnn_ros.camera_info import scale_camera_info
from fast_scnn_ros.conversions import (
    ImageConversionError,
    check_compressed_image,
    check_image,
    compressed_to_rgb8,
    image_to_rgb8,
    numpy_to_image,
)
from fast_scnn_ros.diagnostics import diagnostic_array
from fast_scnn_ros.engine import Engine
from fast_scnn_ros.names import (
    CAMERA_INFO_OUT_TOPIC,
    CAMERA_INFO_TOPIC,
    CLASS_INFO_TOPIC,
    COLOR_TOPIC,
    CONFIDENCE_TOPIC,
    DIAGNOSTICS_TOPIC,
    IMAGE_TOPIC,
    LABEL_INFO_TOPIC,
    LABELS_TOPIC,
    MASKS_TOPIC,
    OVERLAY_TOPIC,
)
from fast_scnn_ros.params import GroundSettings, OutputSettings
from fast_scnn_ros.pipeline import Frame, Mailbox, MemoryTrimmer, Round, Slot, Stats, bounded


@dataclass(frozen=True)
class RingState:
    """What the worker runs with, swapped as a whole by a parameter change (read once per round)."""

    engine: Engine
    outputs: OutputSettings


@dataclass(frozen=True)
class RingOptions:
    """The read-only parameters the wiring is built from."""

    input_compressed: bool
    use_camera_info: bool
    qos_reliability: str
    qos_depth: int
    diagnostics_period: float

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> RingOptions:
        return cls(**{name: values[name] for name in cls.__dataclass_fields__})


@dataclass
class Converted:
    """A frame of a camera converted to RGB in this round, with the seconds it took."""

    camera: Camera
    frame: Frame
    rgb: np.ndarray
    convert: float


class Camera:
    """One camera's subscriptions, output publishers, newest camera_info and statistics."""

    def __init__(self, ring: CameraRing, index: int, name: str) -> None:
        self.ring, self.index, self.name = ring, index, name
        self.prefix = f"{name}/" if name else ""
        self.stats = Stats()
        self.camera_info: CameraInfo | None = None
        self.publishers: dict[str, Any] = {}
        node, options = ring.node, ring.options
        qos = QoSProfile(
            depth=options.qos_depth,
            history=qos_profile_sensor_data.history,
            durability=qos_profile_sensor_data.durability,
            reliability=ReliabilityPolicy.BEST_EFFORT
            if options.qos_reliability == "best_effort"
            else ReliabilityPolicy.RELIABLE,
        )
        if options.input_compressed:
            self.input_topic = node.resolve_topic_name(self.topic(IMAGE_TOPIC)) + "/compressed"
            callback = self._on_compressed
            kind: type = CompressedImage
        else:
            self.input_topic = node.resolve_topic_name(self.topic(IMAGE_TOPIC))
            callback, kind = self._on_image, Image
        self.subscriptions = [node.create_subscription(kind, self.input_topic, callback, qos)]
        if options.use_camera_info:
            info_topic = self.topic(CAMERA_INFO_TOPIC)
            self.subscriptions.append(node.create_subscription(CameraInfo, info_topic, self._on_camera_info, qos))

    def topic(self, relative: str) -> str:
        """This camera's name of a topic: `segmentation/labels` -> `front/segmentation/labels`."""
        return self.prefix + relative

    def mask_topic(self, engine: Engine, class_id: int) -> str:
        return self.topic(f"{MASKS_TOPIC}/{engine.mask_tokens[class_id]}")

    # ---- input: callbacks only validate and store ------------------------------------------------

    def _on_image(self, msg: Image) -> None:
        self._accept(msg, check_image)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._accept(msg, check_compressed_image)  # the JPEG/PNG header only: microseconds

    def _accept(self, msg: Image | CompressedImage, check: Callable[[Any, int], None]) -> None:
        try:
            check(msg, self.ring.state.engine.config.max_pixels)
        except ImageConversionError as exc:
            self.refuse(exc, in_worker=False)
            if len(msg.data) > self.ring.LARGE_MESSAGE:
                self.ring.mailbox.request_release()  # its buffer is freed when this callback returns
            return
        self.stats.received()
        if self.ring.mailbox.put(self.index, Frame(msg, perf_counter())):
            self.stats.dropped()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg

    def refuse(self, exc: Exception, *, in_worker: bool) -> None:
        """A bad message: counted, its reason kept and logged (throttled), both bounded in length."""
        self.stats.refused(str(exc), in_worker=in_worker)
        source = f" from {self.name}" if self.name else ""
        self.ring.node.get_logger().warning(
            f"skipping bad image{source}: {bounded(str(exc))}", throttle_duration_sec=5.0
        )

    def fail(self, exc: Exception) -> None:
        """A frame the engine failed on: counted and logged (throttled)."""
        error = f"{type(exc).__name__}: {exc}"
        self.stats.failed(error)
        source = f" from {self.name}" if self.name else ""
        self.ring.node.get_logger().error(f"frame{source} failed: {bounded(error)}", throttle_duration_sec=5.0)

    # ---- output ------------------------------------------------------------------------------------

    def sync_publishers(self, state: RingState) -> None:
        """Create the publishers the settings ask for and destroy the others (caller holds the publish lock)."""
        node, outputs = self.ring.node, state.outputs
        wanted: dict[str, type] = {self.topic(LABELS_TOPIC): Image}
        wanted.update({self.mask_topic(state.engine, i): Image for i in outputs.mask_classes})
        for enabled, topic, kind in (
            (outputs.color, COLOR_TOPIC, Image),
            (outputs.overlay, OVERLAY_TOPIC, Image),
            (outputs.confidence and state.engine.config.mode == "prob", CONFIDENCE_TOPIC, Image),  # cls: none
            (outputs.camera_info, CAMERA_INFO_OUT_TOPIC, CameraInfo),
        ):
            if enabled:
                wanted[self.topic(topic)] = kind
        for topic in set(self.publishers) - set(wanted):
            node.destroy_publisher(self.publishers.pop(topic))
        for topic, kind in wanted.items():
            if topic not in self.publishers:
                self.publishers[topic] = node.create_publisher(kind, topic, self.ring.output_qos)

    def publish(self, header: Header, rgb: np.ndarray, result: SegmentationResult, state: RingState) -> float:
        """Labels always; every other output only when enabled and subscribed (caller holds the publish lock); the
        ground outputs last. Returns the seconds the ground projection took."""
        pubs, outputs, labels = self.publishers, state.outputs, result.labels
        pubs[self.topic(LABELS_TOPIC)].publish(numpy_to_image(labels, "mono8", header))

        def wanted(topic: str) -> bool:
            return topic in pubs and pubs[topic].get_subscription_count() > 0

        for class_id in outputs.mask_classes:
            topic = self.mask_topic(state.engine, class_id)
            if wanted(topic):
                pubs[topic].publish(numpy_to_image(class_mask(labels, class_id), "mono8", header))
        palette, colors = state.engine.palette, None
        if wanted(topic := self.topic(COLOR_TOPIC)):
            colors = colorize(labels, palette)  # the overlay blends these too
            pubs[topic].publish(numpy_to_image(colors, "rgb8", header))
        if wanted(topic := self.topic(OVERLAY_TOPIC)):
            if rgb.shape[:2] != labels.shape:  # output at inference resolution: shrink the image to match
                rgb = cv2.resize(np.ascontiguousarray(rgb), labels.shape[::-1], interpolation=cv2.INTER_AREA)
            picture = overlay(rgb, labels, palette, outputs.overlay_alpha, colors=colors)
            pubs[topic].publish(numpy_to_image(picture, "rgb8", header))
        if result.confidence is not None and wanted(topic := self.topic(CONFIDENCE_TOPIC)):
            pubs[topic].publish(numpy_to_image(result.confidence, "32FC1", header))
        info = self.camera_info
        if info is not None and info.width and info.height and wanted(topic := self.topic(CAMERA_INFO_OUT_TOPIC)):
            pubs[topic].publish(scale_camera_info(info, labels.shape[1], labels.shape[0], header))
        if self.ring.ground is None:
            return 0.0
        start = perf_counter()
        self.ring.ground.project(self.index, header, labels, info)
        return perf_counter() - start

    def destroy(self) -> None:
        for subscription in self.subscriptions:
            self.ring.node.destroy_subscription(subscription)
        for publisher in self.publishers.values():
            self.ring.node.destroy_publisher(publisher)
        self.subscriptions, self.publishers = [], {}


class CameraRing:
    """Every camera's wiring, class_info, diagnostics and the worker; see the module docstring."""

    LARGE_MESSAGE = 8 << 20  # a refused message this large asks the worker to give memory back

    def __init__(
        self,
        node: Node,
        cameras: tuple[str, ...],
        options: RingOptions,
        state: RingState,
        ground: GroundSettings | None = None,
    ) -> None:
        self.node, self.options, self.state = node, options, state
        self._ground_settings = ground
        self.ground = None  # GroundOutputs when ground.enabled
        self.output_qos = QoSProfile(depth=options.qos_depth, reliability=ReliabilityPolicy.RELIABLE)
        self.mailbox = Mailbox(max(len(cameras), 1))
        self._trimmer = MemoryTrimmer()
        self._publish_lock = threading.Lock()  # publishers change under a parameter update
        self.cameras: list[Camera] = []
        self._class_info_pub = self._diagnostics_pub = self._timer = self._label_info_pub = None
        self._worker: threading.Thread | None = None
        try:
            self._create(cameras or ("",))
        except BaseException:
            self.destroy()
            raise

    def _create(self, names: tuple[str, ...]) -> None:
        node = self.node
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        self._class_info_pub = node.create_publisher(String, CLASS_INFO_TOPIC, latched)
        self._diagnostics_pub = node.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        with self._publish_lock:
            for index, name in enumerate(names):
                self.cameras.append(camera := Camera(self, index, name))
                camera.sync_publishers(self.state)
        self._class_info_pub.publish(String(data=self.class_info_json()))
        self._publish_label_info(latched)
        if self._ground_settings is not None:
            from fast_scnn_ros.ground import GroundOutputs  # nav_msgs, tf2_ros: only when asked for

            self.ground = GroundOutputs(node, self._ground_settings, [c.prefix for c in self.cameras], self.output_qos)
        self._timer = node.create_timer(self.options.diagnostics_period, self._publish_diagnostics)
        self._worker = threading.Thread(target=self._run_worker, name="fast_scnn_worker", daemon=True)
        self._worker.start()
        segmenter, config = self.state.engine.segmenter, self.state.engine.config
        node.get_logger().info(
            f"segmenting {', '.join(c.input_topic for c in self.cameras)} on {segmenter.device} ({segmenter.backend}, "
            f"{segmenter.classes.num_classes} classes from {config.checkpoint}) -> "
            f"{', '.join(node.resolve_topic_name(c.topic(LABELS_TOPIC)) for c in self.cameras)}"
        )

    def _publish_label_info(self, qos: QoSProfile) -> None:
        """segmentation/label_info (vision_msgs/LabelInfo: id -> name), latched, where vision_msgs is installed."""
        try:
            from vision_msgs.msg import LabelInfo, VisionClass
        except ImportError:
            self.node.get_logger().info("vision_msgs is not installed: no segmentation/label_info (class_info has it)")
            return
        classes = self.state.engine.classes
        info = LabelInfo(class_map=[VisionClass(class_id=i, class_name=name) for i, name in enumerate(classes.names)])
        info.header.stamp = self.node.get_clock().now().to_msg()
        self._label_info_pub = self.node.create_publisher(LabelInfo, LABEL_INFO_TOPIC, qos)
        self._label_info_pub.publish(info)

    def update(self, state: RingState) -> None:
        """Run with a new engine or output settings from the next round on; publishers follow the settings."""
        with self._publish_lock:
            masks_before = self.state.outputs.mask_classes
            self.state = state
            for camera in self.cameras:
                camera.sync_publishers(state)
        if state.outputs.mask_classes != masks_before:
            self._class_info_pub.publish(String(data=self.class_info_json()))  # latched: late joiners see the new list

    def class_info_json(self) -> str:
        """What segmentation/class_info carries: per class id its name, RGB colour and topic name (the
        `masks/<topic_name>` a class gets when listed in mask_classes), and the mask topics published now."""
        engine, classes = self.state.engine, self.state.engine.classes
        return json.dumps(
            {
                "ids": list(range(classes.num_classes)),
                "names": list(classes.names),
                "colors": [list(c) for c in classes.colors],
                "topic_names": engine.mask_tokens,
                "mask_topics": [
                    self.node.resolve_topic_name(camera.mask_topic(engine, i))
                    for camera in self.cameras
                    for i in self.state.outputs.mask_classes
                ],
                "ignore_id": IGNORE_INDEX,
            }
        )

    # ---- worker: segment the newest frame of every camera and publish ---------------------------

    def _run_worker(self) -> None:
        while (taken := self.mailbox.take()) is not None:
            state = self.state  # one engine and one set of output settings per round
            started = perf_counter()
            try:
                pixels, failed = self._run_round(taken, state, started)
            except Exception as exc:  # the node must outlive any single round
                if not self.node.context.ok():
                    return  # shutting down: the context went away under the frame in flight
                self.node.get_logger().error(f"round failed: {bounded(f'{type(exc).__name__}: {exc}')}")
                pixels, failed = 0, True
            del taken  # the frames' buffers are freed before memory is given back
            self._trimmer.after_round(pixels, failed)

    def _run_round(self, taken: Round, state: RingState, started: float) -> tuple[int, bool]:
        """Convert every camera's frame, run them in batches, publish; (input pixels, whether anything failed)."""
        converted = [c for i, slot in taken.slots.items() if (c := self._convert(self.cameras[i], slot, state))]
        failed = len(converted) < len(taken.slots) or taken.release
        sizes = [c.rgb.shape[:2] for c in converted]
        for batch in state.engine.segmenter.plan_batches(sizes):
            failed |= not self._segment([converted[i] for i in batch], state, started)
        if self.ground is not None and converted:
            self.ground.publish_fused()
        return sum(h * w for h, w in sizes), failed

    def _convert(self, camera: Camera, slot: Slot, state: RingState) -> Converted | None:
        """The newest frame as RGB, else (if it is bad) the one it replaced; the unused fallback counts as dropped."""
        max_pixels = state.engine.config.max_pixels
        for frame in (slot.newest, slot.fallback):
            if frame is None:
                continue
            start = perf_counter()
            msg = frame.msg
            try:
                rgb = compressed_to_rgb8(msg, max_pixels) if isinstance(msg, CompressedImage) else image_to_rgb8(msg)
            except (ImageConversionError, InputError) as exc:
                camera.refuse(exc, in_worker=True)
                continue
            if frame is slot.newest and slot.fallback is not None:
                camera.stats.dropped()
            return Converted(camera, frame, rgb, perf_counter() - start)
        return None

    def _segment(self, batch: list[Converted], state: RingState, started: float) -> bool:
        """Run one engine batch and publish each frame on its camera; False if the batch failed."""
        inference_start = perf_counter()
        try:
            results = state.engine.segmenter.segment_batch([c.rgb for c in batch])
        except InputError as exc:
            for item in batch:
                item.camera.refuse(exc, in_worker=True)
            return False
        except Exception as exc:  # the node must outlive any single batch (e.g. out of memory)
            if not self.node.context.ok():
                raise
            for item in batch:
                item.camera.fail(exc)
            return False
        inference = perf_counter() - inference_start
        for item, result in zip(batch, results, strict=True):
            publish_start = perf_counter()
            with self._publish_lock:
                if not item.camera.publishers:
                    return True  # destroyed under us (deactivated after the join timed out)
                ground = item.camera.publish(item.frame.msg.header, item.rgb, result, state)
            done = perf_counter()
            item.camera.stats.processed(
                len(batch),
                wait=started - item.frame.received,
                convert=item.convert,
                inference=inference,
                publish=done - publish_start - ground,
                ground=ground,
                end_to_end=done - item.frame.received,
            )
        return True

    # ---- diagnostics -----------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        now = perf_counter()
        cameras = [(camera.name, camera.stats.report()) for camera in self.cameras]
        ground = None if self.ground is None else [self.ground.status(i) for i in range(len(self.cameras))]
        array = diagnostic_array(self.node.get_name(), self.state.engine, cameras, self._trimmer.releases, now, ground)
        array.header.stamp = self.node.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)

    def destroy(self) -> None:
        """Stop the worker (it finishes the frame in flight) and destroy everything this ring created."""
        self.mailbox.close()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
        node = self.node
        with self._publish_lock:
            for camera in self.cameras:
                camera.destroy()
        if self.ground is not None:
            self.ground.destroy()
        for publisher in (self._class_info_pub, self._diagnostics_pub, self._label_info_pub):
            if publisher is not None:
                node.destroy_publisher(publisher)
        if self._timer is not None:
            node.destroy_timer(self._timer)
        self._class_info_pub = self._diagnostics_pub = self._timer = self._worker = self._label_info_pub = None
        self.ground = None
