"""Segmenter: uint8 RGB in, uint8 labels out; checkpoints round-trip and refuse unsafe or foreign files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from fast_scnn_core.checkpoint import build_model, load_checkpoint, save_checkpoint
from fast_scnn_core.errors import CheckpointError, InputError
from fast_scnn_core.inference import InferenceConfig, Segmenter
from fast_scnn_core.labels import CITYSCAPES, ClassSet
from fast_scnn_core.model import FastSCNN

TINY = ClassSet(("a", "b", "c"), ((255, 0, 0), (0, 255, 0), (0, 0, 255)))


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, FastSCNN(3), TINY, epoch=2, iteration=10, metrics={"miou": 0.5})
    return path


def test_checkpoint_round_trip(checkpoint: Path) -> None:
    payload = load_checkpoint(checkpoint)
    assert payload["epoch"] == 2 and payload["metrics"] == {"miou": 0.5}
    assert ClassSet.from_dict(payload["classes"]) == TINY
    model = build_model(payload)
    assert model.aux_downsample is None and model.num_classes == 3


def test_pickle_with_code_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": Evil()}, f)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_checkpoint(path)


def test_missing_checkpoint_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="fast-scnn train"):
        load_checkpoint(tmp_path / "none.pt")


def test_class_count_mismatch_is_refused(checkpoint: Path) -> None:
    with pytest.raises(CheckpointError, match="3 classes, expected 19"):
        build_model(load_checkpoint(checkpoint), num_classes=CITYSCAPES.num_classes)


@pytest.mark.parametrize("size", [(97, 131), (64, 128)])
def test_labels_at_input_resolution(checkpoint: Path, size: tuple[int, int]) -> None:
    segmenter = Segmenter.from_checkpoint(checkpoint, InferenceConfig(device="cpu"))
    out = segmenter(np.zeros((*size, 3), np.uint8))
    assert out.labels.shape == size and out.labels.dtype == np.uint8 and out.confidence is None
    assert out.labels.max() < 3


def test_inference_resolution_and_prob_mode(checkpoint: Path) -> None:
    config = InferenceConfig(device="cpu", width=64, height=32, output_resolution="inference", mode="prob")
    out = Segmenter.from_checkpoint(checkpoint, config)(np.zeros((2, 50, 70, 3), np.uint8))
    assert out.labels.shape == (2, 32, 64)
    assert out.confidence.shape == (2, 32, 64) and out.confidence.dtype == np.float32
    assert np.all((out.confidence >= 1 / 3 - 1e-6) & (out.confidence <= 1))


def test_labels_match_model_argmax(checkpoint: Path) -> None:
    payload = load_checkpoint(checkpoint)
    model = build_model(payload).eval()
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    x = (
        torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255 - torch.tensor(payload["mean"]).view(1, 3, 1, 1)
    ) / torch.tensor(payload["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model(x).argmax(1)[0].numpy().astype(np.uint8)
    got = Segmenter.from_checkpoint(checkpoint, InferenceConfig(device="cpu"))(image).labels
    assert (got == expected).mean() > 0.999


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((10, 10, 3), np.float32), "uint8"),
        (np.zeros((10, 10), np.uint8), "shape"),
        (np.zeros((10, 10, 4), np.uint8), "shape"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        ([[0]], "numpy"),
    ],
)
def test_bad_images_are_refused(checkpoint: Path, image, message: str) -> None:
    segmenter = Segmenter.from_checkpoint(checkpoint, InferenceConfig(device="cpu"))
    with pytest.raises(InputError, match=message):
        segmenter(image)


def test_huge_image_beyond_limit_is_refused(checkpoint: Path) -> None:
    segmenter = Segmenter.from_checkpoint(checkpoint, InferenceConfig(device="cpu", max_pixels=100))
    with pytest.raises(InputError, match="max_pixels"):
        segmenter(np.zeros((11, 10, 3), np.uint8))
