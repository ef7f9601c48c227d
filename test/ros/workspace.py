"""The README's "Into a ROS 2 workspace" section as a test runs it: parsed from README.md, run in order.

The commands come from the README itself, so README and test cannot drift. What the test changes,
and why:
- `git clone <this repository> fast_scnn_ros`: `<this repository>` is a placeholder; the working tree
  is copied there instead (what CI checked out, uncommitted changes included).
- `rosdep ...` is skipped: it needs the ROS distribution index (raw.githubusercontent.com), which is
  not reachable here; `make venv` installed what it would.
- `pip install ...` runs with PIP_NO_INDEX=1: it is already satisfied, and must not download.
- Scale-down options are appended (never replacing anything) to the data and training commands, so
  training takes seconds: a tiny synthetic set and one epoch.
- The last command runs until Ctrl-C: the test starts it itself, in the shell state (working
  directory and environment) the commands before it left.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from support import REPO

SECTION = "## Into a ROS 2 workspace"
CLONE = "git clone <this repository> fast_scnn_ros"
SKIPPED = ("rosdep ",)
CHECKOUT_OUTPUTS = {".venv", ".git", "build", "install", "log", "runs", "data", "demo", "dist"}
SCALE_DOWN = {
    "fast-scnn synth": "--train 4 --val 2 --size 64x128",
    "ros2 run fast_scnn_core train": "epochs=1 batch_size=2 data.crop_size=[64,64] data.workers=0",
}


def section_commands(section: str = SECTION) -> list[list[str]]:
    """The commands of each ```bash block of a README section, by default the workspace section (continuations
    joined, comments dropped)."""
    readme = (REPO / "README.md").read_text()
    start = readme.index(section)
    end = readme.find("\n## ", start + len(section))
    blocks = re.findall(r"```bash\n(.*?)```", readme[start:end], re.S)
    assert blocks, f"README.md: no ```bash block under {section!r}"
    commands = []
    for block in blocks:
        joined = re.sub(r"\\\n\s*", "", block)
        lines = (re.sub(r"\s+#.*$", "", line).strip() for line in joined.splitlines())
        commands.append([line for line in lines if line and not line.startswith("#")])
    return commands


def adapted(command: str, working_tree: Path) -> str | None:
    """The command as the test runs it (None: skipped), following the rules of this module's docstring."""
    if command.startswith(SKIPPED):
        return None
    if CLONE in command:
        command = command.replace(CLONE, f"cp -a {working_tree} fast_scnn_ros")
    for prefix, options in SCALE_DOWN.items():
        if command.startswith(prefix):
            command = f"{command} {options}"
    return command


def not_in_a_clone(folder: str, names: list[str]) -> set[str]:
    """What a fresh clone lacks: the venv, build outputs, runs and data of the checkout (top level), caches."""
    top = CHECKOUT_OUTPUTS if Path(folder) == REPO else set()
    return {n for n in names if n in top or n.endswith(".egg-info") or n.endswith("_cache") or n == "__pycache__"}


@dataclass
class Workspace:
    """A colcon workspace after the section's commands but the last; `env` and `cwd` are the shell's state."""

    env: dict[str, str]
    cwd: Path
    last_command: str
    log: str

    @property
    def checkpoint(self) -> Path:
        path = self.cwd / "runs/synth/best.pt"
        assert path.is_file(), f"the README's training left no {path}:\n{self.log}"
        return path

    def shell(self, command: str) -> subprocess.CompletedProcess:
        """Run `command` in bash in this shell state."""
        return subprocess.run(
            ["bash", "-c", command], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=120
        )


def build_workspace(home: Path, env: dict[str, str]) -> Workspace:
    """Run the section's first block but its last command, in order, with HOME=`home` (so ~/ros2_ws is fresh)."""
    working_tree = home / "checkout"
    shutil.copytree(REPO, working_tree, ignore=not_in_a_clone, symlinks=True)
    *commands, last = section_commands()[0]
    state = home / "shell-state"
    script = ["set -eo pipefail", "set -x", "cd ~"]
    script += [c for c in (adapted(command, working_tree) for command in commands) if c is not None]
    script += [f"pwd > {state}.cwd", f"env -0 > {state}.env"]
    env = {**env, "HOME": str(home), "PIP_NO_INDEX": "1"}
    env.pop("PYTHONPATH", None)  # the workspace's own install/setup.bash sets it
    result = subprocess.run(["bash", "-c", "\n".join(script)], env=env, capture_output=True, text=True, timeout=900)
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"a command of README.md's {SECTION!r} failed (the last one traced):\n{log[-6000:]}"
    shell_env = dict(item.split("=", 1) for item in Path(f"{state}.env").read_text().split("\0") if "=" in item)
    return Workspace(shell_env, Path(Path(f"{state}.cwd").read_text().strip()), last, log)
