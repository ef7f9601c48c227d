"""Start the installed segmentation_node as its own process, the way `segment.launch.py` does.

One helper for everything that runs the node next to itself: the tests (test/ros), `make demo`
(fast_scnn_ros/tools/demo.py) and the benchmarks (bench/node_latency.py, bench/soak.py, bench/camera_ring.py). The node
is the installed executable `<prefix>/lib/fast_scnn_ros/segmentation_node` (or `segmentation_lifecycle_node`) with
`--ros-args`: the installed parameters file, `-p` overrides and `-r` remaps, as launch passes them, and the Fast
DDS profile for large images in its environment (launch's `fastdds_profile` default). It runs in its own session
(process group), so a stop reaches it as Ctrl-C in a terminal does; stdout and stderr go to one file.
Talking to the running node (publishing frames, reading outputs, waiting until it is up) is
fast_scnn_ros/tools/probe.py's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import fast_scnn_ros
from fast_scnn_core.config import shipped_config

PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
START_TIMEOUT = 120.0  # torch, onnxruntime and the model's export take tens of seconds on a loaded 2-core machine


class NodeStartError(RuntimeError):
    """The node exited or did not come up in time; the message ends with its output."""


def prefix_path(relative: str) -> Path:
    """A path of the installation this Python runs in (a venv or a colcon install's prefix)."""
    return Path(sys.prefix) / relative


def executable(lifecycle: bool = False) -> Path:
    """The installed node: segmentation_node, or (`lifecycle`) segmentation_lifecycle_node."""
    return prefix_path("lib/fast_scnn_ros/" + ("segmentation_lifecycle_node" if lifecycle else "segmentation_node"))


def ros_value(value: object) -> str:
    """A Python value as `-p name:=value` text (ROS parses it as YAML: true, 0.5, [a, b])."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(ros_value(v) for v in value) + "]"
    return str(value)


def use_large_images_profile(env: dict[str, str] | os._Environ = os.environ, profile: Path | None = None) -> None:
    """Give `env` (default: this process's, before rclpy.init) a Fast DDS profile for camera-sized frames.

    `profile`, else the one `env` already names, else the installed config/fastdds_large_images.xml, as
    launch does: a best-effort publisher needs it for frames over ~400 KB (docs/ros.md, "Large images").
    """
    profile = profile or env.get(PROFILE_VARIABLE) or shipped_config("fastdds_large_images.xml")
    if Path(profile).is_file():
        env[PROFILE_VARIABLE] = str(profile)


def node_environment(env: Mapping[str, str] | None = None, fastdds_profile: Path | None = None) -> dict[str, str]:
    """The node's environment: `env` (default: ours), unbuffered output, this process's fast_scnn_ros code.

    The Fast DDS profile as `use_large_images_profile` sets it. When this process runs fast_scnn_ros
    from a source tree (PYTHONPATH, `python -m` in a checkout), the node runs that tree too.
    """
    env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
    use_large_images_profile(env, fastdds_profile)
    source = Path(fast_scnn_ros.__file__).resolve().parents[1]
    if source.name not in ("site-packages", "dist-packages"):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(source), env.get("PYTHONPATH")) if p)
    return env


class Process:
    """A command in its own session, stdout and stderr in one log file; stopped as Ctrl-C stops it.

    `own_session=False` keeps it in this process's session, as `ros2 launch` runs its nodes. It matters
    for CPU time on a busy machine: Linux's autogroup scheduling shares the CPU between sessions first,
    so four nodes in four sessions get up to four shares where one node gets one (bench/camera_ring.py).
    """

    def __init__(
        self,
        command: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdin: int | IO[Any] = subprocess.DEVNULL,
        own_session: bool = True,
    ) -> None:
        self.command = [str(c) for c in command]
        self.own_session = own_session
        self.log = Path(log)
        with self.log.open("w") as out:  # the child keeps its own descriptor
            self.popen = subprocess.Popen(
                self.command,
                stdin=stdin,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                cwd=cwd,
                start_new_session=own_session,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        """Everything the process wrote so far (stdout and stderr interleaved)."""
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = START_TIMEOUT) -> None:
        """Until `text` is in the output; NodeStartError with the output if the process ends or time runs out."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if not self.running():
                raise NodeStartError(f"exited with {self.popen.returncode} before {text!r}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise NodeStartError(f"no {text!r} after {timeout} s:\n{self.output()}")
            time.sleep(0.05)

    def signal(self, signum: int, timeout: float = 60.0) -> int:
        """Send `signum` to the process itself and wait for its exit status."""
        self.popen.send_signal(signum)
        return self.popen.wait(timeout=timeout)

    def _send(self, signum: int) -> None:
        """To its whole process group when it has its own session, else to the process alone (ours is the group)."""
        if self.own_session:
            os.killpg(self.popen.pid, signum)
        else:
            self.popen.send_signal(signum)

    def interrupt(self, timeout: float = 60.0) -> int:
        """Ctrl-C: SIGINT to the whole process group, as a terminal sends it; the exit status."""
        self._send(signal.SIGINT)
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 20.0) -> int:
        """Ctrl-C if still running, SIGKILL to the group if that does not end it within `timeout`; the exit status."""
        if self.running():
            try:
                return self.interrupt(timeout)
            except subprocess.TimeoutExpired:
                self._send(signal.SIGKILL)
        return self.popen.wait()


class NodeProcess(Process):
    """The installed segmentation_node: `--ros-args --params-file <file> -p name:=value ... -r from:=to ...`.

    `params_file` defaults to the installed config/segment.yaml (None: no file); `ros_args` are appended
    as given (e.g. `-r __node:=front`); `env` and `fastdds_profile` as in `node_environment`; `lifecycle`:
    segmentation_lifecycle_node instead (it comes up unconfigured: no class_info before activate);
    `own_session` as in `Process`.
    """

    def __init__(
        self,
        log: Path,
        parameters: Mapping[str, object] | None = None,
        remaps: Mapping[str, str] | None = None,
        params_file: Path | None = shipped_config("segment.yaml"),  # noqa: B008 - a constant path
        ros_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        fastdds_profile: Path | None = None,
        lifecycle: bool = False,
        own_session: bool = True,
    ) -> None:
        program = executable(lifecycle)
        if not os.access(program, os.X_OK):
            raise NodeStartError(f"{program} is missing: install the project into this environment (make venv)")
        args = ["--ros-args", *(["--params-file", str(params_file)] if params_file else [])]
        args += [a for name, value in (parameters or {}).items() for a in ("-p", f"{name}:={ros_value(value)}")]
        args += [a for source, target in (remaps or {}).items() for a in ("-r", f"{source}:={target}")]
        command = [program, *args, *ros_args]
        super().__init__(command, log, node_environment(env, fastdds_profile), own_session=own_session)
