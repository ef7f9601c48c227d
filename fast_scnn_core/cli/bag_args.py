"""The arguments of the commands that read camera topics from a rosbag2 (label-bag, bag-to-dataset)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# The storages `fast_scnn_core.bags.io.STORAGES` writes, named here so that --help imports no rosbags.
STORAGE_NAMES = ("mcap", "sqlite3")


def add_bag_arguments(parser: argparse.ArgumentParser, purpose: str, many: bool = False) -> None:
    """IN (IN... when `many`) and --topic: the bags to read and their camera topics to `purpose` (segment, extract)."""
    if many:
        parser.add_argument(
            "inputs",
            nargs="+",
            type=Path,
            metavar="IN",
            help="rosbag2s to read: bag directories (mcap or sqlite3), .mcap/.db3 files, or folders holding bags",
        )
    else:
        parser.add_argument(
            "input", metavar="IN", help="rosbag2 to read: a bag directory (mcap or sqlite3) or .mcap/.db3"
        )
    parser.add_argument(
        "--topic",
        action="append",
        required=True,
        dest="topics",
        metavar="TOPIC",
        help=f"camera topic (sensor_msgs/Image or CompressedImage) to {purpose}; repeat for several cameras",
    )


def options_from_args(options: type[T], args: argparse.Namespace, **given: Any) -> T:
    """The `options` dataclass from the flags of its fields' names; `given` sets the fields a flag does not."""
    flags = {field.name: getattr(args, field.name) for field in dataclasses.fields(options) if field.name not in given}
    return options(**flags, **given)


def add_fleet_arguments(parser: argparse.ArgumentParser, outputs: str) -> None:
    """--out, --ray, --workers, --retries: where the commands over many bags write and how they run."""
    parser.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help=f"folder of the {outputs}, one per bag, named after it"
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run the bags as Ray tasks: on a local Ray instance, or on the cluster at ADDRESS (auto: the one this "
        "machine is part of); --out must then be a path every node sees. Put it after IN..., or write --ray=ADDRESS",
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="local worker processes (default: one per two CPUs, at most one per bag)"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="times a bag is redone after its worker process died (killed, out of memory, node lost)",
    )


def fleet_config_from_args(args: argparse.Namespace) -> Any:
    """The FleetConfig of `add_fleet_arguments`' flags (FastSCNNError for a value out of range)."""
    from fast_scnn_core.bags.fleet import FleetConfig
    from fast_scnn_core.errors import FastSCNNError

    if args.workers < 0:
        raise FastSCNNError(f"--workers must be >= 1 (0 = one per two CPUs), got {args.workers}")
    if args.retries < 0:
        raise FastSCNNError(f"--retries must be >= 0, got {args.retries}")
    if args.ray is not None and args.workers:
        raise FastSCNNError(
            "--workers is for local worker processes; with --ray, Ray places the tasks (--threads "
            "CPUs each, or one GPU each where the cluster has GPUs)"
        )
    if args.ray and Path(args.ray).exists():
        raise FastSCNNError(
            f"--ray took {args.ray} (a file) as the cluster's address: put --ray after IN..., or write --ray=ADDRESS"
        )
    return FleetConfig(args.inputs, args.out, args.ray, args.workers, args.retries)
