"""BatchNorm folding is exact; ONNX (real ONNX Runtime) and TorchScript exports keep dynamic sizes and match PyTorch."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from models import TINY, trained_like
from support import REPO

from fast_scnn_core import cli
from fast_scnn_core.errors import FastSCNNError
from fast_scnn_core.infer.graph import (
    SegmentationGraph,
    check_export,
    example_input,
    onnx_bytes,
    pipeline_graph,
    torchscript,
)
from fast_scnn_core.model.checkpoint import save_checkpoint
from fast_scnn_core.model.fuse import fold_batchnorm
from fast_scnn_core.model.network import FastSCNN


def session(data: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def test_batchnorm_folding_is_exact_and_removes_every_batchnorm() -> None:
    model = trained_like()
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()), "the original is left untouched"
    x = torch.randn(2, 3, 97, 131)
    with torch.no_grad():
        expected, got = model(x), folded(x)
    assert (got - expected).abs().max().item() < 1e-5 * max(1.0, expected.abs().max().item())


@pytest.mark.parametrize("size", [(97, 131), (64, 128), (512 // 8, 1024 // 8)])
def test_onnx_model_round_trips_at_any_size(size: tuple[int, int]) -> None:
    model = trained_like()
    data = onnx_bytes(model, exporter="legacy")
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected = model(x).numpy()
    (got,) = session(data).run(None, {"image": x.numpy()})
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_pyramid_pooling_exports_when_map_is_not_a_multiple_of_the_bin() -> None:
    """256x512 input -> 8x16 map at 1/32: bins 3 and 6 do not divide it (the legacy exporter's trap)."""
    model = trained_like()
    data = onnx_bytes(model, exporter="legacy")
    assert not any(node.op_type == "AdaptiveAvgPool2d" for node in onnx.load_from_string(data).graph.node)
    x = torch.randn(1, 3, 256, 512)
    with torch.no_grad():
        expected = model(x).numpy()
    (got,) = session(data).run(None, {"image": x.numpy()})
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_dynamo_exporter_round_trips_odd_sizes() -> None:
    graph = pipeline_graph(trained_like(), mode="prob")
    data = onnx_bytes(graph, exporter="dynamo")
    report = check_export(graph, lambda x: session(data).run(None, {"image": x.numpy()}), sizes=((97, 131), (40, 72)))
    assert "97x131" in report


@pytest.mark.parametrize("mode", ["cls", "prob"])
def test_pipeline_graph_takes_uint8_and_returns_labels(mode: str) -> None:
    graph = pipeline_graph(trained_like(), mode=mode)
    data = onnx_bytes(graph)
    image = torch.randint(0, 256, (2, 97, 131, 3), dtype=torch.uint8)
    outputs = session(data).run(None, {"image": image.numpy()})
    with torch.inference_mode():
        expected = graph(image)
    expected = [expected] if mode == "cls" else list(expected)
    assert len(outputs) == len(expected)
    assert outputs[0].dtype == np.uint8 and outputs[0].shape == (2, 97, 131)
    assert (outputs[0] == expected[0].numpy()).mean() >= 0.995
    if mode == "prob":
        assert outputs[1].dtype == np.float32
        np.testing.assert_allclose(outputs[1], expected[1].numpy(), atol=1e-4)


def test_segmentation_graph_leaves_the_given_model_unchanged() -> None:
    model = trained_like()
    model.mode = "prob"
    graph = SegmentationGraph(model, mode="prob")
    image = example_input(graph, 40, 56)
    with torch.inference_mode():
        labels, confidence = graph(image)
        prob = model(image.permute(0, 3, 1, 2).float() * graph.scale + graph.shift)
    assert model.mode == "prob" and graph.model is model
    assert (labels.long() == prob.argmax(dim=1)).all()
    torch.testing.assert_close(confidence, prob.max(dim=1).values)
    pipeline_graph(model, mode="cls")
    assert model.mode == "prob" and any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_torchscript_keeps_dynamic_sizes() -> None:
    graph = pipeline_graph(trained_like())
    module = torchscript(graph)
    image = example_input(graph, 97, 131)
    with torch.inference_mode():
        assert (module(image) == graph(image)).float().mean() >= 0.995
        assert module(example_input(graph, 33, 47)).shape == (1, 33, 47)


def test_check_export_catches_a_wrong_graph() -> None:
    graph = pipeline_graph(trained_like())
    other = SegmentationGraph(FastSCNN(3, aux=False).eval())
    with pytest.raises(FastSCNNError, match="labels agree"):
        check_export(graph, lambda x: [other(x).numpy()])


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, trained_like(), TINY)
    return path


@pytest.mark.parametrize(("fmt", "suffix"), [("onnx", ".onnx"), ("torchscript", ".ts")])
def test_export_cli_writes_a_checked_file_and_refuses_to_overwrite(
    checkpoint: Path, tmp_path: Path, fmt: str, suffix: str, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / f"model{suffix}"
    argv = ["export", "--checkpoint", str(checkpoint), "--out", str(out), "--format", fmt, "--exporter", "legacy"]
    assert cli.main([*argv, "--graph", "pipeline", "--mode", "cls"]) == 0
    assert "97x131" in capsys.readouterr().out
    if fmt == "onnx":
        proto = onnx.load(out)
        meta = {p.key: p.value for p in proto.metadata_props}
        assert json.loads(meta["fast_scnn.classes"])["names"] == ["a", "b", "c"]
        assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    else:
        assert torch.jit.load(str(out))(torch.zeros(1, 50, 70, 3, dtype=torch.uint8)).shape == (1, 50, 70)
    before = out.read_bytes()
    assert cli.main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert cli.main([*argv, "--overwrite"]) == 0


def readme_commands(program: str) -> list[list[str]]:
    """The `fast-scnn <program> ...` lines of README.md's code blocks, split as a shell would (comments dropped)."""
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    lines = [line for block in blocks for line in block.splitlines() if line.startswith(f"fast-scnn {program} ")]
    return [shlex.split(line, comments=True) for line in lines]


def test_readme_export_commands_work_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13 #1: the README's default export (dynamo, --graph model) failed for every checkpoint. Issue 20 #4:
    and printed the dynamo exporter's "torchvision is not installed. Skipping torchvision::..." notices."""
    commands = readme_commands("export")
    assert len(commands) >= 2
    monkeypatch.chdir(tmp_path)
    save_checkpoint(tmp_path / "runs/synth/best.pt", trained_like(), TINY)
    for argv in commands:
        assert cli.main(argv[1:]) == 0, " ".join(argv)
        out = tmp_path / argv[argv.index("--out") + 1]
        captured = capsys.readouterr()
        assert out.is_file() and "97x131" in captured.out
        assert "torchvision" not in captured.err + caplog.text, " ".join(argv)
