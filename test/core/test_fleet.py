"""A fleet's recordings: `fast-scnn label-bags` and `bags-to-dataset` over many real bags, in local worker
processes and as tasks of a real local Ray instance (the session's `ray_local`).

Outputs are compared message for message with `fast-scnn label-bag` run on each bag alone. A worker's death is a
real one: the KILL_HOOK environment variable makes the worker labelling one bag SIGKILL itself after its first
frames, once.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from recordings import write_camera_bag
from rosbags.rosbag2 import Reader
from support import REPO, run_command, tree_env

from fast_scnn_core import cli
from fast_scnn_core.bags.fleet import KILL_HOOK, plan_jobs
from fast_scnn_core.errors import FastSCNNError
from fast_scnn_core.labels import CITYSCAPES
from fast_scnn_core.model.checkpoint import save_checkpoint
from fast_scnn_core.model.network import FastSCNN

# Worker processes (spawned, or Ray's) in every test that labels: not the unit tier (make test-fast).
pytestmark = pytest.mark.cli

TOPIC = "/camera/image_raw"
# One engine for the references and the fleet: torch (no ONNX export per worker), one thread, batches of 2.
ENGINE = ("--topic", TOPIC, "--backend", "torch", "--threads", "1", "--batch", "2")


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint: Path) -> Path:
    return tiny_checkpoint


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path) -> dict:
    """Three bags (a folder holding an mcap and a sqlite3 bag, and a bare .mcap file) and label-bag's output of each."""
    root = tmp_path_factory.mktemp("fleet")
    write_camera_bag(root / "drives/monday", "mcap", frames=7)
    write_camera_bag(root / "drives/tuesday", "sqlite3", frames=5, size=(40, 56))
    write_camera_bag(root / "wednesday", "mcap", frames=6)
    bags = {"monday": root / "drives/monday", "tuesday": root / "drives/tuesday", "wednesday": root / "wednesday"}
    bags["wednesday"] = root / "wednesday/wednesday.mcap"
    references = {}
    for name, bag in bags.items():
        out = root / "reference" / name
        assert cli.main(["label-bag", str(bag), str(out), "--checkpoint", str(checkpoint), *ENGINE]) == 0
        references[name] = read_bag(out)
    return {"inputs": [root / "drives", bags["wednesday"]], "bags": bags, "references": references}


def read_bag(path: Path) -> tuple[list, list[tuple[str, int, bytes]]]:
    """([(topic, type, QoS)], [(topic, recording time, bytes)] in recording order) of a bag."""
    with Reader(path) as reader:
        connections = sorted((c.topic, c.msgtype, str(c.ext.offered_qos_profiles)) for c in reader.connections)
        messages = [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]
    return connections, messages


def custom_data(path: Path) -> dict:
    return yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]["custom_data"] or {}


def label_bags(inputs: list[Path], out: Path, checkpoint: Path, *extra: str) -> int:
    argv = ["label-bags", *map(str, inputs), "--out", str(out), "--checkpoint", str(checkpoint), *ENGINE, *extra]
    return cli.main(argv)


def summary_of(out: Path, command: str = "label-bags") -> dict[str, dict]:
    """{output name: its row} of the JSON summary the run wrote."""
    summary = json.loads((out / f"{command}.json").read_text())
    return {Path(row["out"]).name: row for row in summary["bags"]}


@pytest.mark.cli
def test_the_ray_cluster_commands_in_the_readme_run_as_written(tmp_path: Path, checkpoint: Path) -> None:
    """`ray start --head`, label-bags --ray auto, `ray stop`, as README.md writes them (in a shell, in order).

    First in this module: `ray stop` ends every Ray process of the machine, so it runs before the session's
    local instance (ray_local) starts.
    """
    commands = readme_block("Labelling a fleet's recordings", 1)
    assert commands[0][:3] == ["ray", "start", "--head"] and commands[-1] == ["ray", "stop"]
    write_readme_files(tmp_path)
    env = tree_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    try:
        for argv in commands:
            result = run_command(argv, env=env, cwd=tmp_path, timeout=240)
            assert result.returncode == 0, (argv, result.stdout[-2000:], result.stderr[-4000:])
    finally:
        run_command(["ray", "stop"], env=env, cwd=tmp_path)
    rows = summary_of(tmp_path / "shared/labelled")
    assert {name: row["status"] for name, row in rows.items()} == {"monday": "done", "tuesday": "done"}


