"""The package's public names: `from fast_scnn_core import FastSCNN, Segmenter, ...`, imported on first use."""

from __future__ import annotations

import sys

import pytest
from support import run_command

import fast_scnn_core
from fast_scnn_core.infer.options import InferenceConfig
from fast_scnn_core.infer.segmenter import Segmenter
from fast_scnn_core.labels import CITYSCAPES, ClassSet
from fast_scnn_core.model.checkpoint import load_checkpoint, save_checkpoint
from fast_scnn_core.model.network import FastSCNN

PUBLIC = {
    "FastSCNN": FastSCNN,
    "Segmenter": Segmenter,
    "InferenceConfig": InferenceConfig,
    "save_checkpoint": save_checkpoint,
    "load_checkpoint": load_checkpoint,
    "CITYSCAPES": CITYSCAPES,
    "ClassSet": ClassSet,
}


def test_each_public_name_is_the_object_its_module_defines() -> None:
    assert set(fast_scnn_core.__all__) == {"__version__", *PUBLIC}
    for name, value in PUBLIC.items():
        assert getattr(fast_scnn_core, name) is value, name
    assert set(PUBLIC) <= set(dir(fast_scnn_core))
    with pytest.raises(AttributeError, match="has no attribute 'Fast_SCNN'"):
        fast_scnn_core.Fast_SCNN  # noqa: B018 (the attribute access is the test)


@pytest.mark.cli
def test_importing_the_package_imports_no_torch() -> None:
    probe = "import sys, fast_scnn_core; print(fast_scnn_core.__version__, 'torch' in sys.modules)"
    result = run_command([sys.executable, "-c", probe], timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [fast_scnn_core.__version__, "False"]
