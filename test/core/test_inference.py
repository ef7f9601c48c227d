"""Segmenter: uint8 RGB in, uint8 labels out; checkpoints round-trip and refuse unsafe or foreign files."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from models import TINY, trained_like

from fast_scnn_core.errors import CheckpointError, ConfigError, InputError
from fast_scnn_core.infer import segmenter as inference
from fast_scnn_core.infer.segmenter import InferenceConfig, Segmenter
from fast_scnn_core.labels import CITYSCAPES, ClassSet
from fast_scnn_core.model.checkpoint import IMAGENET_MEAN, IMAGENET_STD, build_model, load_checkpoint, save_checkpoint
from fast_scnn_core.model.network import FastSCNN


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


def view(shape: tuple[int, ...]) -> np.ndarray:
    """A uint8 array of any shape that owns one pixel: a claimed size without its memory."""
    return np.broadcast_to(np.zeros(3, np.uint8), shape)


@pytest.mark.parametrize(
    ("shape", "options", "message"),
    [
        ((1, 16_777_216, 3), {}, "side over 16384"),  # issue 13 #4: took 72 s and 11 GB within max_pixels
        ((16_777_216, 1, 3), {}, "side over 16384"),
        ((4097, 4096, 3), {}, "max_pixels=16777216"),
        ((33, 32, 3), {"max_pixels": 1024}, "max_pixels=1024"),
        ((2, 3000, 3000, 3), {}, "batch of 2"),
        ((2, 100, 100, 3), {"width": 4096, "height": 4096}, "inference resolution 4096x4096"),
    ],
)
def test_sizes_beyond_the_limits_are_refused_before_any_copy(
    checkpoint: Path, shape: tuple[int, ...], options: dict, message: str
) -> None:
    segmenter = Segmenter.from_checkpoint(checkpoint, InferenceConfig(device="cpu", **options))
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=message):
            segmenter(view(shape))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.fixture(scope="module")
def small_segmenter() -> Segmenter:
    """An engine with a small max_pixels, so that every image it accepts runs in milliseconds."""
    return Segmenter(FastSCNN(3, aux=False), TINY, InferenceConfig(device="cpu", backend="torch", max_pixels=64 * 64))


dimension = st.one_of(st.integers(0, 80), st.integers(0, 2**31), st.sampled_from([31, 32, 16384, 16385]))


@settings(max_examples=100, deadline=None)
@given(
    shape=st.one_of(
        st.lists(dimension, min_size=0, max_size=5),
        st.lists(st.integers(1, 64), min_size=3, max_size=4).map(lambda s: [*s[:-1], 3]),  # mostly accepted
    ),
    dtype=st.sampled_from([np.uint8, np.uint8, np.uint8, np.int8, np.uint16, np.float32, np.bool_]),
    channels_last=st.booleans(),
)
def test_any_array_gives_labels_or_an_input_error_within_bounded_memory(
    small_segmenter: Segmenter, shape: list[int], dtype: type, channels_last: bool
) -> None:
    """The fault campaign's shapes as a property: labels of the image's size, or InputError before any copy."""
    if channels_last and shape:
        shape[-1] = 3
    try:
        image = np.broadcast_to(np.zeros((), dtype), shape)  # owns one element whatever the shape claims
    except ValueError:
        assume(False)  # no numpy array has that many elements
    tracemalloc.start()
    try:
        try:
            result = small_segmenter(image)
        except InputError:
            result = None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if result is None:
        assert peak < 64 << 10
    else:
        assert result.labels.shape == image.shape[:-1] and result.labels.dtype == np.uint8
        assert image[..., 0].size <= 64 * 64


@pytest.mark.parametrize("value", [None, [[[0, 0, 0]]], torch.zeros(40, 40, 3, dtype=torch.uint8), "image.png"])
def test_what_is_not_an_array_is_an_input_error(small_segmenter: Segmenter, value: object) -> None:
    with pytest.raises(InputError, match="numpy uint8 array"):
        small_segmenter(value)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_any_side_from_one_pixel_to_the_limit_is_segmented(checkpoint: Path, backend: str) -> None:
    """The network needs one pixel per side; a thin image within MAX_SIDE costs like 32x16384 at most."""
    segmenter = Segmenter.from_checkpoint(checkpoint, InferenceConfig(device="cpu", backend=backend))
    for shape in ((1, 1, 3), (20, 30, 3), (1, 16384, 3), (3, 1, 3)):
        assert segmenter(np.zeros(shape, np.uint8)).labels.shape == shape[:2]


def test_threads_zero_restores_the_library_default() -> None:
    """Issue 13 #5: torch's thread count is process-wide; threads=0 after threads=N left N in place."""
    model = FastSCNN(3, aux=False)
    Segmenter(model, TINY, InferenceConfig(device="cpu", backend="torch", threads=inference._LIBRARY_THREADS + 1))
    assert torch.get_num_threads() == inference._LIBRARY_THREADS + 1
    Segmenter(model, TINY, InferenceConfig(device="cpu", backend="torch", threads=0))
    assert torch.get_num_threads() == inference._LIBRARY_THREADS


