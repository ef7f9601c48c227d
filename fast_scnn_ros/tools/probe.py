"""The one client of the segmentation node: it plays camera and planner for the demo, the benchmarks and the tests.

A Probe is this process's rclpy node with its own executor. It publishes camera frames (image or compressed
image, with camera_info under the same header), collects the node's outputs (by header stamp, with arrival
times), reads the node's DiagnosticStatus by name, sets the node's parameters through its services and spins
until a condition holds. `use_private_domain` gives a run a DDS domain of its own before rclpy.init.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import SetParametersResult
from rcl_interfaces.srv import SetParameters, SetParametersAtomically
from rclpy.client import Client
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.task import Future
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header, String

from fast_scnn_ros.conversions import numpy_to_image
from fast_scnn_ros.names import CLASS_INFO_TOPIC, DIAGNOSTICS_TOPIC, NODE_NAME, diagnostic_name
from fast_scnn_ros.tools.process import START_TIMEOUT, NodeStartError, Process

Stamp = tuple[int, int]  # (sec, nanosec) of a header stamp: how outputs are matched to their frames
QoS = QoSProfile | int


def use_private_domain(env: MutableMapping[str, str] = os.environ, override: bool = False) -> None:
    """A DDS domain of this process's own (ROS_DOMAIN_ID from the pid), discovery on localhost only.

    Runs side by side never see each other's nodes; processes started later inherit it. Call before
    rclpy.init. `override` replaces a ROS_DOMAIN_ID already set (the tests), else a user's choice is kept.
    """
    if override or "ROS_DOMAIN_ID" not in env:
        env["ROS_DOMAIN_ID"] = str(os.getpid() % 100 + 1)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_STATIC_PEERS", None)


def stamp_key(stamp: Any) -> Stamp:
    """A builtin_interfaces/Time as a dictionary key."""
    return stamp.sec, stamp.nanosec


def status_values(status: DiagnosticStatus) -> dict[str, str]:
    """A DiagnosticStatus's key-value pairs."""
    return {kv.key: kv.value for kv in status.values}


