"""Training: the paper's recipe pieces, a learning run, exact resume, DDP through torchrun, clean stops."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from support import REPO, tree_env

from fast_scnn_core.cli import main
from fast_scnn_core.errors import ConfigError, FastSCNNError
from fast_scnn_core.model.checkpoint import load_checkpoint
from fast_scnn_core.model.network import FastSCNN
from fast_scnn_core.train.distributed import Distributed, per_process_batch
from fast_scnn_core.train.loop import train
from fast_scnn_core.train.recipe import TrainConfig, is_depthwise, parameter_groups, poly_lr, segmentation_loss


def test_paper_recipe_is_the_default() -> None:
    config = TrainConfig()
    assert (config.lr, config.poly_power, config.momentum, config.batch_size) == (0.045, 0.9, 0.9, 12)
    assert (config.weight_decay, config.aux_weight, config.epochs) == (4e-5, 0.4, 1000)
    assert config.data.scale_range == (0.5, 2.0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("std=[0.229, 0, 0.225]", r"train_synthetic.yaml: std must be 3 finite values > 0"),
        ("std=[-1, 1, 1]", r"train_synthetic.yaml: std must be 3 finite values > 0"),
        ("mean=[.nan, 0.5, 0.5]", r"train_synthetic.yaml: mean must be 3 finite values"),
    ],
)
def test_normalisation_that_no_engine_could_use_is_refused(override: str, message: str) -> None:
    from fast_scnn_core.config import load_config

    with pytest.raises(ConfigError, match=message):
        load_config(TrainConfig, REPO / "config/train_synthetic.yaml", [override])


def test_cityscapes_config_file_is_the_paper_recipe() -> None:
    from fast_scnn_core.config import load_config

    assert load_config(TrainConfig, REPO / "config/train_cityscapes.yaml") == TrainConfig(run_dir="runs/cityscapes")


def test_poly_lr_values() -> None:
    assert poly_lr(0.045, 0, 1000) == 0.045
    assert poly_lr(0.045, 500, 1000) == pytest.approx(0.045 * 0.5**0.9)
    assert poly_lr(0.045, 900, 1000) == pytest.approx(0.045 * 0.1**0.9)
    assert poly_lr(0.045, 1000, 1000) == 0.0


def test_depthwise_bn_and_bias_get_no_weight_decay() -> None:
    model = FastSCNN(19)
    decay, no_decay = parameter_groups(model, 4e-5)
    assert decay["weight_decay"] == 4e-5 and no_decay["weight_decay"] == 0.0
    decayed = {id(p) for p in decay["params"]}
    depthwise = [m for m in model.modules() if is_depthwise(m)]
    assert len(depthwise) == 14  # learning to downsample 2, bottlenecks 9, fusion 1, classifier 2
    assert all(id(m.weight) not in decayed for m in depthwise)
    bn = [p for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()]
    assert all(id(p) not in decayed for p in bn)
    regular = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d) and not is_depthwise(m)]
    assert decayed == {id(p) for p in regular}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_aux_losses_are_weighted_0_4() -> None:
    target = torch.randint(0, 5, (2, 8, 8))
    target[0, 0] = 255
    outputs = {name: torch.randn(2, 5, 8, 8) for name in ("out", "aux_downsample", "aux_global")}
    ce = [F.cross_entropy(o, target, ignore_index=255) for o in outputs.values()]
    loss = segmentation_loss(outputs, target, 0.4)
    assert loss.item() == pytest.approx((ce[0] + 0.4 * ce[1] + 0.4 * ce[2]).item(), rel=1e-6)
    assert TrainConfig().aux_weight == 0.4
    assert segmentation_loss({"out": outputs["out"]}, target).item() == pytest.approx(ce[0].item())


def test_a_batch_without_labelled_pixels_contributes_nothing() -> None:
    outputs = {name: torch.randn(2, 5, 8, 8, requires_grad=True) for name in ("out", "aux_downsample", "aux_global")}
    loss = segmentation_loss(outputs, torch.full((2, 8, 8), 255))
    loss.backward()
    assert loss.item() == 0.0 and all(torch.equal(o.grad, torch.zeros_like(o)) for o in outputs.values())
    half = torch.randint(0, 5, (2, 8, 8))
    half[1] = 255  # one image without labels: the mean is over the other's pixels
    expected = F.cross_entropy(outputs["out"][:1], half[:1])
    assert segmentation_loss({"out": outputs["out"]}, half).item() == pytest.approx(expected.item(), rel=1e-6)


def _small_dataset(root: Path, unlabelled_split: str = "", train_frames: int = 4) -> Path:
    """Synthetic train frames + 1 val frame of 64x128; every label of `unlabelled_split` is labelId 0 (ignored)."""
    from fast_scnn_core.data.synthetic import write_synthetic_dataset

    write_synthetic_dataset(root, {"train": train_frames, "val": 1}, 64, 128)
    for label in (root / "gtFine" / unlabelled_split).rglob("*_labelIds.png") if unlabelled_split else ():
        cv2.imwrite(str(label), np.zeros((64, 128), np.uint8))
    return root


@pytest.mark.training
def test_training_on_unlabelled_batches_runs_and_counts_them(
    tmp_path: Path, tiny_config: Callable, capsys: pytest.CaptureFixture
) -> None:
    data = _small_dataset(tmp_path / "data", "train")
    config = tiny_config(data, tmp_path / "run", "batch_size=2", "epochs=1", "log_every=2")
    assert train(config) == 0
    assert "2 batch(es) since the last log had no labelled pixel" in capsys.readouterr().err
    weights = load_checkpoint(tmp_path / "run/last.pt")["model"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


@pytest.mark.training
def test_validation_without_labelled_pixels_says_so_and_claims_no_best(
    tmp_path: Path, tiny_config: Callable, capsys: pytest.CaptureFixture
) -> None:
    data = _small_dataset(tmp_path / "data", "val")
    assert train(tiny_config(data, tmp_path / "run", "batch_size=2", "epochs=1")) == 0
    err = capsys.readouterr().err
    assert "the val split has no labelled pixels (every label is 255, as in Cityscapes' test split" in err
    assert "no validation had labelled pixels, so there is no best.pt" in err and "-100.00" not in err
    assert not (tmp_path / "run/best.pt").exists() and (tmp_path / "run/last.pt").exists()


@pytest.mark.training
def test_model_learns_synthetic_scenes(trained_run: dict) -> None:
    """48 iterations (batch 8, 128x256 crops, ~30 s on 2 CPU cores) reach val mIoU > 35 %.

    Chance is far lower: predicting the most frequent class everywhere scores about 4 % here
    (one class of the 8 present at ~30 % IoU), and the untrained network scores about 2 %.
    """
    metrics = json.loads((trained_run["run_dir"] / "metrics.json").read_text())
    curve = [(v["iteration"], v["miou"]) for v in metrics["history"]["val"]]
    print(f"learning curve (iteration, val mIoU): {curve} in {trained_run['seconds']:.0f} s")
    assert curve[-1][0] == 48
    assert max(m for _, m in curve) > 0.35
    assert curve[-1][1] > curve[0][1]


@pytest.mark.training
def test_run_dir_has_checkpoints_logs_and_plots(trained_run: dict) -> None:
    run_dir = trained_run["run_dir"]
    for name in ("last.pt", "best.pt", "config.yaml", "metrics.json"):
        assert (run_dir / name).is_file(), name
    for name in ("curves.png", "class_iou.png", "confusion.png"):
        assert (run_dir / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert not list(run_dir.rglob("*.tmp*"))
    history = json.loads((run_dir / "metrics.json").read_text())["history"]["val"]
    assert load_checkpoint(run_dir / "best.pt")["metrics"]["miou"] == pytest.approx(max(v["miou"] for v in history))
    assert load_checkpoint(run_dir / "last.pt")["iteration"] == 48


@pytest.mark.training
def test_resume_is_exact(synth_root: Path, tmp_path: Path, tiny_config: Callable) -> None:
    """8 iterations straight == 4 (stop_after, mid-epoch) + resume + 4: identical weights and optimizer state.

    The split run loads data with a worker process, the straight one without: augmentation must not care.
    """
    straight = tiny_config(synth_root, tmp_path / "straight", "epochs=1", "val_every=0")
    assert train(straight) == 0
    split = tiny_config(synth_root, tmp_path / "split", "epochs=1", "stop_after=4", "data.workers=1")
    assert train(split) == 0
    assert load_checkpoint(tmp_path / "split/last.pt")["iteration"] == 4  # 32 images / batch 4: 8 per epoch
    assert not (tmp_path / "split/best.pt").exists()  # no validation yet
    resumed = tiny_config(synth_root, tmp_path / "split", "epochs=1", "resume=true", "data.workers=1")
    assert train(resumed) == 0
    a, b = load_checkpoint(tmp_path / "straight/last.pt"), load_checkpoint(tmp_path / "split/last.pt")
    assert a["iteration"] == b["iteration"] == 8
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    momentum_a = a["training_state"]["optimizer"]["state"]
    momentum_b = b["training_state"]["optimizer"]["state"]
    assert all(torch.equal(momentum_a[k]["momentum_buffer"], momentum_b[k]["momentum_buffer"]) for k in momentum_a)


@pytest.mark.training
def test_refuses_to_overwrite_a_run(synth_root: Path, tmp_path: Path, tiny_config: Callable) -> None:
    run_dir = tmp_path / "run"
    assert train(tiny_config(synth_root, run_dir, "stop_after=1")) == 0
    before = (run_dir / "last.pt").read_bytes()
    with pytest.raises(ConfigError, match=r"already holds a run; continue it with resume=true"):
        train(tiny_config(synth_root, run_dir, "epochs=1"))
    assert (run_dir / "last.pt").read_bytes() == before
    with pytest.raises(ConfigError, match=r"resume=true but .*last.pt does not exist"):
        train(tiny_config(synth_root, tmp_path / "none", "resume=true"))


def test_data_errors_are_found_before_anything_is_written(tmp_path: Path, tiny_config: Callable) -> None:
    from fast_scnn_core.data.synthetic import write_synthetic_dataset
    from fast_scnn_core.errors import DataError

    write_synthetic_dataset(tmp_path / "data", {"train": 4, "val": 1}, 64, 128)
    label = sorted((tmp_path / "data/gtFine/val").rglob("*_labelIds.png"))[0]
    cv2.imwrite(str(label), np.zeros((32, 128), np.uint8))
    with pytest.raises(DataError, match=r"label is 128x32 but its image .* is 128x64"):
        train(tiny_config(tmp_path / "data", tmp_path / "run", "batch_size=2"))
    assert not (tmp_path / "run").exists()


@pytest.mark.training
def test_a_run_stopped_before_its_first_checkpoint_is_started_again(
    tmp_path: Path, tiny_config: Callable, capsys: pytest.CaptureFixture
) -> None:
    """Unknown label ids show only when a label is decoded: the run has written config.yaml and tensorboard/."""
    from fast_scnn_core.data.synthetic import write_synthetic_dataset
    from fast_scnn_core.errors import DataError

    write_synthetic_dataset(tmp_path / "data", {"train": 4, "val": 1}, 64, 128)
    labels = sorted((tmp_path / "data/gtFine/train").rglob("*_labelIds.png"))
    good = [label.read_bytes() for label in labels]
    for label in labels:
        cv2.imwrite(str(label), np.full((64, 128), 40, np.uint8))
    config = tiny_config(tmp_path / "data", tmp_path / "run", "batch_size=2", "epochs=1")
    with pytest.raises(DataError, match=r"label ids \[40\]"):
        train(config)
    assert (tmp_path / "run/config.yaml").exists() and not (tmp_path / "run/last.pt").exists()
    for label, data in zip(labels, good, strict=True):
        label.write_bytes(data)
    assert train(config) == 0
    assert "holds a run stopped before its first checkpoint: starting it again" in capsys.readouterr().err
    assert len(list((tmp_path / "run/tensorboard").iterdir())) == 1  # the first attempt's log is gone
    (tmp_path / "other").mkdir()
    (tmp_path / "other/notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"holds files that no run wrote \(notes.txt\)"):
        train(tiny_config(tmp_path / "data", tmp_path / "other", "batch_size=2"))
    assert (tmp_path / "other/notes.txt").read_text() == "mine"


@pytest.mark.training
def test_nan_loss_stops_without_a_poisoned_checkpoint(synth_root: Path, tmp_path: Path, tiny_config: Callable) -> None:
    run_dir = tmp_path / "nan"
    config = tiny_config(synth_root, run_dir, "lr=1.0e+12", "epochs=50", "val_every=0")
    with pytest.raises(FastSCNNError, match=r"the loss became nan at iteration \d+ .*Lower lr="):
        train(config)
    if (run_dir / "last.pt").exists():
        weights = load_checkpoint(run_dir / "last.pt")["model"]
        assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


@pytest.mark.training
def test_nan_loss_read_every_log_every_still_stops_before_any_save(
    synth_root: Path, tmp_path: Path, tiny_config: Callable
) -> None:
    """The loss is read only every log_every iterations, but always before a save (here every 2 iterations)."""
    run_dir = tmp_path / "nan"
    config = tiny_config(
        synth_root, run_dir, "lr=1.0e+12", "epochs=50", "val_every=0", "log_every=1000", "save_every=2"
    )
    with pytest.raises(FastSCNNError, match=r"the loss became nan (at iteration|between iterations) \d+"):
        train(config)
    if (run_dir / "last.pt").exists():
        weights = load_checkpoint(run_dir / "last.pt")["model"]
        assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_save_refuses_non_finite_weights(tmp_path: Path) -> None:
    from fast_scnn_core.labels import CITYSCAPES
    from fast_scnn_core.train.loop import RunState

    config = TrainConfig(run_dir=str(tmp_path / "run"))
    state = RunState.create(config, CITYSCAPES, Distributed(torch.device("cpu")))
    with torch.no_grad():
        state.model.classifier.conv.weight[0, 0] = math.inf
    with pytest.raises(FastSCNNError, match=r"weights became non-finite \(classifier.conv.weight\)"):
        state.save()
    assert not (tmp_path / "run").exists()


@pytest.mark.training
def test_corrupt_image_met_in_a_loader_worker_is_named(tmp_path: Path, tiny_config: Callable) -> None:
    from fast_scnn_core.data.synthetic import write_synthetic_dataset
    from fast_scnn_core.errors import DataError

    images = write_synthetic_dataset(tmp_path / "data", {"train": 4, "val": 1}, 64, 128)
    images[2].write_bytes(images[2].read_bytes()[:100])  # header intact: found when a worker decodes it
    config = tiny_config(tmp_path / "data", tmp_path / "run", "data.workers=1", "epochs=1")
    with pytest.raises(DataError) as exc:
        train(config)
    assert str(exc.value) == f"{images[2]}: cannot read the image (missing, corrupt or not an image file)"


@pytest.mark.ros_process
def test_ros2_run_train_without_data_says_fast_scnn_synth_makes_it(tmp_path: Path) -> None:
    """`ros2 run fast_scnn_core train` is `fast-scnn train`: the quick-start config before `fast-scnn synth`."""
    ros2 = Path(sys.executable).with_name("ros2")
    if not ros2.exists():
        if os.environ.get("CI"):
            pytest.fail("the ROS 2 command line is not installed in the venv (make venv installs it)")
        pytest.skip("the ROS 2 command line is not installed in the venv (make venv installs it)")
    env = {**_env(), "AMENT_PREFIX_PATH": sys.prefix}
    command = [str(ros2), "run", "fast_scnn_core", "train", "--config", str(REPO / "config/train_synthetic.yaml")]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr == (
        "fast-scnn train: error: data/synth: no such directory; point data.root= at Cityscapes (leftImg8bit/ and "
        "gtFine/), or make the synthetic set in this layout there with `fast-scnn synth --out data/synth`\n"
    )
    assert not list(tmp_path.iterdir())


def test_unknown_config_key_is_named(synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    status = main(["train", "--config", str(REPO / "config/train_synthetic.yaml"), "data.crop=[64,64]"])
    assert status == 2
    assert "train_synthetic.yaml.data: unknown key(s) ['crop']" in capsys.readouterr().err


def test_train_help_documents_overrides(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "key=value" in out and "train_cityscapes.yaml" in out and "torchrun" in out


def _env() -> dict[str, str]:
    return tree_env(OMP_NUM_THREADS="1")


@pytest.mark.cli
@pytest.mark.training
def test_sigterm_saves_last_and_exits(synth_root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "term"
    command = [sys.executable, "-m", "fast_scnn_core", "train", "--config", str(REPO / "config/train_synthetic.yaml")]
    command += [f"data.root={synth_root}", f"run_dir={run_dir}", "data.crop_size=[64,128]", "batch_size=4"]
    command += ["epochs=1000", "data.workers=1", "val_every=0", "plots=false", "log_every=2"]
    process = subprocess.Popen(command, cwd=tmp_path, env=_env(), stderr=subprocess.PIPE)
    seen = b""
    deadline = time.monotonic() + 120
    while b"loss=" not in seen and time.monotonic() < deadline:  # the first loss log: 2 iterations done
        seen += os.read(process.stderr.fileno(), 4096)
    assert b"loss=" in seen, seen.decode()[-2000:]
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, (seen + err).decode()[-2000:]
    assert b"SIGTERM: saved" in err
    checkpoint = load_checkpoint(run_dir / "last.pt")
    assert checkpoint["iteration"] >= 2 and checkpoint["training_state"]["optimizer"]["state"]


def _torchrun_train(synth_root: Path, run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    """`fast-scnn train` in 2 CPU processes on gloo through torchrun, as a cluster job starts it."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "fast_scnn_core", "train", "--config", str(REPO / "config/train_synthetic.yaml")]
    command += [f"data.root={synth_root}", f"run_dir={run_dir}", "data.crop_size=[64,128]", *overrides]
    command += ["data.workers=0", "plots=false", "device=cpu"]
    return subprocess.run(command, cwd=run_dir.parent, env=_env(), capture_output=True, text=True, timeout=240)