def rss() -> int:
    """Resident memory of this process in bytes (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_onnxruntime_gives_a_large_frames_memory_back() -> None:
    """ONNX Runtime's arena kept its high-water mark: one 2048x2048 frame left 0.3 GB resident for good."""
    segmenter = Segmenter(FastSCNN(3, aux=False), TINY, InferenceConfig(device="cpu", backend="onnxruntime"))
    small = np.zeros((64, 128, 3), np.uint8)
    segmenter(small)
    segmenter(small)
    before = rss()
    segmenter(np.zeros((2048, 2048, 3), np.uint8))
    segmenter(small)
    assert rss() - before < 100 << 20


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


def test_batches_group_images_by_inference_size_within_max_pixels_and_max_batch() -> None:
    options = {"device": "cpu", "backend": "torch", "max_batch": 64}
    own_size = Segmenter(trained_like(), TINY, InferenceConfig(**options, max_pixels=40_000))
    sizes = [(100, 100), (50, 80), (100, 100), (100, 100), (50, 80), (100, 100), (100, 100)]
    # width/height 0: one batch per input size, split where 4 x 100x100 would exceed max_pixels
    assert own_size.plan_batches(sizes) == [[0, 2, 3, 5], [1, 4], [6]]
    fixed = Segmenter(trained_like(), TINY, InferenceConfig(**options, width=64, height=32))
    assert fixed.plan_batches(sizes) == [list(range(7))]  # every image is resized to 64x32 first
    assert fixed.plan_batches([]) == []
    assert own_size.plan_batches([(300, 300), (10, 10)]) == [[0], [1]]  # too large alone: its own batch
    pairs = Segmenter(trained_like(), TINY, InferenceConfig(**{**options, "max_batch": 2}, width=64, height=32))
    assert pairs.plan_batches(sizes) == [[0, 1], [2, 3], [4, 5], [6]]
    on_cpu = Segmenter(trained_like(), TINY, InferenceConfig(device="cpu", width=64, height=32))
    assert on_cpu.max_batch == 1 and on_cpu.plan_batches(sizes) == [[i] for i in range(7)]  # the default on CPU


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
@pytest.mark.parametrize(
    "options",
    [{}, {"width": 64, "height": 48}, {"width": 64, "height": 48, "output_resolution": "inference"}],
    ids=["own-size", "inference-size", "inference-output"],
)
def test_a_batch_gives_each_image_what_it_gets_alone(backend: str, options: dict) -> None:
    """Cameras of different sizes in one batch: each result equals segmenting that image alone."""
    config = InferenceConfig(device="cpu", backend=backend, mode="prob", max_batch=4, **options)
    segmenter = Segmenter(trained_like(), TINY, config)
    rng = np.random.default_rng(3)
    shapes = [(75, 101), (48, 64), (75, 101), (120, 90)] if options else [(48, 64)] * 4
    images = [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for shape in shapes]
    batches = segmenter.plan_batches(shapes)
    assert max(len(batch) for batch in batches) > 1
    for batch in batches:
        results = segmenter.segment_batch([images[i] for i in batch])
        for i, result in zip(batch, results, strict=True):
            alone = segmenter(images[i])
            assert result.labels.shape == alone.labels.shape
            np.testing.assert_array_equal(result.labels, alone.labels)
            np.testing.assert_allclose(result.confidence, alone.confidence, rtol=0, atol=1e-6)


