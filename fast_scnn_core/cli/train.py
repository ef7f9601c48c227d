"""`fast-scnn train`: the paper's training recipe (sec. 4.1), from a config YAML to a run directory.

    fast-scnn train --config config/train_cityscapes.yaml [key=value ...]
    fast-scnn train --config config/finetune.yaml init=cityscapes.pt [key=value ...]   # fine-tuning
    torchrun --nproc_per_node 4 -m fast_scnn_core train --config ... # DDP, one process per GPU

The options are `fast_scnn_core.train.recipe.TrainConfig`; the loop is `fast_scnn_core.train.loop`.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Train Fast-SCNN with the paper's recipe. Options come from --config (see the comments in "
        "config/train_cityscapes.yaml for every key) and key=value overrides, e.g. epochs=10 data.root=/data "
        "batch_size=8 resume=true. Fine-tune from a checkpoint (a run's best.pt, `fast-scnn import-weights`' "
        "output) with --config config/finetune.yaml init=PATH. "
        "Multi-GPU: torchrun --nproc_per_node N -m fast_scnn_core train ..."
    )
    parser.add_argument("--config", default=None, help="training config YAML (default: the paper's recipe)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys")


def run(args: argparse.Namespace) -> int:
    from fast_scnn_core.config import load_config
    from fast_scnn_core.train.loop import train
    from fast_scnn_core.train.recipe import TrainConfig

    return train(load_config(TrainConfig, args.config, args.overrides))
