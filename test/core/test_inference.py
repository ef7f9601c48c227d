"""Segmenter: uint8 RGB in, uint8 labels out; checkpoints round-trip and refuse unsafe or foreign files."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from models import TINY, trained_like

from fast_scnn_core.checkpoint import IMAGENET_MEAN, IMAGENET_STD, build_model, load_checkpoint, save_checkpoint
from fast_scnn_core.errors import CheckpointError, ConfigError, InputError
from fast_scnn_core.inference import InferenceConfig, Segmenter
from fast_scnn_core.labels import CITYSCAPES, ClassSet
from fast_scnn_core.model import FastSCNN


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


@pytest.mark.parametrize(
    "backend_options",
    [{"backend": "torch", "optimize": True}, {"backend": "onnxruntime"}, {"backend": "onnxruntime", "threads": 1}],
    ids=["torch-optimized", "onnxruntime", "onnxruntime-1-thread"],
)
def test_backends_agree_with_plain_eager(backend_options: dict) -> None:
    """Labels on >= 99.5 % of pixels, confidence within 1e-4 (float op order differs between backends)."""
    model = trained_like()
    images = np.random.default_rng(0).integers(0, 256, (2, 97, 131, 3), dtype=np.uint8)
    eager = Segmenter(model, TINY, InferenceConfig(device="cpu", mode="prob", optimize=False))(images)
    got = Segmenter(model, TINY, InferenceConfig(device="cpu", mode="prob", **backend_options))(images)
    assert got.labels.dtype == np.uint8 and got.labels.shape == (2, 97, 131)
    assert (got.labels == eager.labels).mean() >= 0.995
    np.testing.assert_allclose(got.confidence, eager.confidence, atol=1e-4)
    # The plain eager path is the model itself: confidence is the max softmax probability.
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / (
        torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    )
    with torch.no_grad():
        prob = model(x).softmax(1).max(1).values.numpy()
    np.testing.assert_allclose(eager.confidence, prob, atol=1e-5)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_inference_resolution_resized_back_to_input(backend: str) -> None:
    config = InferenceConfig(device="cpu", backend=backend, width=64, height=48, mode="prob")
    out = Segmenter(trained_like(), TINY, config)(np.full((75, 101, 3), 128, np.uint8))
    assert out.labels.shape == (75, 101) and out.confidence.shape == (75, 101)
    assert out.labels.max() < 3 and 1 / 3 - 1e-6 <= out.confidence.min() <= out.confidence.max() <= 1


def test_batch_equals_single_images() -> None:
    segmenter = Segmenter(trained_like(), TINY, InferenceConfig(device="cpu"))
    images = np.random.default_rng(1).integers(0, 256, (3, 40, 56, 3), dtype=np.uint8)
    batch = segmenter(images).labels
    assert batch.shape == (3, 40, 56)
    for image, labels in zip(images, batch, strict=True):
        assert (segmenter(image).labels == labels).mean() >= 0.995


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": "caffe"}, "backend"),
        ({"mode": "logits"}, "mode"),
        ({"output_resolution": "half"}, "output_resolution"),
        ({"width": -1}, "width"),
        ({"threads": -2}, "threads"),
        ({"max_pixels": 0}, "max_pixels"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_config_is_refused(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Segmenter(FastSCNN(3, aux=False), TINY, InferenceConfig(**{"device": "cpu", **options}))


def test_class_set_that_does_not_fit_the_model_is_refused() -> None:
    with pytest.raises(ConfigError, match="3 classes but the class set has 19"):
        Segmenter(FastSCNN(3, aux=False), CITYSCAPES, InferenceConfig(device="cpu"))


def test_checkpoint_of_another_architecture_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    save_checkpoint(path, FastSCNN(3), TINY)
    payload = torch.load(path, weights_only=True)
    payload["arch_version"] = 999
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="architecture version 999"):
        Segmenter.from_checkpoint(path, InferenceConfig(device="cpu"))


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
def test_tensorrt_backend_without_tensorrt_says_what_to_install() -> None:
    with pytest.raises(ConfigError, match="tensorrt"):
        Segmenter(FastSCNN(3, aux=False), TINY, InferenceConfig(device="cpu", backend="tensorrt"))


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is None or not torch.cuda.is_available(), reason="needs tensorrt and CUDA"
)
@pytest.mark.parametrize("fp16", [False, True])
def test_tensorrt_agrees_with_eager(fp16: bool) -> None:
    model = trained_like()
    images = np.random.default_rng(0).integers(0, 256, (1, 97, 131, 3), dtype=np.uint8)
    eager = Segmenter(model, TINY, InferenceConfig(device="cuda", mode="prob", optimize=False))(images)
    got = Segmenter(model, TINY, InferenceConfig(device="cuda", mode="prob", backend="tensorrt", fp16=fp16))(images)
    assert (got.labels == eager.labels).mean() >= (0.99 if fp16 else 0.995)
    np.testing.assert_allclose(got.confidence, eager.confidence, atol=1e-2 if fp16 else 1e-4)


def test_from_config_uses_its_checkpoint_and_leaves_the_model_alone(checkpoint: Path) -> None:
    segmenter = Segmenter.from_config(InferenceConfig(checkpoint=str(checkpoint), device="cpu"))
    assert segmenter.classes == TINY and segmenter.device == torch.device("cpu")
    with pytest.raises(ConfigError, match="checkpoint"):
        Segmenter.from_config(InferenceConfig(device="cpu"))
    model = FastSCNN(3, aux=False)
    model.mode = "cls"
    Segmenter(model, TINY, InferenceConfig(device="cpu", optimize=False))
    assert model.mode == "cls"
