"""The `fast-scnn` command table: `--help` of the program and of every command answers without loading torch.

Command modules import torch, onnxruntime, openvino, nncf, cv2, rosbags and ray only inside the function that runs the
command (as git's and pip's subcommands load only what they use); each help runs in a fresh
interpreter, which then reports which of those it imported. A bound on what help imports, not on time.
"""

from __future__ import annotations

import sys

import pytest
from support import run_command

from fast_scnn_core.cli import COMMANDS

HEAVY = ("torch", "onnxruntime", "openvino", "nncf", "cv2", "rosbags", "ray")

# Runs `fast-scnn ARGV` in this interpreter, then prints the heavy modules it imported.
PROBE = """
import sys
from fast_scnn_core.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print([name for name in {heavy!r} if name in sys.modules])
"""

HELPS = [["--help"], *([name, "--help"] for name, _, _ in COMMANDS)]


@pytest.mark.cli
@pytest.mark.parametrize("argv", HELPS, ids=" ".join)
def test_help_imports_no_torch(argv: list[str]) -> None:
    result = run_command([sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)], timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: fast-scnn"), result.stdout
    *_, imported = result.stdout.strip().splitlines()
    assert imported == "[]", f"`fast-scnn {' '.join(argv)}` imported {imported}"


def test_every_command_is_a_module_of_the_cli_package() -> None:
    names = [name for name, _, _ in COMMANDS]
    assert names[:6] == ["synth", "train", "eval", "predict", "label-bag", "bag-to-dataset"]
    assert names[6:] == ["label-bags", "bags-to-dataset", "export", "bench", "info", "import-weights", "quantize"]
    for name, module, _ in COMMANDS:
        assert module == f"fast_scnn_core.cli.{name.replace('-', '_')}"


def test_bag_command_help_names_the_librarys_values() -> None:
    """--help states the CPU batch and the storages without importing the bag library: the same values."""
    from fast_scnn_core.bags.io import STORAGES
    from fast_scnn_core.bags.label import CPU_BATCH
    from fast_scnn_core.cli.bag_args import STORAGE_NAMES
    from fast_scnn_core.cli.label_bag import CPU_BATCH_HELP

    assert CPU_BATCH_HELP == CPU_BATCH
    assert tuple(STORAGES) == STORAGE_NAMES
