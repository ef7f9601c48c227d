"""The arguments of the commands that read camera topics from a rosbag2 (label-bag, bag-to-dataset)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

# The storages `fast_scnn_core.bags.io.STORAGES` writes, named here so that --help imports no rosbags.
STORAGE_NAMES = ("mcap", "sqlite3")


def add_bag_arguments(parser: argparse.ArgumentParser, purpose: str) -> None:
    """IN and --topic: the bag to read and its camera topics to `purpose` (segment, extract)."""
    parser.add_argument("input", metavar="IN", help="rosbag2 to read: a bag directory (mcap or sqlite3) or .mcap/.db3")
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
