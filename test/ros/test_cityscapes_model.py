"""The README's "A Cityscapes model in three commands", run as written (all but the download), in one directory.

The download is the user's own step and is skipped: mmseg_random.pth (../shared/weights-fixtures: random
weights laid out as mmsegmentation saves its published checkpoint) is copied under the published file
name instead. Its sha256 is not the one that name carries, so the import warns, with the line the README
shows. `street.png` is a small generated image. The other commands run in a shell as typed: the import,
`fast-scnn predict`, and `ros2 launch` until Ctrl-C, with a camera and a planner around it.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np
import pytest
from harness import Ros2, image_yaml
from support import REPO, run_command, tree_env
from workspace import section_commands

from fast_scnn_core.infer.segmenter import Segmenter
from fast_scnn_core.labels import CITYSCAPES
from fast_scnn_core.model.checkpoint import class_set_of, load_checkpoint
from fast_scnn_core.model.weights import PUBLISHED

SECTION = "## A Cityscapes model in three commands"
PROGRAMS = ("curl ", "fast-scnn import-weights ", "ros2 launch ", "fast-scnn predict ")  # in the section's order
H, W = 48, 64
# The shell of the venv the tests run in, its bin/ first on PATH as `source .venv/bin/activate` puts it (ros2 launch
# runs in the `ros2` fixture's environment, which also names the venv in AMENT_PREFIX_PATH as activate does).
SHELL_ENV = tree_env(PATH=f"{Path(sys.executable).parent}:{tree_env()['PATH']}")


def readme_commands() -> dict[str, str]:
    """The section's commands by program (the PROGRAMS, each once, in that order)."""
    commands = [command for block in section_commands(SECTION) for command in block]
    assert [next(p for p in PROGRAMS if c.startswith(p)) for c in commands] == list(PROGRAMS), commands
    return {program.strip(): command for program, command in zip(PROGRAMS, commands, strict=True)}


def shell(command: str, cwd: Path) -> str:
    """`command` as typed in a shell in `cwd`; what it printed (stdout, then stderr), asserting exit status 0."""
    result = run_command(["bash", "-c", command], env=SHELL_ENV, cwd=cwd, timeout=180)
    assert result.returncode == 0, f"{command} -> {result.returncode}\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def imported(weights_fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The user's directory after the download (the stand-in, under the URL's file name) and the import as
    written; with what the import printed."""
    commands = readme_commands()
    url = commands["curl"].split()[-1]
    assert url == PUBLISHED["mmseg"].url
    downloaded = Path(urlparse(url).path).name
    assert f" {downloaded} " in commands["fast-scnn import-weights"]
    folder = tmp_path_factory.mktemp("user")
    shutil.copy(weights_fixtures / "mmseg_random.pth", folder / downloaded)
    return folder, shell(commands["fast-scnn import-weights"], folder)


@pytest.mark.cli
def test_the_import_writes_the_mmseg_model_and_warns_as_the_readme_shows(imported: tuple[Path, str]) -> None:
    folder, output = imported
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index(SECTION) : readme.index("\n## ", readme.index(SECTION) + 1)]
    [documented] = re.findall(r"^\s*(fast-scnn import-weights: warning: .*)$", section, re.M)
    assert documented in output.splitlines(), output
    assert output.startswith("wrote cityscapes.pt: OpenMMLab mmsegmentation "), output
    payload = load_checkpoint(folder / "cityscapes.pt")
    assert payload["variant"] == "mmseg" and class_set_of(payload) == CITYSCAPES
    assert payload["imported_from"]["reported_miou"] is None  # the stand-in is not the published file


@pytest.mark.cli
def test_predict_writes_the_segmenters_labels_of_the_street(imported: tuple[Path, str]) -> None:
    folder, _ = imported
    rgb = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
    assert cv2.imwrite(str(folder / "street.png"), rgb[:, :, ::-1])
    shell(readme_commands()["fast-scnn predict"], folder)
    labels = cv2.imread(str(folder / "out/street_labels.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(labels, Segmenter.from_checkpoint(folder / "cityscapes.pt")(rgb).labels)
    assert (folder / "out/street_color.png").is_file() and (folder / "out/street_overlay.png").is_file()


@pytest.mark.ros_process
def test_the_launch_command_publishes_labels_for_a_planner(ros2: Ros2, imported: tuple[Path, str]) -> None:
    """`ros2 launch` as typed (the shell expands $PWD) on the default camera topic; Ctrl-C ends it cleanly."""
    folder, _ = imported
    launch = ros2.start_command(["bash", "-c", readme_commands()["ros2 launch"]], cwd=folder, terminal=True)
    launch.wait_for("segmenting /camera/image_raw ")
    assert f"19 classes from {folder / 'cityscapes.pt'})" in launch.output()
    rgb = np.random.default_rng(4).integers(0, 256, (H, W, 3), dtype=np.uint8)
    camera = ros2.publish("/camera/image_raw", "sensor_msgs/msg/Image", image_yaml(rgb, "street_camera"))
    labels = ros2.receive("/segmentation/labels", "sensor_msgs/msg/Image", "street_camera")
    camera.stop()
    assert (labels["height"], labels["width"], labels["encoding"]) == (H, W, "mono8")
    assert launch.interrupt() == 0, launch.output()
    assert "Traceback" not in launch.output()
