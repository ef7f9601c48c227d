"""Evaluation: confusion -> IoU arithmetic, category merging, and `fast-scnn eval` on a trained checkpoint."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fast_scnn_core.cli import main
from fast_scnn_core.labels import CITYSCAPES, ClassSet
from fast_scnn_core.metrics import confusion_matrix, metrics_from_confusion
from fast_scnn_core.model.checkpoint import save_checkpoint
from fast_scnn_core.model.network import FastSCNN

ABC = ClassSet(("a", "b", "c"), ((1, 1, 1), (2, 2, 2), (3, 3, 3)))

# cityscapesScripts' pixel-level evaluation, its main() as csEvalPixelLevelSemanticLabeling runs it, without the
# instance-level iIoU: that part calls np.in1d, gone in numpy 2.4 (mcordts/cityscapesScripts PR #196, open).
# Class and category IoU come from the confusion matrix alone. docs/training.md gives the same command.
OFFICIAL_EVAL = (
    "from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as e; "
    "e.args.evalInstLevelScore = False; e.main()"
)


def test_confusion_matrix_counts_and_ignores_255() -> None:
    target = torch.tensor([[0, 0, 1, 255], [2, 1, 1, 255]])
    pred = torch.tensor([[0, 1, 1, 2], [2, 1, 0, 0]])
    expected = torch.tensor([[1, 1, 0], [1, 2, 0], [0, 0, 1]])
    assert torch.equal(confusion_matrix(pred, target, 3), expected)


def test_iou_pixel_accuracy_by_hand() -> None:
    # rows = ground truth: a: 8 right, 2 as b; b: 3 right, 1 as a; c: absent and never predicted.
    confusion = torch.tensor([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
    metrics = metrics_from_confusion(confusion, ABC)
    assert metrics["class_iou"]["a"] == pytest.approx(8 / (8 + 2 + 1))
    assert metrics["class_iou"]["b"] == pytest.approx(3 / (3 + 1 + 2))
    assert math.isnan(metrics["class_iou"]["c"])  # left out of the mean, as Cityscapes does
    assert metrics["miou"] == pytest.approx((8 / 11 + 3 / 6) / 2)
    assert metrics["pixel_accuracy"] == pytest.approx(11 / 14)
    assert math.isnan(metrics["category_miou"])  # no categories in this class set


def test_predicted_but_absent_class_scores_zero() -> None:
    metrics = metrics_from_confusion(torch.tensor([[5, 0, 1], [0, 4, 0], [0, 0, 0]]), ABC)
    assert metrics["class_iou"]["c"] == 0.0
    assert metrics["miou"] == pytest.approx((5 / 6 + 1 + 0) / 3)


def test_category_miou_merges_classes_of_a_category() -> None:
    road, sidewalk, car, truck = (CITYSCAPES.index(n) for n in ("road", "sidewalk", "car", "truck"))
    confusion = torch.zeros(19, 19, dtype=torch.int64)
    confusion[road, sidewalk] = 10  # road taken for sidewalk: wrong class, right category (flat)
    confusion[car, truck] = 5  # car for truck: both vehicle
    confusion[car, road] = 5  # car for road: wrong category
    metrics = metrics_from_confusion(confusion, CITYSCAPES)
    assert metrics["miou"] == 0.0
    assert metrics["category_iou"]["flat"] == pytest.approx(10 / 15)
    assert metrics["category_iou"]["vehicle"] == pytest.approx(5 / 10)
    assert metrics["category_miou"] == pytest.approx((10 / 15 + 0.5) / 2)
    assert list(metrics["category_iou"]) == ["flat", "construction", "object", "nature", "sky", "human", "vehicle"]


def test_eval_offers_every_dataset_layout_and_no_other() -> None:
    from fast_scnn_core.cli.eval import FORMATS
    from fast_scnn_core.data import BUILDERS

    assert tuple(BUILDERS) == FORMATS


@pytest.mark.training
def test_eval_cli_reproduces_training_validation(
    trained_run: dict, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The same code scores validation during training and `fast-scnn eval`: the numbers agree."""
    best = trained_run["run_dir"] / "best.pt"
    out = tmp_path / "eval.json"
    assert (
        main(["eval", "--checkpoint", str(best), "--data", str(synth_root), "--device", "cpu", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "class mIoU" in printed and "category mIoU" in printed and "road" in printed
    metrics = json.loads(out.read_text())
    trained = json.loads((trained_run["run_dir"] / "metrics.json").read_text())["history"]["val"]
    assert metrics["miou"] == pytest.approx(max(v["miou"] for v in trained), abs=1e-9)
    assert metrics["images"] == 8 and len(metrics["confusion"]) == 19
    assert metrics["class_iou"]["rider"] is None  # not in the synthetic scenes: null in JSON, not NaN
    assert 0 < metrics["pixel_accuracy"] <= 1 and 0 < metrics["category_miou"] <= 1


@pytest.mark.training
def test_eval_input_scale_and_zero_skip(trained_run: dict, synth_root: Path, tmp_path: Path) -> None:
    best = str(trained_run["run_dir"] / "best.pt")
    common = ["eval", "--checkpoint", best, "--data", str(synth_root), "--device", "cpu", "--workers", "0"]
    results = {}
    for name, extra in {"full": [], "half": ["--input-scale", "0.5"], "skip": ["--zero-skip"]}.items():
        assert main([*common, *extra, "--out", str(tmp_path / f"{name}.json")]) == 0
        results[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert results["half"]["input_scale"] == 0.5 and len(results["half"]["confusion"]) == 19
    total = sum(map(sum, results["full"]["confusion"]))
    assert sum(map(sum, results["half"]["confusion"])) == total  # scored at label resolution
    assert results["half"]["miou"] != results["full"]["miou"]
    assert results["skip"]["zero_skip"] is True and results["skip"]["miou"] < results["full"]["miou"]


def test_checkpoint_from_another_class_set_is_refused(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "abc.pt"
    save_checkpoint(path, FastSCNN(3), ABC)
    assert main(["eval", "--checkpoint", str(path), "--data", str(synth_root), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "abc.pt was trained on 3 classes ['a', 'b', 'c'], but the dataset" in err and "19 classes" in err


@pytest.mark.training
def test_eval_on_a_split_without_labels_says_so(
    trained_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from fast_scnn_core.data.synthetic import write_synthetic_dataset

    (label,) = [p for p in write_synthetic_dataset(tmp_path, {"test": 1}, 64, 128)]
    label = tmp_path / "gtFine/test" / label.parent.name / label.name.replace("leftImg8bit", "gtFine_labelIds")
    cv2.imwrite(str(label), np.zeros((64, 128), np.uint8))  # Cityscapes' test labels: all unlabeled
    argv = ["eval", "--checkpoint", str(trained_run["run_dir"] / "best.pt"), "--data", str(tmp_path)]
    assert main([*argv, "--split", "test", "--device", "cpu", "--workers", "0", "--out", str(tmp_path / "m.json")]) == 0
    assert "the test split has no labelled pixels" in capsys.readouterr().err
    assert json.loads((tmp_path / "m.json").read_text())["miou"] is None


@pytest.mark.training
def test_eval_names_a_corrupt_image_without_the_loader_workers_traceback(
    trained_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from fast_scnn_core.data.synthetic import write_synthetic_dataset

    (image,) = write_synthetic_dataset(tmp_path, {"val": 1}, 64, 128)
    image.write_bytes(image.read_bytes()[:100])  # the header is intact: a loader worker meets the damage
    argv = ["eval", "--checkpoint", str(trained_run["run_dir"] / "best.pt"), "--data", str(tmp_path)]
    assert main([*argv, "--device", "cpu", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "DataLoader worker" not in err
    assert (
        err.splitlines()[-1]
        == f"fast-scnn eval: error: {image}: cannot read the image (missing, corrupt or not an image file)"
    )


@pytest.mark.cli
@pytest.mark.training
def test_label_ids_submission_scores_the_same_in_cityscapesscripts_and_fast_scnn_eval(
    trained_run: dict, synth_root: Path, tmp_path: Path
) -> None:
    """`predict --label-ids` writes what the benchmark server takes; the official evaluation and ours agree on it."""
    results = tmp_path / "results"
    best = str(trained_run["run_dir"] / "best.pt")
    images = synth_root / "leftImg8bit/val"
    assert main(["predict", str(images), "--checkpoint", best, "--out", str(results), "--label-ids"]) == 0
    assert sorted(p.relative_to(results) for p in results.rglob("*")) == sorted(
        p.relative_to(images) for p in images.rglob("*")
    )  # <city>/<city>_<seq>_<frame>_leftImg8bit.png, nothing else
    ours_json = tmp_path / "ours.json"
    assert main(["eval", "--predictions", str(results), "--data", str(synth_root), "--out", str(ours_json)]) == 0
    ours = json.loads(ours_json.read_text())
    # The official script as documented (environment variables), instance-level scores off (OFFICIAL_EVAL).
    env = {**os.environ, "CITYSCAPES_DATASET": str(synth_root), "CITYSCAPES_RESULTS": str(results)}
    env["CITYSCAPES_EXPORT_DIR"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-c", OFFICIAL_EVAL], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:]
    official = json.loads((tmp_path / "resultPixelLevelSemanticLabeling.json").read_text())
    print(f"class mIoU: ours {ours['miou']!r}, cityscapesscripts {official['averageScoreClasses']!r}")
    assert 0.2 < ours["miou"] == pytest.approx(official["averageScoreClasses"], abs=1e-12)
    assert ours["category_miou"] == pytest.approx(official["averageScoreCategories"], abs=1e-12)
    for name, iou in ours["class_iou"].items():
        assert (iou is None and math.isnan(official["classScores"][name])) or iou == pytest.approx(
            official["classScores"][name], abs=1e-12
        ), name


def test_label_ids_need_a_cityscapes_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    checkpoint = tmp_path / "abc.pt"
    save_checkpoint(checkpoint, FastSCNN(3), ABC)
    cv2.imwrite(str(tmp_path / "x.png"), np.zeros((32, 32, 3), np.uint8))
    argv = ["predict", str(tmp_path / "x.png"), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out")]
    assert main([*argv, "--label-ids"]) == 2
    assert "--label-ids maps the 19 Cityscapes classes to labelIds" in capsys.readouterr().err
    assert main([*argv, "--label-ids", "--outputs", "labels"]) == 2
    assert "drop --outputs" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.training
def test_eval_scores_predict_outputs_as_it_scores_the_checkpoint(
    trained_run: dict, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The default `_labels.png` (class ids) scores as the model run by eval, up to pixels where BatchNorm
    folding in the inference engine flips an argmax tie."""
    best = str(trained_run["run_dir"] / "best.pt")
    predictions = tmp_path / "pred"
    images = str(synth_root / "leftImg8bit/val")
    assert main(["predict", images, "--checkpoint", best, "--out", str(predictions), "--outputs", "labels"]) == 0
    common = ["eval", "--data", str(synth_root), "--workers", "0"]
    assert main([*common, "--predictions", str(predictions), "--out", str(tmp_path / "saved.json")]) == 0
    assert main([*common, "--checkpoint", best, "--device", "cpu", "--out", str(tmp_path / "model.json")]) == 0
    saved, model = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("saved", "model"))
    assert saved["miou"] == pytest.approx(model["miou"], abs=1e-3)
    missing = sorted(predictions.rglob("*_labels.png"))[0]
    missing.unlink()
    assert main([*common, "--predictions", str(predictions)]) == 2
    assert f"no prediction {missing.name} or {missing.name.replace('_labels', '')} for " in capsys.readouterr().err
