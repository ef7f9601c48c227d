"""`make demo` end to end, scaled down: synth -> train -> installed node -> camera + planner -> report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from support import tree_env

pytestmark = [pytest.mark.ros_process, pytest.mark.training]


def test_demo_runs_every_step_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = tree_env()
    result = subprocess.run(
        [sys.executable, "-m", "fast_scnn_ros.tools.demo", "--out", str(out), "--epochs", "1", "--frames", "6"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = (out / "report.txt").read_text()
    assert "frames sent / labels received: 6 / " in report
    assert "node exit code after SIGINT: 0" in report
    assert (out / "run/best.pt").is_file() and (out / "data/leftImg8bit/train").is_dir()
    assert (out / "demo_0.png").is_file() and (out / "ground_truth.png").is_file()
    assert "demo passed" in result.stdout
    # Issue 20: what the training step does, before its bar; pictures with titles over a legend (256-pixel frames).
    assert "training on synthetic data: 3 iterations (24 frames in batches of 8, 1 epoch)" in result.stdout
    height, width, _ = cv2.imread(str(out / "ground_truth.png")).shape
    assert width == 3 * 512 and height >= 24 + 256 + 24
    # Issue 19: the node's ground grid, received by the planner and drawn from above beside the camera view.
    assert "ground grids received: 0" not in report and "ground grids received: " in report
    picture = cv2.imread(str(out / "ground_grid.png"))
    assert picture.shape[1] == 2 * 512 + 256 and (out / "ground_grid.png").name in report
