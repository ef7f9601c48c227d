"""The node benchmarks of docs/ros.md still run: each documented command as written, with tiny images and seconds
appended (argparse keeps the last value of a flag) instead of the documented sizes and minutes."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO, tree_env

pytestmark = pytest.mark.ros_process


def documented(script: str) -> list[list[str]]:
    """The arguments of each `python bench/<script> ...` line of docs/ros.md's ```bash blocks."""
    blocks = "\n".join(re.findall(r"```bash\n(.*?)```", (REPO / "docs/ros.md").read_text(), re.S))
    commands = [shlex.split(line, comments=True) for line in blocks.splitlines()]
    found = [argv[2:] for argv in commands if argv[:2] == ["python", f"bench/{script}"]]
    assert found, f"docs/ros.md has no `python bench/{script}` command"
    return found


def run_bench(script: str, *args: str) -> str:
    """`python bench/<script> ARGS` in its own DDS domain (from its pid): no other test's node answers as fast_scnn."""
    env = tree_env()
    env.pop("ROS_DOMAIN_ID")
    command = [sys.executable, str(REPO / "bench" / script), *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout


@pytest.mark.parametrize("command", documented("node_latency.py"), ids=" ".join)
def test_node_latency_splits_the_overhead_and_times_the_parts_against_a_revision(command: list[str]) -> None:
    out = run_bench(
        "node_latency.py", *command, "--sizes", "64x96", "--frames", "1", "--warmup", "1", "--against", "HEAD",
        "--repeats", "1",
    )  # fmt: skip
    assert re.search(r"^\| 64x96 \| \d+ \| \d+ \| [\d.-]+ \| [\d.-]+ % \| ([\d.-]+ / ){3}[\d.-]+ \|$", out, re.M), out
    assert "| part | HEAD | this tree |" in out and "| overlay -> Image |" in out
    assert re.search(r"^transport floor at 64x96: .* round trip median [\d.]+ ms", out, re.M), out


def test_soak_overloads_the_node_changes_parameters_and_reports(tmp_path: Path) -> None:
    [command] = documented("soak.py")
    run_bench(
        "soak.py", *command, "--duration", "8", "--size", "64x96", "--change-every", "1", "--measure", "2",
        "--window", "2", "--out", str(tmp_path),
    )  # fmt: skip
    report = json.loads((tmp_path / "soak_64x96_8s.json").read_text())
    assert report["passed"] and all(report["checks"].values())
    assert report["publish_fps"] == 2 * report["sustainable_fps"]
    assert report["counters"]["frames_dropped"] > 0  # overloaded: the node drops, it does not queue
    # Counters over the soak only, like the latencies: not the rate measurement's frames (3 warm-up + 1 or more)
    assert report["counters_since_start"]["frames_processed"] - report["counters"]["frames_processed"] >= 4
    assert report["frames_sent_measuring"] >= 4
    answers = {(json.dumps(c["values"]), c["accepted"]) for c in report["changes"]}
    assert ('{"width": 16385}', False) in answers and ('{"mode": "prob"}', True) in answers
    assert {"labels", "color", "overlay", "confidence", "camera_info"} <= set(report["outputs_received"])
    assert report["changes_refused"] >= 1 and report["changes_accepted"] == len(report["changes"]) - 1
    rss = report["rss_mb"]
    assert len(report["samples"]) >= 8 and min(rss["at_start"], rss["first_window"], rss["last_window"]) > 0
    assert abs(rss["slope_mb_per_min"]) < float("inf")
    assert "| 8 s | 64x96 |" in (tmp_path / "soak_64x96_8s.md").read_text()


def test_camera_ring_compares_one_node_for_the_cameras_with_one_node_per_camera() -> None:
    [command] = documented("camera_ring.py")
    out = run_bench(
        "camera_ring.py", *command, "--size", "64x96", "--rate", "5", "--seconds", "2", "--warmup", "2",
        "--runs", "1", "--cameras", "front", "rear",
    )  # fmt: skip
    setups = r"one node, cameras: \[front, rear\], max_batch [12]|2 nodes, one camera each"
    rows = re.findall(rf"^\| ({setups}) \| 1 \|(.*)\|$", out, re.M)
    assert len(rows) == 3, out
    for setup, cells in rows:
        rss, pss, cpu, cores, fps, total, latency = (cell.strip() for cell in cells.split("|"))
        assert float(rss) >= float(pss) > 0 and float(cpu) > 0 and float(cores) >= 0 and float(total) > 0, setup
        assert re.fullmatch(r"\d+ / \d+", latency), setup
        assert all(float(v) > 0 for v in fps.split(", ")), f"{setup}: a camera got no labels"
    summary = r"against 2 nodes, mean of the runs: RSS \d+ %, PSS \d+ %, labelled frames/s \d+ %, CPU per labelled"
    assert len(re.findall(summary, out)) == 2, out


def test_ground_projection_bench_times_the_documented_steps() -> None:
    [command] = documented("ground_projection.py")
    out = run_bench("ground_projection.py", *command, "--size", "64x128", "--frames", "3")
    for step in ("grid + both point sets (per frame)", "... and their three messages (per frame)", "backward table"):
        assert re.search(rf"^\| {re.escape(step)}.* \| [\d.]+ \| [\d.]+ \|$", out, re.M), out
