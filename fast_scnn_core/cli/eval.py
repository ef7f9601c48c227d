"""`fast-scnn eval`: class/category mIoU, per-class IoU and pixel accuracy of a checkpoint or of saved predictions.

`--input-scale 0.5` reproduces the paper's Table 7: infer on the downsampled image, score at the
label resolution. `--zero-skip` is the skip-connection ablation (sec. 4.2). The metrics are those of
validation in training (metrics.py, train/validate.py): one implementation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fast_scnn_core.errors import CheckpointError, ConfigError
from fast_scnn_core.infer.options import add_option_argument

# The layouts of fast_scnn_core.data.BUILDERS, named here because importing the data package loads
# torch and --help must not (test_evaluate.py keeps the two equal).
FORMATS = ("cityscapes", "folder")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default="", help="checkpoint to run (e.g. runs/x/best.pt)")
    parser.add_argument(
        "--predictions",
        default="",
        help="score saved predictions instead of running a checkpoint: a folder of `fast-scnn predict` outputs "
        "(<image name>_labels.png, or <image name>.png from --label-ids), searched recursively",
    )
    parser.add_argument("--data", required=True, help="dataset root (Cityscapes layout or images/ + masks/)")
    parser.add_argument("--format", choices=FORMATS, default="cityscapes", help="dataset layout")
    parser.add_argument("--split", default="val", help="split to score (default: val)")
    parser.add_argument("--classes", default="", help="folder format: class YAML (default: the checkpoint's classes)")
    parser.add_argument(
        "--input-scale",
        type=float,
        default=1.0,
        help="infer on the image resized by this factor, score at label resolution (paper Table 7: 0.5, 0.25)",
    )
    parser.add_argument("--zero-skip", action="store_true", help="zero the skip connection (ablation, sec. 4.2)")
    add_option_argument(parser, "device")
    parser.add_argument("--workers", type=int, default=2, help="data loading processes (default: 2)")
    parser.add_argument(
        "--out", default="", help="metrics JSON (default: <checkpoint or predictions>.eval-<split>.json)"
    )


def _check_arguments(args: argparse.Namespace) -> None:
    if not args.checkpoint and not args.predictions:
        raise ConfigError("give --checkpoint (run a model) or --predictions (score saved predictions)")
    if not 0.0 < args.input_scale <= 4.0:
        raise ConfigError(f"--input-scale {args.input_scale}: expected a factor in (0, 4], e.g. 0.5 or 0.25")
    if args.predictions and (args.input_scale != 1.0 or args.zero_skip):
        raise ConfigError(
            "--input-scale and --zero-skip change how a checkpoint runs; --predictions are scored as saved"
        )


def _dataset(args: argparse.Namespace, payload: dict[str, Any] | None) -> Any:
    """The split to score, with the checkpoint's classes when there is one (and no --classes)."""
    from fast_scnn_core.data import DataConfig, build_dataset
    from fast_scnn_core.model.checkpoint import class_set_of

    classes = class_set_of(payload) if payload else None
    data = DataConfig(format=args.format, root=args.data, classes=args.classes)
    dataset = build_dataset(data, [args.split], classes=None if args.classes else classes)
    if classes is not None and dataset.classes != classes:
        raise CheckpointError(
            f"{args.checkpoint} was trained on {classes.num_classes} classes {list(classes.names)}, but the "
            f"dataset {args.data} uses {dataset.classes.num_classes} classes {list(dataset.classes.names)}"
        )
    return dataset


def _confusion(args: argparse.Namespace, payload: dict[str, Any] | None, dataset: Any) -> Any:
    """The confusion matrix of the saved predictions, or of the checkpoint run over the dataset."""
    from fast_scnn_core.device import resolve_device
    from fast_scnn_core.model.checkpoint import build_model
    from fast_scnn_core.train.validate import evaluate_model, score_predictions

    if args.predictions:
        return score_predictions(dataset, Path(args.predictions))
    device = resolve_device(args.device)
    model = build_model(payload).to(device)
    model.zero_skip = args.zero_skip
    mean, std = tuple(payload["mean"]), tuple(payload["std"])
    return evaluate_model(model, dataset, device, mean, std, args.input_scale, args.workers, True)


def run(args: argparse.Namespace) -> int:
    from fast_scnn_core.atomic import atomic_write_text
    from fast_scnn_core.metrics import format_table, metrics_from_confusion, no_labelled_pixels, to_json
    from fast_scnn_core.model.checkpoint import load_checkpoint

    _check_arguments(args)
    payload = load_checkpoint(args.checkpoint) if args.checkpoint else None
    dataset = _dataset(args, payload)
    confusion = _confusion(args, payload, dataset)
    metrics = metrics_from_confusion(confusion, dataset.classes)
    scored = args.predictions or args.checkpoint
    metrics.update(
        checkpoint=str(args.checkpoint),
        predictions=str(args.predictions),
        data=str(args.data),
        split=args.split,
        images=len(dataset),
        input_scale=args.input_scale,
        zero_skip=args.zero_skip,
        confusion=confusion.cpu().tolist(),
    )
    out = Path(args.out) if args.out else Path(scored.rstrip("/")).with_suffix(f".eval-{args.split}.json")
    atomic_write_text(out, to_json(metrics))
    scale = f", input scale {args.input_scale}" if args.input_scale != 1.0 else ""
    skip = ", skip connection zeroed" if args.zero_skip else ""
    print(f"{scored} on {args.data} {args.split} ({len(dataset)} images{scale}{skip})")
    print(format_table(metrics))
    if not metrics["pixels"]:
        print(f"fast-scnn eval: {no_labelled_pixels(args.split)}", file=sys.stderr)
    print(f"wrote {out}")
    return 0
