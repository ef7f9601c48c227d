"""Checkpoints that are bad in every way the fault campaign found: one clear line each, never a traceback.

The corpus is built here from a real checkpoint (torch.save of a crafted payload, the way a foreign
tool or an attacker would make one), plus files that are not checkpoints at all. Disk errors are
real too: a small tmpfs that fills up, one mounted read-only (root only; skipped otherwise).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from models import TINY
from support import REPO, tree_env

from fast_scnn_core import cli
from fast_scnn_core.atomic import atomic_path, remove_stale_temporaries
from fast_scnn_core.errors import CheckpointError, StorageError
from fast_scnn_core.model import checkpoint as checkpoint_module
from fast_scnn_core.model.checkpoint import build_model, class_set_of, load_checkpoint, save_checkpoint
from fast_scnn_core.model.network import FastSCNN
from fast_scnn_core.train.loop import train


def payload() -> dict:
    """A valid checkpoint payload (3 classes), as save_checkpoint writes it."""
    model = FastSCNN(3)
    return {
        "format": 1,
        "architecture": "fast_scnn",
        "arch_version": 1,
        "num_classes": 3,
        "classes": TINY.to_dict(),
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "model": model.state_dict(),
        "train_config": {},
        "epoch": 0,
        "iteration": 0,
        "metrics": {},
        "training_state": {},
    }


def crafted(change: Callable[[dict], object]) -> Callable[[Path], Path]:
    """A corpus entry: a valid payload altered in place by `change`, saved with torch.save."""

    def make(path: Path) -> Path:
        data = payload()
        change(data)
        torch.save(data, path)
        return path

    return make


def saved(value: object) -> Callable[[Path], Path]:
    """A corpus entry: torch.save of something other than a checkpoint payload."""

    def make(path: Path) -> Path:
        torch.save(value, path)
        return path

    return make


def written(content: bytes) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        path.write_bytes(content)
        return path

    return make


def truncated(path: Path) -> Path:
    save_checkpoint(path, FastSCNN(3), TINY)
    path.write_bytes(path.read_bytes()[:100_000])
    return path


def directory(path: Path) -> Path:
    path.mkdir()
    return path


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


class Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def first_weight(data: dict) -> torch.Tensor:
    return next(iter(data["model"].values()))


def set_in(data: dict, key: str, value: object) -> None:
    target = data
    *parents, last = key.split(".")
    for parent in parents:
        target = target[parent]
    target[last] = value


def replace(key: str, value: object) -> Callable[[dict], None]:
    return lambda data: set_in(data, key, value)


def remove(key: str) -> Callable[[dict], None]:
    return lambda data: data.pop(key)


IMPORTED = {"source": "mmseg", "project": "OpenMMLab mmsegmentation", "file": "x.pth", "sha256": "0" * 64}

# (id, how to make the file, what its one line must say)
CORPUS = [
    ("format-as-string", crafted(replace("format", "1")), "format '1', expected a format version"),
    ("format-newer", crafted(replace("format", 99)), "format 99 is newer"),
    ("format-megabyte", crafted(replace("format", "x" * 1_000_000)), "format 'xxxx"),
    ("num-classes-as-string", crafted(replace("num_classes", "3")), "num_classes: expected an integer, got '3'"),
    ("num-classes-1e9", crafted(replace("num_classes", 10**9)), "num_classes 1000000000: expected the number"),
    ("duplicate-class-names", crafted(replace("classes.names", ["a", "a", "c"])), "class names must be unique"),
    ("colour-999", crafted(replace("classes.colors", [[999, 0, 0], [0, 255, 0], [0, 0, 255]])), "0..255"),
    ("colour-of-2", crafted(replace("classes.colors", [[9, 0], [0, 255, 0], [0, 0, 255]])), "expected 3 values"),
    ("mean-of-length-1", crafted(replace("mean", [0.5])), "mean: expected 3 values, got [0.5]"),
    ("std-0", crafted(replace("std", [0.229, 0.0, 0.225])), "expected finite values, std > 0"),
    ("std-nan", crafted(replace("std", [math.nan, 0.2, 0.2])), "std > 0"),
    ("std-tiny", crafted(replace("std", [1e-300, 0.2, 0.2])), "std > 0"),
    ("mean-as-text", crafted(replace("mean", "imagenet")), "mean: expected a list"),
    ("epoch-negative", crafted(replace("epoch", -1)), "expected >= 0"),
    ("weight-not-a-tensor", crafted(replace("model.extra", [1, 2])), "model['extra']: expected a tensor, got list"),
    ("unknown-key", crafted(replace("optimizer", {})), "unknown key(s) ['optimizer']"),
    ("missing-classes", crafted(remove("classes")), "missing ['classes']"),
    ("foreign-architecture", crafted(replace("architecture", "resnet")), "architecture 'resnet'"),
    ("other-arch-version", crafted(replace("arch_version", 7)), "architecture version 7"),
    ("unknown-variant", crafted(lambda data: data.update(format=2, variant="resnet")), "variant: expected one of"),
    ("variant-in-format-1", crafted(replace("variant", "mmseg")), "format 1 holds paper models only"),
    (
        "imported-from-bad-sha256",
        crafted(lambda data: data.update(format=2, imported_from=dict(IMPORTED, sha256="d3eb"))),
        "sha256 'd3eb': expected 64 lowercase hex digits",
    ),
    ("a-list", saved([1, 2, 3]), "not a fast-scnn checkpoint (it holds a list)"),
    ("nan-weight", crafted(lambda data: first_weight(data).view(-1).__setitem__(0, math.nan)), "holds 1 NaN and 0 inf"),
    (
        "inf-running-var",
        crafted(lambda data: data["model"]["learning_to_downsample.conv.bn.running_var"].fill_(math.inf)),
        "learning_to_downsample.conv.bn.running_var holds 0 NaN and 32 inf",
    ),
    ("pickle-with-code", saved({"model": Evil()}), "refers to Python code (print)"),
    ("plain-pickle", written(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00}\x94."), "not a PyTorch checkpoint"),
    ("text", written(b"hello, I am not a checkpoint"), "not a PyTorch checkpoint"),
    ("zip-of-random-bytes", written(b"PK\x03\x04" + bytes(range(256)) * 8), "truncated or damaged"),
    ("truncated", truncated, "truncated or damaged"),
    ("empty", written(b""), "is empty (0 bytes)"),
    ("directory", directory, "is a directory, not a file"),
    ("fifo", fifo, "is a FIFO"),
    ("missing", lambda path: path, "does not exist"),
]


@pytest.fixture(params=CORPUS, ids=[entry[0] for entry in CORPUS])
def bad_checkpoint(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    _, make, message = request.param
    return make(tmp_path / "bad.pt"), message


def assert_one_clear_line(message: str, expected: str) -> None:
    assert expected in message
    assert "\n" not in message and len(message) < 600
    assert "weights_only=False" not in message and "set to `False`" not in message  # never advise unsafe loading


def test_bad_checkpoints_are_refused_in_one_clear_line(bad_checkpoint: tuple[Path, str]) -> None:
    path, expected = bad_checkpoint
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert_one_clear_line(str(info.value), expected)
    assert str(path) in str(info.value)


def test_dev_zero_is_named_a_device() -> None:
    with pytest.raises(CheckpointError, match="/dev/zero is a character device"):
        load_checkpoint("/dev/zero")


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_cli_exits_2_with_one_line_for_every_bad_checkpoint(
    bad_checkpoint: tuple[Path, str], command: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Issue 13 #7: std 0 even gave exit 0 and a meaningless mIoU in eval."""
    path, expected = bad_checkpoint
    image = tmp_path / "street.png"
    cv2.imwrite(str(image), np.zeros((40, 48, 3), np.uint8))
    argv = {
        "eval": ["eval", "--checkpoint", str(path), "--data", str(tmp_path), "--workers", "0"],
        "predict": ["predict", str(image), "--checkpoint", str(path), "--out", str(tmp_path / "out")],
    }[command]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"fast-scnn {command}: error: ") and "Traceback" not in err
    assert_one_clear_line(err, expected)


