"""`fast-scnn label-bags`: label-bag over many bags at once, locally or on Ray, resumable (fast_scnn_core.bags.fleet).

IN... are bags (directories or .mcap/.db3 files) or folders holding bags; each bag's labelled copy goes
to DIR/<its name>, with label-bag's options. A bag whose output exists is not redone (unless
--overwrite): after an interruption or a failure, the same command does only the rest. Prints the
JSON summary (per bag: frames, skipped messages, seconds, status, reason), also written to
DIR/label-bags.json.

Exit status: 0 every bag complete; 1 every bag complete, some bad messages skipped; 2 a bag failed
(the others are complete) or an error before any bag; 130 interrupted (finished bags kept, each
unfinished one's OUT.partial marked incomplete).
"""

from __future__ import annotations

import argparse

from fast_scnn_core.cli.bag_args import add_bag_arguments, add_fleet_arguments, fleet_config_from_args
from fast_scnn_core.cli.engine_args import inference_config_from_args
from fast_scnn_core.cli.label_bag import add_label_arguments, label_options_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_bag_arguments(parser, "segment", many=True)
    add_fleet_arguments(parser, "labelled bags")
    add_label_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from fast_scnn_core.bags.fleet import LabelWork, run_fleet

    config = fleet_config_from_args(args)
    return run_fleet(config, LabelWork(label_options_from_args(args), inference_config_from_args(args)))
