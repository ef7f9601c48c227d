"""`fast-scnn bags-to-dataset`: bag-to-dataset over many bags at once, locally or on Ray (fast_scnn_core.bags.fleet).

IN... are bags or folders holding bags; each bag's dataset folder goes to DIR/<its name>, with
bag-to-dataset's options, and the JSON summary to DIR/bags-to-dataset.json. Resumable and with the
exit statuses of `fast-scnn label-bags`.
"""

from __future__ import annotations

import argparse

from fast_scnn_core.cli.bag_args import (
    add_bag_arguments,
    add_fleet_arguments,
    fleet_config_from_args,
    options_from_args,
)
from fast_scnn_core.cli.bag_to_dataset import add_extract_arguments, check_arguments
from fast_scnn_core.cli.engine_args import inference_config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_bag_arguments(parser, "extract", many=True)
    add_fleet_arguments(parser, "dataset folders")
    add_extract_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from fast_scnn_core.bags.fleet import DatasetWork, run_fleet
    from fast_scnn_core.bags.to_dataset import ExtractOptions

    check_arguments(args)
    config = fleet_config_from_args(args)
    engine = inference_config_from_args(args) if args.checkpoint else None
    return run_fleet(config, DatasetWork(options_from_args(ExtractOptions, args), engine))
