"""`fast-scnn bag-to-dataset`: a recorded drive's camera frames as a folder dataset (fast_scnn_core.bags.to_dataset).

Exit status: 0 every frame written; 1 complete but some bad messages were skipped; 2 error.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from fast_scnn_core.cli.bag_args import add_bag_arguments, options_from_args
from fast_scnn_core.cli.engine_args import add_engine_arguments, inference_config_from_args
from fast_scnn_core.errors import FastSCNNError

if TYPE_CHECKING:
    from fast_scnn_core.bags.to_dataset import ExtractReport
    from fast_scnn_core.infer.segmenter import Segmenter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_bag_arguments(parser, "extract")
    parser.add_argument("output", metavar="OUT_DIR", help="dataset folder to write (images/, masks/, classes.yaml)")
    add_extract_arguments(parser)


def add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    """Which frames, which split, which engine: the options of bag-to-dataset and bags-to-dataset."""
    rate = parser.add_mutually_exclusive_group()
    rate.add_argument("--every", type=int, default=1, help="keep every N-th frame of each camera (default: all)")
    rate.add_argument("--fps", type=float, help="keep at most F frames per second of recording time per camera")
    parser.add_argument("--checkpoint", help="write its labels as masks (pseudo-labels) and its classes.yaml")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="share of the drive's time blocks for val")
    parser.add_argument("--block-seconds", type=float, default=10.0, help="longest time block of the split")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT_DIR (and a leftover OUT_DIR.partial)")
    add_engine_arguments(parser)


def check_arguments(args: argparse.Namespace) -> None:
    """FastSCNNError naming the flag whose value is out of its range."""
    if args.every < 1:
        raise FastSCNNError(f"--every must be >= 1, got {args.every}")
    if args.fps is not None and args.fps <= 0:
        raise FastSCNNError(f"--fps must be > 0, got {args.fps}")
    if not 0.0 < args.val_fraction < 1.0:
        raise FastSCNNError(f"--val-fraction must be in (0, 1), got {args.val_fraction}")
    if args.block_seconds <= 0:
        raise FastSCNNError(f"--block-seconds must be > 0, got {args.block_seconds}")


def run(args: argparse.Namespace) -> int:
    from fast_scnn_core.bags.to_dataset import ExtractOptions, bag_to_dataset
    from fast_scnn_core.infer.segmenter import Segmenter

    check_arguments(args)
    options = options_from_args(ExtractOptions, args)

    def load() -> Segmenter:
        return Segmenter.from_checkpoint(args.checkpoint, inference_config_from_args(args))

    out = Path(args.output)
    extracted = bag_to_dataset(Path(args.input), out, options, load if args.checkpoint else None)
    report(out, extracted)
    return 1 if extracted.skips.total else 0


def report(out: Path, extracted: ExtractReport) -> None:
    """What was written, per camera and split, and the next step (train, or annotate first)."""
    from fast_scnn_core.bags.to_dataset import SPLITS

    counts, skips = extracted.counts, extracted.skips
    per_split = {part: sum(n for (_, p), n in counts.items() if p == part) for part in SPLITS}
    train, val = per_split["train"], per_split["val"]
    print(f"bag-to-dataset: {train + val} frames -> {out} ({train} train, {val} val)")
    for camera in extracted.cameras:
        skipped = f", {skips.on(camera)} skipped" if skips.on(camera) else ""
        print(f"  {camera}: {counts[(camera, 'train')]} train, {counts[(camera, 'val')]} val{skipped}")
    if skips.total:
        print(f"skipped {skips.total} bad message(s):\n{skips.report()}")
    empty = [part for part in SPLITS if not per_split[part]]
    if empty:
        print(f"warning: split {', '.join(empty)} is empty; keep more frames or change --val-fraction/--block-seconds")
    if extracted.labelled:
        print(
            "masks are the checkpoint's labels (pseudo-labels: correct them before trusting them). Train with:\n"
            f"  fast-scnn train --config config/train_cityscapes.yaml data.format=folder data.root={out} "
            f"data.classes={out}/classes.yaml"
        )
    else:
        print(
            "no --checkpoint: images only. Annotate them into masks/<split>/<same name>.png (class ids, 255 = "
            "ignore) with a classes.yaml (see config/classes_example.yaml); training refuses images without masks"
        )