@pytest.mark.cli
@pytest.mark.training
def test_resume_after_a_stop_on_an_epochs_last_iteration_validates_as_a_straight_run(
    tmp_path: Path, tiny_config: Callable
) -> None:
    """The stop flag is read with the loss: with log_every beyond the epoch, a SIGTERM during epoch 0 is
    taken on its last iteration (4), before its validation. The resumed run must still validate epoch 0."""
    data = _small_dataset(tmp_path / "data", train_frames=8)  # 4 iterations: the signal lands well inside
    options = ["epochs=2", "val_every=1", "log_every=1000", "batch_size=2"]
    assert train(tiny_config(data, tmp_path / "straight", *options)) == 0
    run_dir = tmp_path / "split"
    command = [sys.executable, "-m", "fast_scnn_core", "train", "--config", str(REPO / "config/train_synthetic.yaml")]
    command += [f"data.root={data}", f"run_dir={run_dir}", "data.crop_size=[64,128]", "data.workers=0"]
    command += ["plots=false", *options]
    env = {**_env(), "OMP_NUM_THREADS": str(torch.get_num_threads())}  # the same float sums as in this process
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE)
    seen = b""
    while b"iterations/epoch" not in seen and process.poll() is None:  # the loop is about to start
        seen += os.read(process.stderr.fileno(), 4096)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, (seen + err).decode()[-2000:]
    stopped = load_checkpoint(run_dir / "last.pt")
    assert (stopped["iteration"], stopped["epoch"]) == (4, 0)  # epoch 0's iterations done, its end not
    assert train(tiny_config(data, run_dir, *options, "resume=true")) == 0

    def validations(run: Path) -> list[dict]:
        history = json.loads((run / "metrics.json").read_text())["history"]["val"]
        return [{k: v for k, v in entry.items() if k != "minutes"} for entry in history]

    assert [v["iteration"] for v in validations(tmp_path / "straight")] == [4, 8]
    assert validations(run_dir) == validations(tmp_path / "straight")
    for name in ("best.pt", "last.pt"):
        a, b = load_checkpoint(tmp_path / "straight" / name), load_checkpoint(run_dir / name)
        assert (a["iteration"], a["epoch"]) == (b["iteration"], b["epoch"]), name
        assert all(torch.equal(value, b["model"][key]) for key, value in a["model"].items()), name


