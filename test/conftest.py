"""Shared fixtures: tiny tensors, deterministic seeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

# Property tests explore new examples on every developer run; CI replays a fixed set, so a red CI
# is never a coin toss (a failure found locally is kept in .hypothesis/ and replayed first).
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)


@pytest.fixture
def repo_root() -> Path:
    return REPO
