"""Shared fixtures: deterministic seeds; property tests replayed under CI. Shared helpers are in support.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings
from support import REPO

# Property tests explore new examples on every developer run; CI replays a fixed set, so a red CI
# is never a coin toss (a failure found locally is kept in .hypothesis/ and replayed first).
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def weights_fixtures() -> Path:
    """../shared/weights-fixtures beside the clone: stand-ins for the published Cityscapes checkpoints (random
    weights, upstream layout; README there). CI has it, so there its absence fails the run; elsewhere it skips."""
    folder = REPO.parent / "shared" / "weights-fixtures"
    if not folder.is_dir():
        message = f"{folder} is missing (the weights fixtures live beside the clone)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return folder
