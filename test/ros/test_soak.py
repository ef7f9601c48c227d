"""bench/soak.py (docs/ros.md, "Soak") runs and passes: seconds at a tiny size instead of the documented 10 minutes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness import REPO


def test_soak_overloads_the_node_changes_parameters_and_reports(tmp_path: Path) -> None:
    command = [sys.executable, str(REPO / "bench/soak.py"), "--duration", "8", "--size", "64x96"]
    command += ["--change-every", "1", "--measure", "2", "--window", "2", "--out", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("ROS_DOMAIN_ID")  # its own domain (from its pid): no other test's node answers as fast_scnn
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads((tmp_path / "soak_64x96_8s.json").read_text())
    assert report["passed"] and all(report["checks"].values())
    assert report["publish_fps"] == 2 * report["sustainable_fps"]
    assert report["counters"]["frames_dropped"] > 0  # overloaded: the node drops, it does not queue
    answers = {(json.dumps(c["values"]), c["accepted"]) for c in report["changes"]}
    assert ('{"width": 16385}', False) in answers and ('{"mode": "prob"}', True) in answers
    assert {"labels", "color", "overlay", "confidence", "camera_info"} <= set(report["outputs_received"])
    assert len(report["samples"]) >= 8 and report["rss_mb"]["last_window"] > 0
    assert "| 8 s | 64x96 |" in (tmp_path / "soak_64x96_8s.md").read_text()
