"""The engine flags of the commands that run a Segmenter (predict, label-bag, bag-to-dataset).

Torch-free, as every command module's top: the flags' types, defaults and help come from
`InferenceConfig`'s fields (`fast_scnn_core.infer.options`), as the node's parameters do.
"""

from __future__ import annotations

import argparse

from fast_scnn_core.infer.options import InferenceConfig, add_option_argument

# The engine options the commands take as flags; the others keep InferenceConfig's defaults.
ENGINE_OPTIONS = ("device", "backend", "precision", "fp16", "width", "height", "threads")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """--device, --backend, --precision, --fp16, --width, --height and --threads, each from its option's field."""
    for name in ENGINE_OPTIONS:
        add_option_argument(parser, name)


def inference_config_from_args(args: argparse.Namespace) -> InferenceConfig:
    """The InferenceConfig of `add_engine_arguments`' flags and --checkpoint."""
    return InferenceConfig(checkpoint=args.checkpoint, **{name: getattr(args, name) for name in ENGINE_OPTIONS})
