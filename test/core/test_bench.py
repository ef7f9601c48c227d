"""`fast-scnn bench --quick`: every available CPU backend side by side; the table as JSON and Markdown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fast_scnn_core import cli
from fast_scnn_core.cli.bench import BASELINE, QUICK_SIZES, scene


def test_quick_bench_writes_json_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    json_path, md_path = tmp_path / "bench.json", tmp_path / "bench.md"
    argv = ["bench", "--quick", "--devices", "cpu", "--modes", "cls,prob", "--json", str(json_path)]
    assert cli.main([*argv, "--markdown", str(md_path)]) == 0
    result = json.loads(json_path.read_text())
    rows = result["rows"]
    variants = {row["variant"] for row in rows}
    assert variants == {BASELINE, "torch", "onnxruntime"}
    assert len(rows) == len(QUICK_SIZES) * 2 * len(variants)
    for row in rows:
        assert row["frames"] == 3 and row["ms"] > 0 and abs(row["fps"] * row["ms"] - 1000) < 1e-6
        assert row["agreement"] >= 0.995
        if row["variant"] == BASELINE:
            assert row["ratio"] == pytest.approx(1.0)
    assert result["machine"]["torch"] and result["machine"]["threads"] >= 1
    table = md_path.read_text()
    assert "| cpu | 64x128 | prob | onnxruntime |" in table and "x eager fp32" in table
    assert "| cpu | 96x160 | cls | torch-eager |" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("option", "value"),
    [("--sizes", "512"), ("--sizes", "16x16"), ("--modes", "logits"), ("--threads", "1,two"), ("--threads", "1,-1")],
)
def test_bad_bench_options_are_refused(option: str, value: str, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["bench", "--devices", "cpu", option, value, "--frames", "1", "--warmup", "0"]) == 2
    assert option in capsys.readouterr().err


def test_scene_is_deterministic_and_not_flat() -> None:
    a, b = scene(40, 60), scene(40, 60)
    assert a.shape == (40, 60, 3) and a.dtype.name == "uint8"
    assert (a == b).all() and a.std() > 20