def readme_block(section: str, index: int) -> list[list[str]]:
    """The commands of the `index`-th bash block of README.md's `section`, continued lines joined."""
    readme = (REPO / "README.md").read_text()
    body = re.search(rf"## {re.escape(section)}\n(.*?)\n## ", readme, re.S)
    assert body, f"README.md has no section {section}"
    blocks = re.findall(r"```bash\n(.*?)```", body.group(1), re.S)
    lines = blocks[index].replace("\\\n", " ").splitlines()
    return [shlex.split(line) for line in lines if line.strip() and not line.startswith("#")]


def write_readme_files(root: Path) -> None:
    """What the README's fleet commands read: the quick start's checkpoint and two recordings."""
    save_checkpoint(root / "runs/synth/best.pt", FastSCNN(19), CITYSCAPES)
    for name, storage in (("monday", "mcap"), ("tuesday", "sqlite3")):
        write_camera_bag(root / "shared/recordings" / name, storage, frames=6, size=(64, 128))


@pytest.mark.parametrize("runner", ["local", "ray"])
def test_every_bag_is_labelled_as_label_bag_labels_it(
    tmp_path: Path, checkpoint: Path, fleet: dict, runner: str, request: pytest.FixtureRequest, capsys
) -> None:
    how = ["--workers", "2"] if runner == "local" else ["--ray"]
    if runner == "ray":
        request.getfixturevalue("ray_local")
    out = tmp_path / "labelled"
    assert label_bags(fleet["inputs"], out, checkpoint, *how) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((out / "label-bags.json").read_text())
    rows = summary_of(out)
    assert list(rows) == ["monday", "tuesday", "wednesday"]
    for name, reference in fleet["references"].items():
        assert read_bag(out / name) == reference, name  # every message: topic, recording time, bytes
        assert custom_data(out / name)["fast_scnn.labelled_from"] == str(fleet["bags"][name])
        frames = sum(1 for topic, _, _ in reference[1] if topic == TOPIC)
        assert rows[name] | {"seconds": 0} == {
            "bag": str(fleet["bags"][name]),
            "out": str(out / name),
            "status": "done",
            "frames": frames,
            "skipped": 0,
            "seconds": 0,
            "attempts": 1,
            "reason": "",
        }
    assert not list(out.glob("*.partial"))