def four_class_names(data: dict) -> None:
    data["classes"] = {"names": ["a", "b", "c", "d"], "colors": [[0, 0, 0]] * 4}


def four_classes(data: dict) -> None:
    four_class_names(data)
    data["num_classes"] = 4


def test_weights_that_do_not_fit_the_class_count_are_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="num_classes 3: expected the number of class names"):
        load_checkpoint(crafted(four_class_names)(tmp_path / "x.pt"))
    with pytest.raises(CheckpointError, match="checkpoint weights do not fit FastSCNN"):
        build_model(load_checkpoint(crafted(four_classes)(tmp_path / "y.pt")))


def test_a_paper_checkpoint_stays_format_1_and_loads_as_paper(tmp_path: Path) -> None:
    """Releases before format 2 keep reading paper models trained by this one (they reject unknown keys)."""
    save_checkpoint(tmp_path / "x.pt", FastSCNN(3), TINY)
    raw = torch.load(tmp_path / "x.pt", weights_only=True)
    assert raw["format"] == 1 and "variant" not in raw and "imported_from" not in raw
    payload = load_checkpoint(tmp_path / "x.pt")
    assert payload["variant"] == "paper" and payload["imported_from"] is None
    assert build_model(payload).variant == "paper"


@pytest.mark.parametrize("variant", ["mmseg", "tramac"])
def test_a_release_before_format_2_refuses_another_variant(
    variant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It would build the paper's network around the weights: tramac's even load into it, silently wrong."""
    save_checkpoint(tmp_path / "x.pt", FastSCNN(3, variant=variant), TINY)
    assert load_checkpoint(tmp_path / "x.pt")["variant"] == variant
    monkeypatch.setattr(checkpoint_module, "FORMAT_VERSION", 1)  # what such a release reads
    with pytest.raises(CheckpointError, match="checkpoint format 2 is newer than this release reads"):
        load_checkpoint(tmp_path / "x.pt")


def test_weights_of_another_variant_do_not_fit_in_one_line(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "x.pt", FastSCNN(3, variant="mmseg"), TINY)
    payload = load_checkpoint(tmp_path / "x.pt")
    payload["variant"] = "paper"
    with pytest.raises(CheckpointError) as info:
        build_model(payload)
    assert_one_clear_line(str(info.value), "do not fit FastSCNN(variant='paper'): size mismatch for global_")


def test_non_finite_weights_are_never_saved(tmp_path: Path) -> None:
    """Issue 13 #2: one NaN weight labelled every pixel 0 with exit 0; the previous file stays."""
    path = tmp_path / "last.pt"
    model = FastSCNN(3)
    save_checkpoint(path, model, TINY, iteration=1)
    with torch.no_grad():
        model.classifier.conv.weight[0, 0] = math.inf
    with pytest.raises(CheckpointError, match=r"not saving .*last.pt \(the previous last.pt is intact\): weight"):
        save_checkpoint(path, model, TINY, iteration=2)
    assert load_checkpoint(path)["iteration"] == 1


def test_a_checkpoint_that_loading_would_refuse_is_never_written(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"not saving .*x.pt \(nothing was written\): .*std > 0"):
        save_checkpoint(tmp_path / "x.pt", FastSCNN(3), TINY, std=(0.2, 0.0, 0.2))
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.training
def test_resume_from_a_best_checkpoint_says_what_is_missing(
    synth_root: Path, tmp_path: Path, tiny_config: Callable
) -> None:
    """Issue 13 #7: best.pt (weights only) copied to last.pt gave `KeyError: 'optimizer'` on resume."""
    run_dir = tmp_path / "run"
    assert train(tiny_config(synth_root, run_dir, "stop_after=1")) == 0
    last = load_checkpoint(run_dir / "last.pt", resume=True)
    save_checkpoint(run_dir / "last.pt", build_model(last), class_set_of(last))  # what best.pt holds
    with pytest.raises(CheckpointError, match=r"holds no training state .* resume needs the last\.pt of the run"):
        train(tiny_config(synth_root, run_dir, "resume=true"))


# ---- disk errors --------------------------------------------------------------------------------


def test_disk_full_during_a_checkpoint_write_is_one_line_and_keeps_the_previous(tmpfs: Callable[..., Path]) -> None:
    """Issue 13 #8: torch said `[enforce fail at inline_container.cc:672] . unexpected pos ...`."""
    disk = tmpfs("6m")
    path = disk / "run" / "last.pt"
    save_checkpoint(path, FastSCNN(3), TINY, iteration=1)  # 4.5 MB: a second copy does not fit beside it
    with pytest.raises(StorageError) as info:
        save_checkpoint(path, FastSCNN(3), TINY, iteration=2)
    assert str(info.value) == f"no space left on {disk} while writing {path}; the previous last.pt is intact"
    assert load_checkpoint(path)["iteration"] == 1
    assert os.listdir(path.parent) == ["last.pt"], "no temporary file is left behind"


@pytest.mark.parametrize(("fmt", "name"), [("onnx", "model.onnx"), ("torchscript", "model.ts")])
def test_disk_full_in_export_exits_2(
    tmpfs: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture, fmt: str, name: str
) -> None:
    checkpoint = tmp_path / "model.pt"
    save_checkpoint(checkpoint, FastSCNN(3), TINY)
    out = tmpfs("1m") / name
    argv = ["export", "--checkpoint", str(checkpoint), "--out", str(out), "--exporter", "legacy", "--format", fmt]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        f"fast-scnn export: error: no space left on {out.parent} while writing {out}; {name} was not written"
    )