def pinhole_camera_info(header: Header, width: int, height: int, focal: float | None = None) -> CameraInfo:
    """A distortion-free pinhole camera of this size (focal length in pixels, default: the width)."""
    f = float(width if focal is None else focal)
    info = CameraInfo(header=header, width=width, height=height, distortion_model="plumb_bob")
    info.k = [f, 0.0, width / 2, 0.0, f, height / 2, 0.0, 0.0, 1.0]
    info.p = [f, 0.0, width / 2, 0.0, 0.0, f, height / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.d = [0.0] * 5
    return info


def parameter_msg(name: str, value: object) -> ParameterMsg:
    """rcl_interfaces/Parameter from a Python value; an empty list is a string array (mask_classes, cameras)."""
    if isinstance(value, Parameter):
        param = value
    elif isinstance(value, list) and not value:
        param = Parameter(name, Parameter.Type.STRING_ARRAY, value)
    else:
        param = Parameter(name, value=value)
    return ParameterMsg(name=param.name, value=param.get_parameter_value())


class Collector:
    """Every message received on one topic in arrival order, and when each header stamp first arrived.

    Arrival times are time.perf_counter(). `keep=False` keeps only the count and the arrivals: a long run
    at camera rate would otherwise hold every image.
    """

    def __init__(self, node: rclpy.node.Node, msg_type: type, topic: str, qos: QoS = 10, keep: bool = True) -> None:
        self.keep = keep
        self.messages: list[Any] = []
        self.times: list[float] = []
        self.arrivals: dict[Stamp, float] = {}
        self.count = 0
        self.subscription = node.create_subscription(msg_type, topic, self._on_msg, qos)

    def _on_msg(self, msg: Any) -> None:
        now = time.perf_counter()
        self.count += 1
        if self.keep:
            self.messages.append(msg)
            self.times.append(now)
        header = getattr(msg, "header", None)
        if header is not None:
            self.arrivals.setdefault(stamp_key(header.stamp), now)

    def with_stamp(self, stamp: Any) -> Any | None:
        """The first message kept with this header stamp."""
        for msg in self.messages:
            if msg.header.stamp == stamp:
                return msg
        return None

    def arrival(self, stamp: Any) -> float | None:
        """When the first message with this header stamp arrived."""
        return self.arrivals.get(stamp_key(stamp))

    def clear(self) -> None:
        self.messages.clear()
        self.times.clear()
        self.arrivals.clear()
        self.count = 0


class Camera:
    """A camera driver: each frame's image (raw or compressed) and, given a topic, its camera_info under one header.

    A CompressedImage goes to `<image_topic>/compressed`, as image_transport publishes it.
    """

    def __init__(
        self, probe: Probe, image_topic: str, camera_info_topic: str | None = None, qos: QoS = qos_profile_sensor_data
    ) -> None:
        self.probe, self.image_topic, self.camera_info_topic, self.qos = probe, image_topic, camera_info_topic, qos
        self.image_publisher = probe.publisher(Image, image_topic, qos)

    def publish(
        self,
        frame: np.ndarray | Image | CompressedImage,
        header: Header,
        size: tuple[int, int] | None = None,
        focal: float | None = None,
    ) -> Header:
        """Publish `frame` (an rgb8 array or a message) with `header`; `size` (H, W) for a compressed frame's
        camera_info, `focal` as in `pinhole_camera_info`."""
        msg = numpy_to_image(frame, "rgb8", header) if isinstance(frame, np.ndarray) else frame
        msg.header = header
        if self.camera_info_topic is not None:
            height, width = size or (msg.height, msg.width)
            info = pinhole_camera_info(header, width, height, focal)
            self.probe.publisher(CameraInfo, self.camera_info_topic, self.qos).publish(info)
        if isinstance(msg, CompressedImage):
            self.probe.publisher(CompressedImage, f"{self.image_topic}/compressed", self.qos).publish(msg)
        else:
            self.image_publisher.publish(msg)
        return header


def qos_key(qos: QoS) -> object:
    """What tells two publishers' QoS apart, as a dictionary key."""
    if isinstance(qos, int):
        return qos
    return qos.depth, qos.history, qos.reliability, qos.durability


class Probe:
    """This process's rclpy node, playing camera and planner against the segmentation node.

    `node_name`: the node whose parameters `set_parameters` sets and whose diagnostics are read (until
    `wait_ready` names another); `timeout`: the default of every wait; `frame_id` that of `header()`.
    """

    def __init__(
        self,
        name: str = "fast_scnn_probe",
        node_name: str = NODE_NAME,
        timeout: float = 60.0,
        frame_id: str = "camera_optical_frame",
        diagnostics_depth: int = 10,
    ) -> None:
        self.node = rclpy.create_node(name)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.node_name, self.timeout, self.frame_id = node_name, timeout, frame_id
        self.diagnostic_name = diagnostic_name(node_name)
        self.class_info = ""
        self._stamp = 0
        self._publishers: dict[tuple[type, str, object], Publisher] = {}
        self._clients: dict[str, Client] = {}
        self._statuses: dict[str, list[DiagnosticStatus]] = {}  # every status received, by name
        self.node.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_diagnostics, diagnostics_depth)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()

    def spin_until(
        self, condition: Callable[[], bool], timeout: float | None = None, process: Process | None = None
    ) -> bool:
        """Spin until `condition()` holds (True) or `timeout` passes (False); False too once `process` has ended."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not condition():
            if time.monotonic() > deadline or (process is not None and not process.running()):
                return False
            self.executor.spin_once(timeout_sec=0.01)
        return True

    def collect(self, msg_type: type, topic: str, qos: QoS = 10, keep: bool = True) -> Collector:
        return Collector(self.node, msg_type, topic, qos, keep)

    def stop_collecting(self, collector: Collector) -> None:
        self.node.destroy_subscription(collector.subscription)

    def publisher(self, msg_type: type, topic: str, qos: QoS = 10) -> Publisher:
        """One publisher per type, topic and QoS, made on first use."""
        key = (msg_type, topic, qos_key(qos))
        if key not in self._publishers:
            self._publishers[key] = self.node.create_publisher(msg_type, topic, qos)
        return self._publishers[key]

    def camera(
        self, image_topic: str, camera_info_topic: str | None = None, qos: QoS = qos_profile_sensor_data
    ) -> Camera:
        """A camera driver publishing on these topics (sensor-data QoS, REP 2003, unless `qos`)."""
        return Camera(self, image_topic, camera_info_topic, qos)

    def header(self, frame_id: str | None = None, now: bool = False) -> Header:
        """A header stamped now (`now`), else with a stamp no other header of this probe has."""
        header = Header(frame_id=self.frame_id if frame_id is None else frame_id)
        if now:
            header.stamp = self.node.get_clock().now().to_msg()
        else:
            self._stamp += 1
            header.stamp.sec, header.stamp.nanosec = 1000 + self._stamp, 123_456_789
        return header

    def wait_ready(
        self,
        process: Process,
        image_topic: str,
        msg_type: type = Image,
        qos: QoS = 10,
        node_name: str = NODE_NAME,
        namespace: str = "",
        timeout: float = START_TIMEOUT,
    ) -> str:
        """Spin until the node in `process` is up; its class_info JSON (also kept as `class_info`).

        Up: its latched class_info arrived (under `namespace`) and it subscribes our publisher of `image_topic`
        (this type and QoS), so the next frame published reaches it (a best-effort frame sent before the match
        is lost, as a camera's would be). From then on the diagnostics read are `node_name`'s (-r __node:=...).
        """
        self.diagnostic_name = diagnostic_name(node_name)
        publisher = self.publisher(msg_type, image_topic, qos)
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        info = self.collect(String, f"{namespace}/{CLASS_INFO_TOPIC}", latched)
        try:
            up = lambda: bool(info.messages) and publisher.get_subscription_count() > 0  # noqa: E731
            if not self.spin_until(up, timeout, process):
                if not process.running():
                    raise NodeStartError(f"the node exited with {process.popen.returncode}:\n{process.output()}")
                raise NodeStartError(f"the node did not come up within {timeout:.0f} s:\n{process.output()}")
        finally:
            self.stop_collecting(info)
        self.class_info = info.messages[0].data
        return self.class_info

    def send_until(self, topic: str, msg: Any, collector: Collector, timeout: float | None = None) -> Any:
        """Publish `msg` (re-sent each second: the input is best effort) until `collector` has its stamp."""
        pub = self.publisher(type(msg), topic)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while time.monotonic() < deadline:
            pub.publish(msg)
            if self.spin_until(lambda: collector.with_stamp(msg.header.stamp) is not None, timeout=1.0):
                return collector.with_stamp(msg.header.stamp)
        raise AssertionError(f"no output on {collector.subscription.topic_name} for stamp {msg.header.stamp}")

    def _on_diagnostics(self, array: DiagnosticArray) -> None:
        for status in array.status:
            self._statuses.setdefault(status.name, []).append(status)

    def reports(self, name: str | None = None) -> list[DiagnosticStatus]:
        """Every DiagnosticStatus of the node received so far (`name`: another status's), oldest first."""
        return self._statuses.get(self.diagnostic_name if name is None else name, [])

    def diagnostics(self) -> dict[str, Any]:
        """The newest /diagnostics values of the node and their level ({} before the first report)."""
        reports = self.reports()
        return status_values(reports[-1]) | {"level": reports[-1].level} if reports else {}

    def diagnostics_seen(self, level: bytes, message: str) -> bool:
        """Whether any report of the node so far had this level and message text."""
        return any(status.level == level and message in status.message for status in self.reports())

    def wait_diagnostics(self, condition: Callable[[dict[str, Any]], bool], timeout: float | None = None) -> dict:
        """Spin until the node's newest report satisfies `condition`; that report (or the last one, on timeout)."""
        self.spin_until(lambda: bool(self.diagnostics()) and condition(self.diagnostics()), timeout)
        return self.diagnostics()

    def parameter_client(self, atomically: bool = False) -> Client:
        """The client of the node's set_parameters (or set_parameters_atomically) service."""
        service = f"/{self.node_name}/set_parameters" + ("_atomically" if atomically else "")
        if service not in self._clients:
            kind = SetParametersAtomically if atomically else SetParameters
            self._clients[service] = self.node.create_client(kind, service)
        return self._clients[service]

    def request_parameters(self, values: Mapping[str, object], atomically: bool = False) -> Future:
        """Ask the node to set `values` (together, when `atomically`); the service's future, not waited for."""
        client = self.parameter_client(atomically)
        if not self.spin_until(client.service_is_ready):
            raise TimeoutError(f"the service {client.srv_name} is not available")
        parameters = [parameter_msg(name, value) for name, value in values.items()]
        request = (SetParametersAtomically if atomically else SetParameters).Request(parameters=parameters)
        return client.call_async(request)

    def set_parameters(self, **values: object) -> list[SetParametersResult]:
        """Through the node's real rcl_interfaces/SetParameters service, like `ros2 param set`; one result each."""
        future = self.request_parameters(values)
        if not self.spin_until(future.done):
            raise TimeoutError("SetParameters did not answer")
        return future.result().results
