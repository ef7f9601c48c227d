"""docs/training.md and the README's Training section: every command runs as written.

The commands run in order in one folder holding `config/` and, in `data/cityscapes`, a synthetic
dataset in the Cityscapes layout (train, val, test, train_extra with gtCoarse) plus a folder-format
dataset in `data/robot`. Training commands get one epoch and small crops appended (`TINY`), so the
paper's recipe finishes on a CPU. `fast-scnn ...` runs in this process (the console script calls
the same `main`); other commands (torchrun, the official evaluation) run in a shell.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from support import REPO, run_command, tree_env

from fast_scnn_core.cli import main
from fast_scnn_core.data.synthetic import write_synthetic_dataset

TINY = ["epochs=1", "data.crop_size=[64,128]", "data.workers=0", "plots=false"]
# Where a documented command needs CUDA, this CPU machine must refuse it for that reason (a GPU one trains).
CPU_REFUSALS = {"sync_bn=true": "sync_bn=true needs CUDA"}


def bash_commands(markdown: str) -> list[list[str]]:
    """The commands of the ```bash blocks as argument lists (continuations joined, comments dropped)."""
    lines = "\n".join(re.findall(r"```bash\n(.*?)```", markdown, re.S)).replace("\\\n", " ").splitlines()
    return [argv for argv in (shlex.split(line, comments=True) for line in lines) if argv]


def documented() -> list[list[str]]:
    readme = (REPO / "README.md").read_text()
    training = readme[readme.index("## Training\n") :]
    training = training[: training.index("\n## ", 1)]
    unique = {shlex.join(argv): argv for argv in bash_commands((REPO / "docs/training.md").read_text())}
    for argv in bash_commands(training):
        assert shlex.join(argv) in unique, f"README command not in docs/training.md: {shlex.join(argv)}"
    return list(unique.values())


COMMANDS = documented()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    (root / "config").symlink_to(REPO / "config")
    cityscapes = root / "data/cityscapes"
    write_synthetic_dataset(cityscapes, {"train": 24, "val": 4, "test": 2}, 64, 128)
    for image in (cityscapes / "leftImg8bit/train").rglob("*.png"):  # train_extra: the train frames, coarse
        label = cityscapes / "gtFine/train" / image.parent.name / image.name.replace("leftImg8bit", "gtFine_labelIds")
        extra = cityscapes / "gtCoarse/train_extra" / image.parent.name
        extra.mkdir(parents=True, exist_ok=True)
        shutil.copy(label, extra / label.name.replace("gtFine", "gtCoarse"))
        (cityscapes / "leftImg8bit/train_extra" / image.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(image, cityscapes / "leftImg8bit/train_extra" / image.parent.name / image.name)
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("val", 2)):
        for kind in ("images", "masks"):
            (root / "data/robot" / kind / split).mkdir(parents=True)
        for i in range(count):
            mask = np.kron(rng.integers(0, 5, (4, 8)), np.ones((16, 16), np.int64)).astype(np.uint8)
            cv2.imwrite(str(root / f"data/robot/images/{split}/{i}.jpg"), (mask[..., None] * 50).repeat(3, -1))
            cv2.imwrite(str(root / f"data/robot/masks/{split}/{i}.png"), mask)
    return root


# Training runs in this process; torchrun and the official evaluation run as subprocesses.
@pytest.mark.training
@pytest.mark.cli
@pytest.mark.parametrize("argv", COMMANDS, ids=[shlex.join(argv)[:80] for argv in COMMANDS])
def test_documented_command_runs(
    argv: list[str], sandbox: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """In document order: each command's outputs (runs/, results/) are the next ones' inputs."""
    monkeypatch.chdir(sandbox)
    argv = [*argv, *TINY] if "train" in argv else argv
    if argv[0] == "fast-scnn":
        status, err = main(argv[1:]), capsys.readouterr().err
    else:
        env = tree_env(OMP_NUM_THREADS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        result = run_command(shlex.join(argv), env=env, shell=True, executable="/bin/bash")
        status, err = result.returncode, result.stderr + result.stdout
    refusal = next((message for flag, message in CPU_REFUSALS.items() if flag in argv), None)
    if refusal:
        assert status != 0 and refusal in err, err[-3000:]
    else:
        assert status == 0, err[-3000:]


def test_submission_and_its_check_are_documented() -> None:
    joined = [shlex.join(argv) for argv in COMMANDS]
    assert any("--label-ids" in c and "leftImg8bit/test" in c for c in joined)
    assert any(c.startswith("CITYSCAPES_DATASET=") and "evalPixelLevelSemanticLabeling" in c for c in joined)
    assert any("--predictions" in c for c in joined)