def test_a_batch_is_checked_like_an_image() -> None:
    segmenter = Segmenter(trained_like(), TINY, InferenceConfig(device="cpu", backend="torch", max_pixels=5000))
    with pytest.raises(InputError, match="share an inference size"):
        segmenter.segment_batch([np.zeros((10, 10, 3), np.uint8), np.zeros((10, 20, 3), np.uint8)])
    with pytest.raises(InputError, match="exceeds max_pixels"):
        segmenter.segment_batch([np.zeros((50, 50, 3), np.uint8)] * 3)
    with pytest.raises(InputError, match="empty batch"):
        segmenter.segment_batch([])
    with pytest.raises(InputError, match=r"\(H, W, 3\) images"):
        segmenter.segment_batch([np.zeros((2, 10, 10, 3), np.uint8)])


def test_every_option_is_described_once_with_its_bounds() -> None:
    """The public schema the node's descriptors and the CLI derive from (InferenceConfig's field metadata)."""
    from fast_scnn_core.infer.segmenter import option_choices, option_help, option_range

    assert option_range("width") == option_range("height") == (0, 16384)
    assert option_range("threads") == (0, 1024)
    assert option_range("max_pixels") == (1024, 16384 * 16384)
    assert option_range("mode") is None and option_choices("mode") == ("cls", "prob")
    assert option_choices("width") == ()
    assert option_help("width") == "inference width in pixels; 32..16384, or 0 = the input image's width"
    for field in dataclasses.fields(InferenceConfig):
        assert option_help(field.name)
        default = field.default
        assert InferenceConfig(**{field.name: default}) == InferenceConfig()  # every default is within its range
    with pytest.raises(KeyError, match="no option 'widht'"):
        option_help("widht")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": "caffe"}, "backend"),
        ({"mode": "logits"}, "mode"),
        ({"output_resolution": "half"}, "output_resolution"),
        ({"width": -1}, "width"),
        ({"threads": -2}, "threads"),
        ({"max_pixels": 0}, "max_pixels"),
        ({"max_pixels": 2**40}, "max_pixels 1099511627776 is out of range: expected 1024..268435456"),
        ({"device": "tpu"}, "device"),
        # issue 13 #5: each of these was accepted, then failed every frame or killed the process
        ({"width": 20000}, "width 20000 is out of range: expected 32..16384, or 0 = the input image's width"),
        ({"height": 2**31 - 1}, "height"),
        ({"width": 16}, "width 16 is out of range"),
        ({"threads": 100000}, "threads 100000 is out of range: expected 1..1024, or 0 = the library's default"),
        ({"width": 8192, "height": 4096}, "inference resolution 8192x4096 exceeds max_pixels=16777216"),
        ({"width": True}, "width must be of type int"),
        ({"fp16": "yes"}, "fp16 must be of type bool"),
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


def test_from_checkpoint_uses_the_config_checkpoint_and_leaves_the_model_alone(checkpoint: Path) -> None:
    config = InferenceConfig(checkpoint=str(checkpoint), device="cpu")
    segmenter = Segmenter.from_checkpoint(config.checkpoint, config)
    assert segmenter.classes == TINY and segmenter.device == torch.device("cpu")
    with pytest.raises(ConfigError, match="checkpoint"):
        config = InferenceConfig(device="cpu")
        Segmenter.from_checkpoint(config.checkpoint, config)
    model = FastSCNN(3, aux=False)
    model.mode = "cls"
    Segmenter(model, TINY, InferenceConfig(device="cpu", optimize=False))
    assert model.mode == "cls"