@pytest.mark.cli
@pytest.mark.training
def test_ddp_two_processes_with_gloo_through_torchrun(synth_root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "ddp"
    result = _torchrun_train(synth_root, run_dir, "batch_size=8", "epochs=1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "batch 8 on 2 x cpu" in result.stderr
    checkpoint = load_checkpoint(run_dir / "last.pt")
    assert checkpoint["iteration"] == 4  # 32 images / global batch 8, each process 4 per step
    assert sorted(p.name for p in run_dir.glob("*.pt")) == ["best.pt", "last.pt"]
    assert math.isfinite(checkpoint["metrics"]["miou"])


# Per-process batch: BatchNorm after the pyramid pooling's 1x1 bin sees one value per image and process.


@pytest.mark.parametrize(
    ("batch_size", "world", "device", "sync_bn", "expected"),
    [
        (12, 1, "cpu", False, 12),
        (2, 1, "cpu", False, 2),
        (8, 4, "cpu", False, 2),
        (4, 4, "cuda", True, 1),  # SyncBatchNorm: statistics over the 4 processes' images
        (1, 1, "cpu", False, "batch_size=1: BatchNorm cannot train on one image"),
        (1, 1, "cuda", True, "batch_size=1: BatchNorm cannot train on one image"),  # nothing to sync with
        (4, 4, "cuda", False, "batch_size=4 over 4 processes is 1 image per process.*add sync_bn=true"),
        (2, 2, "cpu", True, r"sync_bn=true needs CUDA.*batch_size>=4"),
        (6, 4, "cpu", False, "batch_size=6 is not divisible by the 4 processes"),
    ],
)
def test_per_process_batch_rule(batch_size: int, world: int, device: str, sync_bn: bool, expected) -> None:
    config = TrainConfig(batch_size=batch_size, sync_bn=sync_bn)
    env = Distributed(torch.device(device), 0, world)
    if isinstance(expected, int):
        assert per_process_batch(config, env) == expected
    else:
        with pytest.raises(ConfigError, match=expected):
            per_process_batch(config, env)


def test_batch_of_one_is_refused_before_anything_is_written(
    synth_root: Path, tmp_path: Path, tiny_config: Callable
) -> None:
    run_dir = tmp_path / "one"
    with pytest.raises(ConfigError, match=r"batch_size=1: .*use batch_size>=2"):
        train(tiny_config(synth_root, run_dir, "batch_size=1"))
    assert not run_dir.exists()


@pytest.mark.cli
def test_one_image_per_process_under_torchrun_is_refused_before_anything_is_written(
    synth_root: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "ddp1"
    result = _torchrun_train(synth_root, run_dir, "batch_size=2", "epochs=1")
    assert result.returncode != 0
    assert "batch_size=2 over 2 processes is 1 image per process" in result.stderr, result.stderr[-3000:]
    assert "Expected more than 1 value per channel" not in result.stderr
    assert not run_dir.exists()


# Fine-tuning: init=PATH starts from a checkpoint's weights and variant (fast_scnn_core/train/finetune.py).


def _init_checkpoint(path: Path, classes, variant: str = "paper", aux: bool = True, seed: int = 7) -> dict:
    """A checkpoint of random weights (seed), not those of any run's seed-0 initialisation; its loaded payload."""
    from fast_scnn_core.model.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    save_checkpoint(path, FastSCNN(classes.num_classes, aux=aux, variant=variant), classes)
    return load_checkpoint(path)


def _folder_dataset(root: Path) -> Path:
    """4 train + 1 val images of 64x128 in the folder layout, labelled with TINY's 3 classes; its class YAML."""
    from models import TINY

    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 1)):
        for kind in ("images", "masks"):
            (root / kind / split).mkdir(parents=True)
        for i in range(count):
            mask = np.kron(rng.integers(0, 3, (4, 8)), np.ones((16, 16), np.int64)).astype(np.uint8)
            cv2.imwrite(str(root / f"images/{split}/{i}.png"), (mask[..., None] * 100).repeat(3, -1))
            cv2.imwrite(str(root / f"masks/{split}/{i}.png"), mask)
    entries = [{"name": n, "color": list(c)} for n, c in zip(TINY.names, TINY.colors, strict=True)]
    (root / "classes.yaml").write_text(yaml.safe_dump({"classes": entries}))
    return root / "classes.yaml"


def test_class_layers_are_exactly_the_tensors_shaped_by_the_class_count() -> None:
    from fast_scnn_core.train.finetune import CLASS_LAYERS

    with torch.device("meta"):
        one, two = FastSCNN(1).state_dict(), FastSCNN(2).state_dict()
    shaped = {name for name in one if one[name].shape != two[name].shape}
    assert shaped == {name for name in one if name.startswith(CLASS_LAYERS)}
    assert len(shaped) == 6


def test_init_on_the_same_classes_loads_every_tensor(tmp_path: Path) -> None:
    from fast_scnn_core.labels import CITYSCAPES
    from fast_scnn_core.train.finetune import init_weights
    from fast_scnn_core.train.loop import RunState

    payload = _init_checkpoint(tmp_path / "init.pt", CITYSCAPES)
    state = RunState.create(TrainConfig(run_dir=str(tmp_path / "run")), CITYSCAPES, Distributed(torch.device("cpu")))
    report = init_weights(state.model, payload, CITYSCAPES)
    assert (len(report.loaded), report.reset, report.fresh) == (282, [], [])
    weights = state.model.state_dict()
    assert all(torch.equal(weights[name], tensor) for name, tensor in payload["model"].items())
    image = torch.randn(1, 3, 64, 128)
    source = FastSCNN(19, aux=True)
    source.load_state_dict(payload["model"])
    assert torch.equal(state.model.eval()(image), source.eval()(image))  # the first forward is init's


def test_init_on_other_classes_resets_only_the_class_layers(tmp_path: Path) -> None:
    from models import TINY

    from fast_scnn_core.labels import CITYSCAPES
    from fast_scnn_core.train.finetune import init_weights
    from fast_scnn_core.train.loop import RunState

    payload = _init_checkpoint(tmp_path / "init.pt", CITYSCAPES)
    config = TrainConfig(run_dir=str(tmp_path / "run"))
    fresh = RunState.create(config, TINY, Distributed(torch.device("cpu"))).model.state_dict()
    model = RunState.create(config, TINY, Distributed(torch.device("cpu"))).model
    report = init_weights(model, payload, TINY)
    assert sorted(report.reset) == sorted(
        f"{layer}{kind}"
        for layer in ("classifier.conv.", "aux_downsample.classifier.", "aux_global.classifier.")
        for kind in ("weight", "bias")
    )
    assert len(report.loaded) == 276 and not report.fresh
    for name, tensor in model.state_dict().items():
        expected = fresh[name] if name in report.reset else payload["model"][name]
        assert torch.equal(tensor, expected), name  # reset: the run's seeded initialisation; else init's
    assert model.classifier.conv.weight.shape[0] == 3


def test_init_without_aux_heads_starts_them_fresh_and_says_so(tmp_path: Path) -> None:
    from models import TINY

    from fast_scnn_core.labels import CITYSCAPES
    from fast_scnn_core.train.finetune import init_weights
    from fast_scnn_core.train.loop import RunState

    path = tmp_path / "inference.pt"
    payload = _init_checkpoint(path, CITYSCAPES, aux=False)
    model = RunState.create(TrainConfig(run_dir=str(tmp_path / "run")), TINY, Distributed(torch.device("cpu"))).model
    report = init_weights(model, payload, TINY)
    assert (len(report.loaded), len(report.reset), len(report.fresh)) == (264, 2, 16)
    text = report.describe(str(path), payload, TINY)
    assert f"init: loaded 264 of 282 tensors from {path} (paper network, 19 classes)" in text
    assert "re-initialised 2, the class layers" in text and "classifier.conv.weight, classifier.conv.bias" in text
    assert f"initialised fresh 16, {path} has no auxiliary heads" in text and "aux_downsample.*, aux_global.*" in text


def test_init_and_resume_together_are_refused_before_anything_is_written(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = str(REPO / "config/finetune.yaml")
    run_dir = tmp_path / "run"
    argv = ["train", "--config", config, f"data.root={synth_root}", f"run_dir={run_dir}", "resume=true"]
    assert main([*argv, "init=runs/x/best.pt"]) == 2
    err = capsys.readouterr().err
    assert "init=runs/x/best.pt and resume=true together" in err and "drop init=" in err
    assert len(err.strip().splitlines()) == 1 and not run_dir.exists()


def test_a_missing_or_foreign_init_file_is_refused_in_one_line(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    from fast_scnn_core.labels import CITYSCAPES

    (tmp_path / "notes.pt").write_text("not a checkpoint")
    _init_checkpoint(tmp_path / "paper.pt", CITYSCAPES)
    argv = ["train", "--config", str(REPO / "config/finetune.yaml"), f"data.root={synth_root}", f"run_dir={run_dir}"]
    for overrides, message in (
        (["init=missing.pt"], "init=missing.pt: checkpoint missing.pt does not exist"),
        ([f"init={tmp_path / 'notes.pt'}"], "notes.pt is not a PyTorch checkpoint"),
        (
            ["init=paper.pt", "variant=mmseg"],
            "init=paper.pt holds a 'paper' network but the run asks for variant=mmseg",
        ),
    ):
        assert main([*argv, *overrides]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not run_dir.exists()


@pytest.mark.training
def test_tramac_init_on_a_folder_dataset_trains_and_resume_keeps_the_variant(
    tmp_path: Path, tiny_config: Callable, capsys: pytest.CaptureFixture
) -> None:
    """A 19-class tramac checkpoint fine-tuned on 3 classes of a folder dataset: a tramac network is built (its
    weights would load silently into a paper one), last.pt says tramac, resume builds it again, variant=paper is
    refused."""
    from fast_scnn_core.errors import CheckpointError
    from fast_scnn_core.labels import CITYSCAPES

    init = tmp_path / "tramac.pt"
    _init_checkpoint(init, CITYSCAPES, variant="tramac")
    classes = _folder_dataset(tmp_path / "data")
    data = ["data.format=folder", f"data.classes={classes}", "batch_size=2", "epochs=2", "val_every=1"]
    run_dir = tmp_path / "run"
    assert train(tiny_config(tmp_path / "data", run_dir, *data, f"init={init}", "stop_after=2")) == 0
    err = capsys.readouterr().err
    assert f"init: loaded 276 of 282 tensors from {init} (tramac network, 19 classes)" in err
    assert "init: re-initialised 6, the class layers" in err and "training 3 classes (tramac network)" in err
    last = load_checkpoint(run_dir / "last.pt")
    assert (last["variant"], last["num_classes"], last["iteration"]) == ("tramac", 3, 2)
    assert load_checkpoint(run_dir / "best.pt")["variant"] == "tramac"
    before = (run_dir / "last.pt").read_bytes()
    with pytest.raises(CheckpointError, match=r"last.pt holds a 'tramac' network but the run asks for variant=paper"):
        train(tiny_config(tmp_path / "data", run_dir, *data, "resume=true", "variant=paper"))
    assert (run_dir / "last.pt").read_bytes() == before
    assert train(tiny_config(tmp_path / "data", run_dir, *data, "resume=true")) == 0
    err = capsys.readouterr().err
    assert "resuming at iteration 2" in err and "tramac network" in err and "options differ" not in err
    assert load_checkpoint(run_dir / "last.pt")["variant"] == "tramac"


@pytest.mark.training
def test_finetune_gain_bench_runs_and_writes_its_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/finetune_gain.py at toy sizes (its numbers are in docs/training.md): all three runs, both files."""
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import finetune_gain

    options = ["--pretrain-iters", "1", "--pretrain-frames", "8", "--iters", "2", "--train", "4", "--val", "1"]
    options += ["--batch", "2", "--val-every", "1", "--size", "64x128", "--out", str(tmp_path / "gain")]
    monkeypatch.setattr(sys, "argv", ["finetune_gain.py", *options])
    finetune_gain.main()
    result = json.loads((tmp_path / "gain.json").read_text())
    assert result["pretrain"]["iterations"] == 1 and result["finetuned"]["lr"] == 0.01
    for run in ("finetuned", "finetuned_paper_lr", "scratch"):
        [(iteration, miou)] = result[run]["curve"]
        assert iteration == 2 and 0 <= miou <= 100
    assert "| 2 | " in (tmp_path / "gain.md").read_text()


def test_a_tensorboard_write_that_fails_is_one_storage_error_and_no_thread_traceback(
    tmpfs: Callable[..., Path], capfd: pytest.CaptureFixture
) -> None:
    """TensorBoard writes from a thread of its own: on a full disk that thread printed its OSError traceback and
    the next add_scalar and close raised it again (the fault campaign's raw rc 1). Now: one StorageError, once."""
    from fast_scnn_core.errors import StorageError
    from fast_scnn_core.train.report import TensorBoard

    run_dir = tmpfs("64k")
    hook = threading.excepthook
    board = TensorBoard(run_dir)
    with pytest.raises(StorageError, match=r"cannot write TensorBoard events in .*tensorboard: No space left"):
        for iteration in range(100_000):
            board.scalars("train", {"loss": 1.0 / (iteration + 1), "lr": 0.045, "none": None}, iteration)
            if iteration % 50 == 0:
                board.flush()
    board.scalars("train", {"loss": 0.5}, 100_001)  # after the failure: quiet
    board.close()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception in thread" not in err, err
    assert threading.excepthook is hook  # given back
