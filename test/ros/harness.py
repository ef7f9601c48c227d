"""Helpers for the ROS tests: the node and `ros2` commands as processes, the probe that talks to the node."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from support import REPO, run_command, tree_env

from fast_scnn_ros.tools import process
from fast_scnn_ros.tools.probe import Probe

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
        env = tree_env(env, PYTHONUNBUFFERED="1")
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
        result = run_command(command, env=tree_env(self.env), cwd=cwd, timeout=timeout)
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


class RosHarness(Probe):
    """The test process's probe (fast_scnn_ros.tools.probe) with the tests' timeout and frame id."""

    def __init__(self) -> None:
        super().__init__("fast_scnn_test", timeout=TIMEOUT, frame_id="test_camera")


def random_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
