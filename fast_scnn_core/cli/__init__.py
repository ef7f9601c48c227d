"""`fast-scnn`: one command with a subcommand per program (also `python -m fast_scnn_core`)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Collection

from fast_scnn_core import __version__
from fast_scnn_core.errors import FastSCNNError

# Command `label-bag` is the module fast_scnn_core.cli.label_bag, and so on; each defines add_arguments(parser)
# and run(args) -> exit status. Modules are imported only for the command that runs (help included), and import
# torch & co. only inside run(): `fast-scnn --help` and every command's --help answer without loading torch.
HELP = {
    "synth": "write a synthetic dataset in the Cityscapes layout",
    "train": "train with the paper's recipe (config YAML + key=value overrides)",
    "eval": "class/category mIoU, per-class IoU and pixel accuracy of a checkpoint",
    "predict": "segment an image, a folder or a video into label/colour/overlay PNGs",
    "label-bag": "segment every frame of camera topics in a rosbag2 into a new bag (offline)",
    "bag-to-dataset": "extract a rosbag2's camera frames into a folder dataset for training",
    "label-bags": "label-bag over many bags at once (local worker processes or Ray), resumable",
    "bags-to-dataset": "bag-to-dataset over many bags at once (local worker processes or Ray), resumable",
    "export": "export a checkpoint to ONNX or TorchScript with dynamic height/width",
    "bench": "paper-protocol speed benchmark over backends, devices and resolutions",
    "info": "parameter count and FLOPs at the paper's resolutions",
    "import-weights": "import a published Cityscapes checkpoint (mmsegmentation, Tramac) exactly",
    "quantize": "int8 quantisation for the OpenVINO backend, with each precision's mIoU against f32",
}
COMMANDS = tuple((name, "fast_scnn_core.cli." + name.replace("-", "_"), text) for name, text in HELP.items())


def _command_in(argv: list[str]) -> str | None:
    """The subcommand argv names (its first word that is not an option), if it names one."""
    names = {name for name, _, _ in COMMANDS}
    words = [word for word in argv if not word.startswith("-")]
    return words[0] if words and words[0] in names else None


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The `fast-scnn` parser; only the modules of `commands` (default: all) are imported and given their arguments."""
    parser = argparse.ArgumentParser(prog="fast-scnn", description="Fast-SCNN semantic segmentation.")
    parser.add_argument("--version", action="version", version=f"fast-scnn {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name, help_text in COMMANDS:
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if commands is None or name in commands:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_in(argv)
    args = build_parser([command] if command else []).parse_args(argv)
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
