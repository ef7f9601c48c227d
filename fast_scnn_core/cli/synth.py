"""`fast-scnn synth`: write the synthetic street scenes of fast_scnn_core.data.synthetic in the Cityscapes layout."""

from __future__ import annotations

import argparse

from fast_scnn_core.errors import ConfigError
from fast_scnn_core.limits import parse_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="data/synth", help="dataset root to write (default: data/synth)")
    parser.add_argument("--train", type=int, default=24, help="training frames (default: 24)")
    parser.add_argument("--val", type=int, default=6, help="validation frames (default: 6)")
    parser.add_argument("--test", type=int, default=0, help="test frames (default: 0)")
    parser.add_argument("--size", default="256x512", help="HEIGHTxWIDTH of each frame (default: 256x512)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed; same seed, same files (default: 0)")


def run(args: argparse.Namespace) -> int:
    from fast_scnn_core.data.synthetic import write_synthetic_dataset

    height, width = parse_size(args.size)  # sides of at least 32, the network's output stride
    counts = {"train": args.train, "val": args.val, "test": args.test}
    if any(n < 0 for n in counts.values()):
        raise ConfigError(f"frame counts must be >= 0, got {counts}")
    written = write_synthetic_dataset(args.out, {k: n for k, n in counts.items() if n > 0}, height, width, args.seed)
    print(f"wrote {len(written)} frames of {width}x{height} ({counts}) to {args.out} in the Cityscapes layout")
    return 0
