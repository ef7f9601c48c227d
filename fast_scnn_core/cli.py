"""`fast-scnn`: one command with a subcommand per program (also `python -m fast_scnn_core`)."""

from __future__ import annotations

import argparse
import sys

from fast_scnn_core import __version__, bag_dataset, bench, evaluate, export, info, label_bag, predict, train
from fast_scnn_core.data import synthetic
from fast_scnn_core.errors import FastSCNNError

# (name, module, help). Each module defines add_arguments(parser) and run(args) -> exit status.
COMMANDS = (
    ("synth", synthetic, "write a synthetic dataset in the Cityscapes layout"),
    ("train", train, "train with the paper's recipe (config YAML + key=value overrides)"),
    ("eval", evaluate, "class/category mIoU, per-class IoU and pixel accuracy of a checkpoint"),
    ("predict", predict, "segment an image, a folder or a video into label/colour/overlay PNGs"),
    ("label-bag", label_bag, "segment every frame of camera topics in a rosbag2 into a new bag (offline)"),
    ("bag-to-dataset", bag_dataset, "extract a rosbag2's camera frames into a folder dataset for training"),
    ("export", export, "export a checkpoint to ONNX or TorchScript with dynamic height/width"),
    ("bench", bench, "paper-protocol speed benchmark over backends, devices and resolutions"),
    ("info", info, "parameter count and FLOPs at the paper's resolutions"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fast-scnn", description="Fast-SCNN semantic segmentation.")
    parser.add_argument("--version", action="version", version=f"fast-scnn {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module, help_text in COMMANDS:
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except FastSCNNError as exc:
        print(f"fast-scnn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fast-scnn {args.command}: interrupted", file=sys.stderr)
        return 130


def train_main() -> int:
    """`ros2 run fast_scnn_core train`: the same program as `fast-scnn train`."""
    return main(["train", *sys.argv[1:]])
