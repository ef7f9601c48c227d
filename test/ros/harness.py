"""Helpers for the ROS tests: start the node process, publish images, collect outputs, set parameters."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import SetParametersResult
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from std_msgs.msg import Header

from fast_scnn_ros.node import NODE_NAME, diagnostic_name
from fast_scnn_ros.tools import process

REPO = Path(__file__).resolve().parents[2]
PARAMS_FILE = REPO / "config/segment.yaml"
TIMEOUT = 60.0  # generous: a loaded 2-core machine starts torch slowly


class Process(process.Process):
    """A command as a terminal starts it (own session, output in workdir/output.txt), for `ros2 ...` commands.

    stdin is a pseudo-terminal when `terminal` (then `ros2 launch` behaves as typed in a shell: Ctrl-C
    reaches its nodes from the terminal only), else /dev/null (as under CI or systemd: launch then
    also forwards SIGINT itself).
    """

    def __init__(
        self,
        command: list[str],
        workdir: Path,
        env: dict[str, str] | None = None,
        terminal: bool = False,
        cwd: Path | None = None,
    ) -> None:
        """The process runs in `cwd` (default: workdir)."""
        self.workdir = workdir
        stdin, self._pty = subprocess.DEVNULL, None
        if terminal:
            self._pty, stdin = os.openpty()
        # PYTHONPATH: run the working tree's code through the installed launchers (identical in CI).
        env = {"PYTHONPATH": str(REPO), **(env or os.environ), "PYTHONUNBUFFERED": "1"}
        super().__init__(command, workdir / "output.txt", env, cwd or workdir, stdin)
        if terminal:
            os.close(stdin)

    def stop(self, timeout: float = 20.0) -> int:
        status = super().stop(timeout)
        if self._pty is not None:
            os.close(self._pty)
            self._pty = None
        return status


class NodeProcess(process.NodeProcess):
    """segmentation_node (or, `lifecycle`, segmentation_lifecycle_node) started as launch does, with the working
    tree's parameters file and raw --ros-args."""

    def __init__(self, ros_args: list[str], workdir: Path, params_file: bool = True, lifecycle: bool = False) -> None:
        self.workdir = workdir
        params = PARAMS_FILE if params_file else None
        super().__init__(workdir / "output.txt", params_file=params, ros_args=ros_args, lifecycle=lifecycle)


