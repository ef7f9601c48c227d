"""`fast-scnn label-bag`: segment every camera frame of a recorded drive into a new bag (fast_scnn_core.bags.label).

Exit status: 0 every frame labelled; 1 OUT complete but some bad messages were skipped (copied
unchanged, listed); 2 error; 130 interrupted.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from fast_scnn_core.cli.bag_args import STORAGE_NAMES, add_bag_arguments, options_from_args
from fast_scnn_core.cli.engine_args import add_engine_arguments, inference_config_from_args
from fast_scnn_core.errors import FastSCNNError

if TYPE_CHECKING:
    from fast_scnn_core.bags.label import LabelOptions, LabelReport
    from fast_scnn_core.infer.segmenter import Segmenter

# The CPU batch (fast_scnn_core.bags.label.CPU_BATCH), named in --help without importing torch.
CPU_BATCH_HELP = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_bag_arguments(parser, "segment")
    parser.add_argument("output", metavar="OUT", help="bag directory to write (built as OUT.partial, then renamed)")
    add_label_arguments(parser)


def add_label_arguments(parser: argparse.ArgumentParser) -> None:
    """What to write and with which engine: the options of label-bag and label-bags."""
    parser.add_argument("--checkpoint", required=True, help="checkpoint (.pt) written by `fast-scnn train`")
    parser.add_argument(
        "--masks", default="", help="comma-separated classes (names or topic names) that get segmentation/masks/<class>"
    )
    parser.add_argument("--color", action="store_true", help="also write segmentation/color (rgb8 class colours)")
    parser.add_argument("--overlay", action="store_true", help="also write segmentation/overlay (image + colours)")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the class colours")
    parser.add_argument(
        "--batch",
        type=int,
        default=0,
        help=f"frames per inference batch (0 = {CPU_BATCH_HELP} on CPU, from free memory on CUDA)",
    )
    parser.add_argument("--storage", choices=STORAGE_NAMES, help="OUT's storage (default: IN's)")
    parser.add_argument(
        "--replace-existing",
        action="store_true",
        help="leave IN's own messages on the output topics (e.g. recorded from the live node) out of OUT",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT (and a leftover OUT.partial)")
    add_engine_arguments(parser)


def run(args: argparse.Namespace, segmenter: Segmenter | None = None) -> int:
    """Label the bag as `args` say with `segmenter`, by default one built from --checkpoint and the engine flags."""
    from fast_scnn_core.bags.label import label_bag
    from fast_scnn_core.infer.segmenter import Segmenter

    options = label_options_from_args(args)

    def load() -> Segmenter:
        return segmenter or Segmenter.from_checkpoint(args.checkpoint, inference_config_from_args(args))

    out = Path(args.output)
    return summarize(label_bag(Path(args.input), out, load, options, str(args.checkpoint)), out)


def label_options_from_args(args: argparse.Namespace) -> LabelOptions:
    """The LabelOptions of `add_label_arguments`' flags (FastSCNNError naming a flag out of its range)."""
    from fast_scnn_core.bags.label import LabelOptions

    if not 0.0 <= args.alpha <= 1.0:
        raise FastSCNNError(f"--alpha must be in [0, 1], got {args.alpha}")
    if args.batch < 0:
        raise FastSCNNError(f"--batch must be >= 1 (0 = sized to the device), got {args.batch}")
    return options_from_args(LabelOptions, args, masks=args.masks.split(","))


def summarize(report: LabelReport, out: Path) -> int:
    """Print the frames labelled per camera and the messages skipped; the exit status."""
    done = sum(report.labelled.values())
    rate = done / max(report.seconds, 1e-9)
    print(f"label-bag: {done} frames labelled in {report.seconds:.1f} s ({rate:.1f} frames/s) -> {out}")
    skips = report.skips
    for camera, outputs in report.cameras.items():
        skipped = f", {skips.on(camera)} skipped" if skips.on(camera) else ""
        print(f"  {camera}: {report.labelled[camera]} frames{skipped} -> {', '.join(outputs.topics())}")
    if skips.total:
        print(f"skipped {skips.total} bad message(s) (copied to OUT unchanged, not labelled):\n{skips.report()}")
        return 1
    return 0