def test_read_only_run_dir_is_one_line_and_exit_2(
    tmpfs: Callable[..., Path], synth_root: Path, capsys: pytest.CaptureFixture
) -> None:
    """Issue 13 #8: a read-only run_dir gave `OSError: [Errno 30]` with a traceback."""
    disk = tmpfs("1m", "ro")
    config = REPO / "config/train_synthetic.yaml"
    overrides = [f"data.root={synth_root}", f"run_dir={disk}/run", "data.workers=0", "data.crop_size=[64,128]"]
    assert cli.main(["train", "--config", str(config), *overrides]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"fast-scnn train: error: {disk} is mounted read-only while writing {disk}/run/config.yaml; "
        "config.yaml was not written"
    )


@pytest.mark.cli
@pytest.mark.training
def test_a_killed_write_leaves_a_temporary_that_the_next_start_removes(
    synth_root: Path, tmp_path: Path, tiny_config: Callable
) -> None:
    run_dir = tmp_path / "run"
    kill_mid_write = (
        "import os, signal, sys\n"
        "from fast_scnn_core.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half a checkpoint')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", kill_mid_write, str(run_dir / "last.pt")], env=tree_env(), check=False)
    orphans = list(run_dir.glob(".last.pt.*.tmp.pt"))
    assert len(orphans) == 1
    assert train(tiny_config(synth_root, run_dir, "stop_after=1")) == 0  # was: "run_dir is not empty"
    assert not orphans[0].exists() and (run_dir / "last.pt").is_file()


