"""The OpenVINO backend, its precisions and `fast-scnn quantize`: real OpenVINO and NNCF on tiny inputs.

"Not installed" is simulated the way Python itself blocks an import: `sys.modules["openvino"] = None`
makes `import openvino` raise ModuleNotFoundError and `importlib.util.find_spec` return None, the two
paths the engine takes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from models import TINY, trained_like
from support import REPO

from fast_scnn_core import cli
from fast_scnn_core.data import DataConfig, build_dataset
from fast_scnn_core.errors import ConfigError
from fast_scnn_core.infer.backends import OPENVINO_SHAPES, OpenVinoEngine
from fast_scnn_core.infer.graph import onnx_bytes, pipeline_graph
from fast_scnn_core.infer.precision import Gate, artefact_path, cpu_precisions, file_sha256, read_artefact
from fast_scnn_core.infer.quantize import write_artefact
from fast_scnn_core.infer.segmenter import InferenceConfig, Segmenter
from fast_scnn_core.labels import CITYSCAPES
from fast_scnn_core.model.checkpoint import save_checkpoint
from fast_scnn_core.model.network import FastSCNN

README = REPO / "README.md"
HAS_BF16 = "bf16" in cpu_precisions()


def readme_command(prefix: str) -> list[str]:
    """The README's command line that starts with `prefix`, as argument list (its comment dropped)."""
    [line] = [line for line in README.read_text().splitlines() if line.startswith(prefix)]
    return shlex.split(line, comments=True)


