"""The node benchmarks of docs/ros.md still run: tiny images and seconds instead of the documented sizes and minutes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from harness import REPO


def run_bench(script: str, *args: str) -> str:
    """`python bench/<script> ARGS` in its own DDS domain (from its pid): no other test's node answers as fast_scnn."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("ROS_DOMAIN_ID")
    command = [sys.executable, str(REPO / "bench" / script), *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout


def test_node_latency_splits_the_overhead_and_times_the_parts_against_a_revision() -> None:
    out = run_bench(
        "node_latency.py", "--sizes", "64x96", "--frames", "1", "--warmup", "1", "--outputs", "all",
        "--against", "HEAD", "--repeats", "1",
    )  # fmt: skip
    assert re.search(r"^\| 64x96 \| \d+ \| \d+ \| [\d.-]+ \| [\d.-]+ % \| ([\d.-]+ / ){3}[\d.-]+ \|$", out, re.M), out
    assert "| part | HEAD | this tree |" in out and "| overlay -> Image |" in out


def test_soak_overloads_the_node_changes_parameters_and_reports(tmp_path: Path) -> None:
    run_bench(
        "soak.py", "--duration", "8", "--size", "64x96", "--change-every", "1", "--measure", "2", "--window", "2",
        "--out", str(tmp_path),
    )  # fmt: skip
    report = json.loads((tmp_path / "soak_64x96_8s.json").read_text())
    assert report["passed"] and all(report["checks"].values())
    assert report["publish_fps"] == 2 * report["sustainable_fps"]
    assert report["counters"]["frames_dropped"] > 0  # overloaded: the node drops, it does not queue
    answers = {(json.dumps(c["values"]), c["accepted"]) for c in report["changes"]}
    assert ('{"width": 16385}', False) in answers and ('{"mode": "prob"}', True) in answers
    assert {"labels", "color", "overlay", "confidence", "camera_info"} <= set(report["outputs_received"])
    assert len(report["samples"]) >= 8 and report["rss_mb"]["last_window"] > 0
    assert "| 8 s | 64x96 |" in (tmp_path / "soak_64x96_8s.md").read_text()