@pytest.mark.parametrize("command", ["predict", "synth"])
def test_programs_remove_temporaries_of_killed_writes_from_their_output_folder(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    orphan = out / "sub" / ".street_labels.png.k2j4h6g8.tmp.png"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"half a picture")
    if command == "predict":
        checkpoint, image = tmp_path / "model.pt", tmp_path / "street.png"
        save_checkpoint(checkpoint, FastSCNN(3), TINY)
        cv2.imwrite(str(image), np.zeros((40, 48, 3), np.uint8))
        argv = ["predict", str(image), "--checkpoint", str(checkpoint), "--out", str(out), "--device", "cpu"]
    else:
        argv = ["synth", "--out", str(out), "--train", "1", "--val", "0", "--size", "32x64"]
    assert cli.main(argv) == 0
    assert not orphan.exists()


def test_only_atomic_paths_own_temporaries_are_removed(tmp_path: Path) -> None:
    keep = [".last.pt.tmp", "a.tmp.pt", ".x.pt.abc.tmp.pt", ".x.pt.abcdefgh.tmp.onnx", "x.pt.abcdefgh.tmp.pt"]
    for name in keep:
        (tmp_path / name).write_text("user file")
    with atomic_path(tmp_path / "elsewhere" / "curves.png") as tmp:
        name = tmp.name  # the name a killed write would leave
    leftover = tmp_path / "plots" / name
    leftover.parent.mkdir()
    leftover.write_text("half a plot")
    assert remove_stale_temporaries(tmp_path) == [leftover]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == sorted(keep)