@pytest.mark.parametrize("runner", ["local", "ray"])
def test_a_worker_killed_mid_bag_is_redone_and_the_bag_is_complete(
    tmp_path: Path,
    checkpoint: Path,
    fleet: dict,
    runner: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    how = ["--workers", "1"] if runner == "local" else ["--ray"]
    if runner == "ray":
        request.getfixturevalue("ray_local")
    marker = tmp_path / "killed"
    monkeypatch.setenv(KILL_HOOK, f"monday:{marker}")
    out = tmp_path / "labelled"
    assert label_bags([fleet["bags"]["monday"], fleet["bags"]["tuesday"]], out, checkpoint, *how) == 0
    assert marker.exists(), "the worker was not killed"
    rows = summary_of(out)
    assert (rows["monday"]["status"], rows["monday"]["attempts"]) == ("done", 2), rows
    assert (rows["tuesday"]["status"], rows["tuesday"]["attempts"]) == ("done", 1)
    assert read_bag(out / "monday") == fleet["references"]["monday"]
    assert read_bag(out / "tuesday") == fleet["references"]["tuesday"]


def test_a_damaged_bag_or_a_dying_worker_fails_alone(
    tmp_path: Path, checkpoint: Path, fleet: dict, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    cut = tmp_path / "cut"
    write_camera_bag(cut, "mcap", frames=20)
    os.truncate(cut / "cut.mcap", (cut / "cut.mcap").stat().st_size // 2)  # killed mid-recording: no index
    monkeypatch.setenv(KILL_HOOK, f"tuesday:{tmp_path / 'killed'}")  # with --retries 0: one death is the end
    out = tmp_path / "labelled"
    inputs = [cut, fleet["bags"]["monday"], fleet["bags"]["tuesday"]]
    assert label_bags(inputs, out, checkpoint, "--workers", "1", "--retries", "0") == 2
    rows = summary_of(out)
    assert rows["cut"]["status"] == "failed" and "cut: cannot open the bag" in rows["cut"]["reason"]
    assert "mcap recover" in rows["cut"]["reason"]
    assert rows["tuesday"]["status"] == "failed"
    assert rows["tuesday"]["reason"] == "its worker process died in each of 1 attempts (last: signal 9)"
    assert rows["monday"]["status"] == "done" and read_bag(out / "monday") == fleet["references"]["monday"]
    err = capsys.readouterr().err
    assert f"{cut} failed: {cut}: cannot open the bag" in err
    assert "3 bags: 2 failed, 1 done" in err
    assert not (out / "cut").exists() and not (out / "tuesday").exists()


@pytest.mark.cli
def test_after_ctrl_c_a_rerun_does_only_the_unfinished_bags(tmp_path: Path, checkpoint: Path) -> None:
    drives = tmp_path / "drives"
    write_camera_bag(drives / "a_short", "mcap", frames=4)
    for name in ("b_long", "c_long"):
        write_camera_bag(drives / name, "mcap", frames=150)
    out = tmp_path / "labelled"
    command = [sys.executable, "-m", "fast_scnn_core", "label-bags", str(drives), "--out", str(out)]
    command += ["--checkpoint", str(checkpoint), "--topic", TOPIC, "--workers", "1", "--backend", "torch"]
    # Inference at 256x512 (labels come back at 48x64): b_long lasts 10-20 s, so Ctrl-C lands mid-bag.
    slow = ["--width", "512", "--height", "256"]
    proc = subprocess.Popen(
        [*command, *slow],
        env=tree_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    storage = out / "b_long.partial" / "b_long" / "b_long.mcap"
    deadline = time.monotonic() + 120
    while not ((out / "a_short").exists() and storage.exists()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(1.0)  # into b_long, whose 150 frames at 256x512 take several seconds: Ctrl-C lands mid-bag
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground process group
    stdout, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    rows = {Path(row["out"]).name: row for row in json.loads(stdout)["bags"]}
    assert [rows[n]["status"] for n in ("a_short", "b_long", "c_long")] == ["done", "interrupted", "not started"]
    assert "run the same command again to do only those" in err
    assert "interrupted" in custom_data(storage.parent)["fast_scnn.incomplete"]  # readable, marked
    assert not (out / "b_long").exists() and not (out / "c_long.partial").exists()
    finished = (out / "a_short" / "metadata.yaml").stat().st_mtime_ns

    result = run_command(command, timeout=240)
    assert result.returncode == 0, result.stderr
    rows = {Path(row["out"]).name: row for row in json.loads(result.stdout)["bags"]}
    assert [rows[n]["status"] for n in ("a_short", "b_long", "c_long")] == ["exists", "done", "done"]
    assert (out / "a_short" / "metadata.yaml").stat().st_mtime_ns == finished  # not redone
    for name in ("b_long", "c_long"):
        labels = [t for topic, t, _ in read_bag(out / name)[1] if topic.endswith("/labels")]
        assert len(labels) == rows[name]["frames"] == 150
    assert not list(out.glob("*.partial"))


@pytest.mark.cli
def test_ctrl_c_cancels_the_ray_tasks_and_marks_their_outputs(tmp_path: Path, checkpoint: Path) -> None:
    """--ray starting its own local instance; Ctrl-C: ray.cancel, each running bag's OUT.partial closed and marked."""
    drives = tmp_path / "drives"
    for name in ("a", "b"):
        write_camera_bag(drives / name, "mcap", frames=150)
    out = tmp_path / "labelled"
    command = [sys.executable, "-m", "fast_scnn_core", "label-bags", str(drives), "--out", str(out), "--checkpoint"]
    command += [str(checkpoint), "--topic", TOPIC, "--backend", "torch", "--width", "512", "--height", "256"]
    proc = subprocess.Popen(
        [*command, "--threads", "1", "--ray"],
        env=tree_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not all((out / f"{name}.partial" / name / f"{name}.mcap").exists() for name in ("a", "b")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(1.0)  # both tasks mid-bag (150 frames at 256x512 take several seconds)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    rows = {Path(row["out"]).name: row for row in json.loads(stdout)["bags"]}
    assert [rows[name]["status"] for name in ("a", "b")] == ["interrupted", "interrupted"]
    for name in ("a", "b"):
        assert "interrupted" in custom_data(out / f"{name}.partial" / name)["fast_scnn.incomplete"]
        assert not (out / name).exists()


def test_bags_to_dataset_writes_one_dataset_per_bag(tmp_path: Path, checkpoint: Path, fleet: dict) -> None:
    out = tmp_path / "datasets"
    argv = ["bags-to-dataset", *map(str, fleet["inputs"]), "--out", str(out), "--topic", TOPIC, "--every", "2"]
    assert cli.main([*argv, "--workers", "1"]) == 0
    rows = summary_of(out, "bags-to-dataset")
    assert {name: (row["status"], row["frames"]) for name, row in rows.items()} == {
        "monday": ("done", 4),
        "tuesday": ("done", 3),
        "wednesday": ("done", 3),
    }
    assert len(list((out / "monday" / "images").rglob("*.png"))) == 4


def test_inputs_are_checked_before_any_bag(tmp_path: Path, fleet: dict, capsys) -> None:
    drives, wednesday = fleet["inputs"]
    twice = tmp_path / "elsewhere" / "monday.mcap"
    twice.parent.mkdir()
    twice.write_bytes(b"")
    with pytest.raises(FastSCNNError, match=r"same name would write the same output: .*monday, .*monday\.mcap"):
        plan_jobs([drives, twice], tmp_path / "out")
    with pytest.raises(FastSCNNError, match="is inside the input folder"):
        plan_jobs([drives], drives / "labelled")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FastSCNNError, match="empty holds no bag"):
        plan_jobs([tmp_path / "empty"], tmp_path / "out")
    with pytest.raises(FastSCNNError, match="no such bag or folder"):
        plan_jobs([tmp_path / "missing"], tmp_path / "out")
    jobs = plan_jobs([drives, wednesday], tmp_path / "out")
    assert [(j.source.name, j.out.name) for j in jobs] == [
        ("monday", "monday"),
        ("tuesday", "tuesday"),
        ("wednesday.mcap", "wednesday"),
    ]
    argv = ["label-bags", str(drives), "--ray", str(wednesday), "--out", str(tmp_path), "--topic", TOPIC]
    assert cli.main([*argv, "--checkpoint", "x.pt"]) == 2
    assert "put --ray after IN..., or write --ray=ADDRESS" in capsys.readouterr().err


def test_ray_missing_is_one_line(tmp_path: Path, checkpoint: Path, fleet: dict, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the extra
    assert label_bags(fleet["inputs"], tmp_path / "out", checkpoint, "--ray") == 2
    assert "--ray needs Ray on this machine and every node: pip install 'fast-scnn-ros[ray]'" in capsys.readouterr().err


def test_the_fleet_commands_in_the_readme_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands = readme_block("Labelling a fleet's recordings", 0)
    monkeypatch.chdir(tmp_path)
    write_readme_files(tmp_path)
    for argv in commands:
        assert argv[0] == "fast-scnn"
        assert cli.main(argv[1:]) == 0, argv
    assert {row["status"] for row in summary_of(tmp_path / "shared/labelled").values()} == {"done"}
    assert {row["status"] for row in summary_of(tmp_path / "shared/datasets", "bags-to-dataset").values()} == {"done"}


@pytest.mark.cli
def test_fleet_speed_benchmark_runs() -> None:
    """bench/fleet_speed.py (docs/benchmarks.md) still runs; tiny bags, one fleet row (the tests above cover Ray)."""
    command = [sys.executable, str(REPO / "bench/fleet_speed.py"), "--bags", "2", "--frames", "4", "--size", "64x128"]
    result = run_command([*command, "--backend", "torch", "--workers", "1", "--no-ray"])
    assert result.returncode == 0, result.stderr
    assert "| label-bag, one bag after another, one engine (in process) |" in result.stdout
    assert "| label-bags --workers 1 |" in result.stdout
