"""The node's /diagnostics message names what the engine runs and why `auto` chose it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fast_scnn_core.infer.options import InferenceConfig
from fast_scnn_ros.diagnostics import diagnostic_array
from fast_scnn_ros.engine import Engine
from fast_scnn_ros.pipeline import COUNTERS, TIMINGS, Report


def engine_values(engine: Engine) -> dict[str, str]:
    report = Report(1.0, dict.fromkeys(COUNTERS, 0), dict.fromkeys(COUNTERS, 0), {k: [] for k in TIMINGS}, [])
    [status] = diagnostic_array("fast_scnn", engine, [("", report)], 0, 0.0).status
    return {kv.key: kv.value for kv in status.values}


def test_without_openvino_diagnostics_say_why_auto_fell_back(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # how Python blocks an import: find_spec gives None
    values = engine_values(Engine.load(InferenceConfig(checkpoint=str(checkpoint), device="cpu")))
    assert (values["backend"], values["precision"]) == ("onnxruntime", "f32")
    assert values["backend_reason"] == "openvino is not installed (pip install 'fast_scnn_ros[openvino]')"


def test_diagnostics_name_the_precision_asked_for(checkpoint: Path) -> None:
    config = InferenceConfig(checkpoint=str(checkpoint), device="cpu", backend="openvino", precision="f32")
    values = engine_values(Engine.load(config))
    assert (values["backend"], values["precision"], values["backend_reason"]) == ("openvino", "f32", "asked for")