class Ros2:
    """The `ros2` command line in one environment, as a user types it; stop_all() ends what it started."""

    def __init__(self, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
        self.env = env
        self._tmp_path_factory = tmp_path_factory
        self._started: list[Process] = []

    def start(self, *args: str, terminal: bool = False) -> Process:
        """`ros2 ARGS` running in the background (launch, run, topic pub)."""
        return self.start_command(["ros2", *args], terminal=terminal)

    def start_command(
        self, command: list[str], terminal: bool = False, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> Process:
        """Any command in the background, in this environment unless `env` is given."""
        proc = Process(command, self._tmp_path_factory.mktemp("process"), env or self.env, terminal, cwd)
        self._started.append(proc)
        return proc

    def run(self, *args: str, timeout: float = TIMEOUT) -> str:
        """`ros2 ARGS` to its end; its stdout (fails with its output on a non-zero exit)."""
        return self._finish(["ros2", *args], timeout=timeout).stdout

    def shell(self, command: str, cwd: Path, timeout: float = TIMEOUT) -> str:
        """A command line as typed in a shell (quotes, $PWD), run to its end in `cwd`; what it printed on stdout
        and stderr (fails with it on a non-zero exit)."""
        result = self._finish(["bash", "-c", command], timeout=timeout, cwd=cwd)
        return result.stdout + result.stderr

    def wait_for_node(self, name: str, timeout: float = TIMEOUT) -> None:
        """Until the ros2 daemon (started here if needed) lists node `name`, as it does for a user whose node has
        been up a while: a command that asks the daemon right after it started can miss a node ("Node not found")."""
        self.run("daemon", "start")
        deadline = time.monotonic() + timeout
        while name not in self.run("node", "list").split():
            assert time.monotonic() < deadline, f"the ros2 daemon does not list {name} after {timeout} s"
            time.sleep(0.2)

    def _finish(self, command: list[str], timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess:
        env = {"PYTHONPATH": str(REPO), **self.env}
        result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"{' '.join(command)} -> {result.returncode}\n{result.stdout}{result.stderr}"
        return result

    def publish(self, topic: str, msg_type: str, values: str, rate: float = 5.0) -> Process:
        """A camera: `ros2 topic pub` at `rate` Hz with sensor-data QoS (REP 2003), until stopped."""
        return self.start("topic", "pub", "-r", str(rate), "--qos-profile", "sensor_data", topic, msg_type, values)

    def receive(self, topic: str, msg_type: str, frame_id: str, timeout: float = TIMEOUT) -> dict:
        """A planner: the first message on `topic` with this header.frame_id, by `ros2 topic echo` (arrays left out)."""
        out = self.run(
            "topic", "echo", "--no-daemon", "--once", "--no-arr", "--timeout", str(int(timeout)),
            "--filter", f"m.header.frame_id == {frame_id!r}", topic, msg_type, timeout=timeout + 30,
        )  # fmt: skip
        assert out.strip(), f"nothing on {topic} with frame_id {frame_id!r} within {timeout} s"
        return yaml.safe_load(out.split("\n---")[0])

    def stop_all(self) -> None:
        """End what was started, and the ros2 daemon of this domain a command without --no-daemon spawned."""
        for proc in self._started:
            proc.stop()
        subprocess.run(["ros2", "daemon", "stop"], env=self.env, capture_output=True, timeout=TIMEOUT)


def image_yaml(rgb: np.ndarray, frame_id: str) -> str:
    """An rgb8 sensor_msgs/Image as the YAML values `ros2 topic pub` takes."""
    height, width, _ = rgb.shape
    data = ", ".join(map(str, rgb.ravel().tolist()))
    header = f"header: {{frame_id: {frame_id}}}"
    return f"{{{header}, height: {height}, width: {width}, encoding: rgb8, step: {width * 3}, data: [{data}]}}"


def compressed_yaml(rgb: np.ndarray, frame_id: str) -> str:
    """A png sensor_msgs/CompressedImage as the YAML values `ros2 topic pub` takes."""
    ok, png = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    return f"{{header: {{frame_id: {frame_id}}}, format: png, data: [{', '.join(map(str, png.ravel().tolist()))}]}}"


def camera_info_yaml(width: int, height: int, frame_id: str) -> str:
    """A sensor_msgs/CameraInfo (pinhole, focal length = width) as the YAML values `ros2 topic pub` takes."""
    k = [width, 0, width / 2, 0, width, height / 2, 0, 0, 1]
    p = [*k[:3], 0, *k[3:6], 0, *k[6:], 0]
    return f"{{header: {{frame_id: {frame_id}}}, width: {width}, height: {height}, k: {k}, p: {p}}}"


class Collector:
    """Keeps every message received on a topic."""

    def __init__(self, node: rclpy.node.Node, msg_type: type, topic: str, qos: QoSProfile | int = 10) -> None:
        self.messages: list[Any] = []
        self.times: list[float] = []
        self.subscription = node.create_subscription(msg_type, topic, self._on_msg, qos)

    def _on_msg(self, msg: Any) -> None:
        self.messages.append(msg)
        self.times.append(time.perf_counter())

    def with_stamp(self, stamp: Any) -> Any | None:
        for msg in self.messages:
            if msg.header.stamp == stamp:
                return msg
        return None


class RosHarness:
    """The test process's rclpy node and a way to spin it until something happens."""

    def __init__(self) -> None:
        self.node = rclpy.create_node("fast_scnn_test")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._stamp = 0
        self.diagnostic_name = diagnostic_name()
        self._diagnostics = self.collect(DiagnosticArray, "/diagnostics")
        self._publishers: dict[tuple[type, str], Any] = {}

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()

    def spin_until(self, condition: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.02)
        return True

    def collect(self, msg_type: type, topic: str, qos: QoSProfile | int = 10) -> Collector:
        return Collector(self.node, msg_type, topic, qos)

    def stop_collecting(self, collector: Collector) -> None:
        self.node.destroy_subscription(collector.subscription)

    def publisher(self, msg_type: type, topic: str) -> Any:
        key = (msg_type, topic)
        if key not in self._publishers:
            self._publishers[key] = self.node.create_publisher(msg_type, topic, 10)
        return self._publishers[key]

    def header(self, frame_id: str = "test_camera") -> Header:
        """A header with a stamp no other message in this run has."""
        self._stamp += 1
        header = Header(frame_id=frame_id)
        header.stamp.sec, header.stamp.nanosec = 1000 + self._stamp, 123_456_789
        return header

    def wait_ready(self, proc: NodeProcess, image_topic: str, msg_type: type, node_name: str = NODE_NAME) -> None:
        """The node is up when its latched class_info arrives and it subscribes our image topic.

        From then on diagnostics() reads this node's reports (tell nodes apart with -r __node:=<name>).
        """
        self.diagnostic_name = diagnostic_name(node_name)
        self.class_info = proc.wait_ready(self.executor, self.node, self.publisher(msg_type, image_topic), TIMEOUT)

    def send_until(self, topic: str, msg: Any, collector: Collector, timeout: float = TIMEOUT) -> Any:
        """Publish `msg` (re-sent each second: the input is best effort) until `collector` has its stamp."""
        pub = self.publisher(type(msg), topic)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pub.publish(msg)
            if self.spin_until(lambda: collector.with_stamp(msg.header.stamp) is not None, timeout=1.0):
                return collector.with_stamp(msg.header.stamp)
        raise AssertionError(f"no output on {collector.subscription.topic_name} for stamp {msg.header.stamp}")

    def diagnostics(self) -> dict[str, str]:
        """The newest /diagnostics values of the node ({} before the first report)."""
        for array in reversed(self._diagnostics.messages):
            for status in array.status:
                if status.name == self.diagnostic_name:
                    return {kv.key: kv.value for kv in status.values} | {"level": status.level}
        return {}

    def diagnostics_seen(self, level: bytes, message: str) -> bool:
        """Whether any report of the node so far had this level and message text."""
        return any(
            status.name == self.diagnostic_name and status.level == level and message in status.message
            for array in self._diagnostics.messages
            for status in array.status
        )

    def wait_diagnostics(self, condition: Callable[[dict[str, str]], bool], timeout: float = TIMEOUT) -> dict:
        self.spin_until(lambda: bool(self.diagnostics()) and condition(self.diagnostics()), timeout)
        return self.diagnostics()

    def set_parameters(self, **values: Any) -> list[SetParametersResult]:
        """Through the node's real rcl_interfaces/SetParameters service, like `ros2 param set`."""
        client = self.node.create_client(SetParameters, "/fast_scnn/set_parameters")
        try:
            assert self.spin_until(client.service_is_ready), "parameter service not available"
            params = [v if isinstance(v, Parameter) else Parameter(k, value=v) for k, v in values.items()]
            request = SetParameters.Request(
                parameters=[ParameterMsg(name=p.name, value=p.get_parameter_value()) for p in params]
            )
            future = client.call_async(request)
            assert self.spin_until(future.done), "SetParameters did not answer"
            return future.result().results
        finally:
            self.node.destroy_client(client)


def random_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