@pytest.fixture(scope="module")
def quantized(trained_run: dict, synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's `fast-scnn quantize` command, as written, on a copy of the trained session checkpoint at
    runs/synth/best.pt with the session's synthetic set at data/synth (a few seconds)."""
    sandbox = tmp_path_factory.mktemp("readme")
    checkpoint = sandbox / "runs/synth/best.pt"
    checkpoint.parent.mkdir(parents=True)
    shutil.copy(trained_run["run_dir"] / "best.pt", checkpoint)
    (sandbox / "data").mkdir()
    (sandbox / "data/synth").symlink_to(synth_root)
    command = readme_command("fast-scnn quantize ")
    cwd = os.getcwd()
    os.chdir(sandbox)
    try:
        assert cli.main(command[1:]) == 0
    finally:
        os.chdir(cwd)
    assert artefact_path(checkpoint).exists()
    return checkpoint


def val_images(synth_root: Path) -> np.ndarray:
    dataset = build_dataset(DataConfig(root=str(synth_root)), ["val"])
    return np.stack([dataset.load(i)[0] for i in range(len(dataset))])


@pytest.mark.training
@pytest.mark.parametrize(("precision", "bound"), [("f32", 0.999), ("bf16", 0.99), ("int8", 0.97)])
def test_every_precision_agrees_with_float32_on_a_trained_model(
    quantized: Path, synth_root: Path, precision: str, bound: float
) -> None:
    """Labels of the held-out synthetic frames against PyTorch float32; the gate recorded by quantize beside them."""
    if precision == "bf16" and not HAS_BF16:
        pytest.skip("this CPU has no bf16")
    images = val_images(synth_root)
    reference = Segmenter.from_checkpoint(quantized, InferenceConfig(device="cpu", backend="torch"))(images)
    config = InferenceConfig(device="cpu", backend="openvino", precision=precision, threads=2)
    segmenter = Segmenter.from_checkpoint(quantized, config)
    assert (segmenter.backend, segmenter.precision, segmenter.choice.reason) == ("openvino", precision, "asked for")
    agreement = float((segmenter(images).labels == reference.labels).mean())
    print(f"{precision}: labels = float32 on {agreement:.2%} of the pixels")
    assert agreement >= bound
    gate = read_artefact(artefact_path(quantized)).gate
    assert set(gate.miou) == set(cpu_precisions()) and gate.images == len(images) and gate.size == "128x256"
    assert 0.3 < gate.miou["f32"] < 1 and abs(gate.delta_points(precision)) < 2.0


@pytest.mark.training
def test_auto_takes_the_fastest_precision_within_the_gate(quantized: Path, tmp_path: Path) -> None:
    """int8 within 0.3 mIoU points -> int8; int8 beyond and bf16 within -> bf16; none within -> onnxruntime f32."""
    checkpoint = tmp_path / "model.pt"
    shutil.copy(quantized, checkpoint)
    artefact = read_artefact(artefact_path(quantized))
    cases = [
        ({"f32": 0.60, "bf16": 0.599, "int8": 0.5975}, ("openvino", "int8")),
        ({"f32": 0.60, "bf16": 0.599, "int8": 0.5960}, ("openvino", "bf16" if HAS_BF16 else "f32")),
        ({"f32": 0.60, "bf16": 0.590, "int8": 0.5900}, ("onnxruntime", "f32")),
    ]
    for miou, expected in cases:
        gate = Gate({p: v for p, v in miou.items() if p in cpu_precisions()})
        write_artefact(artefact_path(checkpoint), artefact.onnx, file_sha256(checkpoint), gate, str(checkpoint))
        segmenter = Segmenter.from_checkpoint(checkpoint, InferenceConfig(device="cpu"))
        assert (segmenter.backend, segmenter.precision) == expected, segmenter.choice.reason
        assert segmenter(np.zeros((40, 60, 3), np.uint8)).labels.shape == (40, 60)
    assert "no precision within 0.3 mIoU points of f32" in segmenter.choice.reason
    assert "openvino f32 is slower than onnxruntime" in segmenter.choice.reason


@pytest.mark.training
def test_a_changed_checkpoint_makes_its_artefact_stale(quantized: Path, tmp_path: Path, capsys) -> None:
    """Never silently stale: explicit int8 is refused with the command that fixes it, auto leaves int8 out."""
    checkpoint = tmp_path / "model.pt"
    shutil.copy(artefact_path(quantized), artefact_path(checkpoint))
    shutil.copy(quantized, checkpoint)
    assert Segmenter.from_checkpoint(checkpoint, InferenceConfig(device="cpu", precision="int8")).precision == "int8"
    save_checkpoint(checkpoint, FastSCNN(19, aux=False), CITYSCAPES)  # another run's best.pt at the same path
    with pytest.raises(ConfigError, match=r"model.int8.onnx is stale: .*fast-scnn quantize --checkpoint") as error:
        Segmenter.from_checkpoint(checkpoint, InferenceConfig(device="cpu", precision="int8"))
    assert "\n" not in str(error.value)
    auto = Segmenter.from_checkpoint(checkpoint, InferenceConfig(device="cpu"))
    assert auto.precision == "f32" and "stale" in auto.choice.reason
    argv = ["quantize", "--checkpoint", str(checkpoint), "--data", str(tmp_path), "--frames", "1"]
    assert cli.main(argv) == 2
    assert "model.int8.onnx exists; pass --overwrite" in capsys.readouterr().err


@pytest.mark.training
def test_bench_precision_times_every_precision_with_its_gate(quantized: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = ["bench", "--quick", "--precision", "--checkpoint", str(quantized), "--devices", "cpu", "--modes", "cls"]
    assert cli.main([*argv, "--threads", "2", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    variants = {f"openvino-{p}" for p in cpu_precisions()} | {"torch-eager", "tramac-eager", "torch", "onnxruntime"}
    assert {row["variant"] for row in rows} == variants and {row["threads"] for row in rows} == {2}
    for row in rows:
        openvino = row["variant"].startswith("openvino")
        assert row["precision"] == (row["variant"].split("-")[1] if openvino else "f32")
        assert (row["miou_delta"] is not None) == openvino
        assert (row["agreement"] != row["agreement"]) == (row["variant"] == "tramac-eager")  # NaN: other weights


@pytest.mark.parametrize(("precision", "labels", "confidence"), [("f32", 0.995, 1e-4), ("bf16", 0.95, 0.05)])
def test_openvino_agrees_with_plain_eager(precision: str, labels: float, confidence: float) -> None:
    if precision == "bf16" and not HAS_BF16:
        pytest.skip("this CPU has no bf16")
    model = trained_like()
    images = np.random.default_rng(0).integers(0, 256, (2, 97, 131, 3), dtype=np.uint8)
    eager = Segmenter(model, TINY, InferenceConfig(device="cpu", mode="prob", optimize=False))(images)
    config = InferenceConfig(device="cpu", mode="prob", backend="openvino", precision=precision)
    got = Segmenter(model, TINY, config)(images)
    assert got.labels.dtype == np.uint8 and got.labels.shape == (2, 97, 131)
    assert (got.labels == eager.labels).mean() >= labels
    np.testing.assert_allclose(got.confidence, eager.confidence, atol=confidence)


def test_openvino_keeps_a_bounded_number_of_compiled_shapes() -> None:
    """One compiled model per input shape, the last OPENVINO_SHAPES kept; an evicted shape is compiled again."""
    engine = OpenVinoEngine(onnx_bytes(pipeline_graph(trained_like())), precision="f32", threads=1, outputs=1)
    images = [np.random.default_rng(w).integers(0, 256, (1, 32, w, 3), np.uint8) for w in range(40, 52, 2)]
    first = [engine(torch.from_numpy(image))[0].numpy() for image in images]
    assert [labels.shape for labels in first] == [image.shape[:3] for image in images]
    assert list(engine._requests) == [image.shape for image in images[-OPENVINO_SHAPES:]]
    np.testing.assert_array_equal(engine(torch.from_numpy(images[0]))[0].numpy(), first[0])
    assert list(engine._requests)[-1] == images[0].shape and len(engine._requests) == OPENVINO_SHAPES


def test_without_openvino_auto_falls_back_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    segmenter = Segmenter(trained_like(), TINY, InferenceConfig(device="cpu"))
    assert (segmenter.backend, segmenter.precision) == ("onnxruntime", "f32")
    assert segmenter.choice.reason == "openvino is not installed (pip install 'fast_scnn_ros[openvino]')"


@pytest.mark.parametrize("options", [{"backend": "openvino"}, {"precision": "int8"}, {"precision": "bf16"}])
def test_without_openvino_asking_for_it_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch, options) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(ConfigError, match=r"needs the openvino extra: pip install 'fast_scnn_ros\[openvino\]'") as e:
        Segmenter(trained_like(), TINY, InferenceConfig(device="cpu", **options))
    assert "\n" not in str(e.value)


def test_quantize_without_openvino_says_what_to_install(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    save_checkpoint(tmp_path / "m.pt", FastSCNN(19, aux=False), CITYSCAPES)
    assert cli.main(["quantize", "--checkpoint", str(tmp_path / "m.pt"), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "openvino is missing): pip install 'fast_scnn_ros[openvino]'" in err


def corrupt_image(root: Path) -> None:
    image = sorted((root / "leftImg8bit" / "train").glob("*/*.png"))[0]  # the first calibration frame
    image.write_bytes(image.read_bytes()[:100])  # a PNG header, then nothing


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda root: shutil.rmtree(root / "leftImg8bit" / "train"), r"leftImg8bit/train: no such directory"),
        (lambda root: [p.unlink() for p in (root / "leftImg8bit" / "train").glob("*/*.png")], "empty split"),
        (corrupt_image, "cannot read the image"),
    ],
    ids=["no split", "empty split", "corrupt image"],
)
def test_bad_calibration_data_is_one_line(synth_root: Path, tmp_path: Path, capsys, damage, message: str) -> None:
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    damage(root)
    save_checkpoint(tmp_path / "m.pt", FastSCNN(19, aux=False), CITYSCAPES)
    assert cli.main(["quantize", "--checkpoint", str(tmp_path / "m.pt"), "--data", str(root), "--frames", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fast-scnn quantize: error: ") and err.count("\n") == 1, err
    assert message in err and not artefact_path(tmp_path / "m.pt").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": "onnxruntime", "precision": "bf16"}, "precision bf16 runs on backend openvino only"),
        ({"backend": "torch", "precision": "int8"}, "precision int8 runs on backend openvino only"),
        ({"precision": "int4"}, "precision 'int4': expected one of"),
    ],
)
def test_precision_options_are_checked(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        InferenceConfig(**options)


def test_int8_without_an_artefact_says_how_to_make_one(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m.pt", FastSCNN(3, aux=False), TINY)
    with pytest.raises(ConfigError, match=r"precision int8: no m.int8.onnx beside the checkpoint \(fast-scnn quantize"):
        Segmenter.from_checkpoint(tmp_path / "m.pt", InferenceConfig(device="cpu", precision="int8"))
    config = dataclasses.replace(InferenceConfig(device="cpu"), checkpoint=str(tmp_path / "m.pt"))
    auto = Segmenter.from_checkpoint(tmp_path / "m.pt", config)
    assert auto.backend == "onnxruntime" and "no accuracy gate recorded: no m.int8.onnx" in auto.choice.reason
