"""Placeholder: implemented by its own issue."""

from __future__ import annotations

import argparse

from fast_scnn_core.errors import FastSCNNError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise FastSCNNError("not implemented yet")
