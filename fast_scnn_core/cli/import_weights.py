"""`fast-scnn import-weights`: a published Fast-SCNN Cityscapes checkpoint -> our self-describing checkpoint.

The file is mapped tensor by tensor onto `FastSCNN(variant=--from)` (`fast_scnn_core.model.weights`);
any mismatch is one line naming the key, exit status 2, and nothing is written. The output holds the
19 Cityscapes classes, the ImageNet mean/std both projects normalise with, the variant and where the
weights come from (project, file name, sha256, reported mIoU). torch is imported when the command
runs, not for `--help`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# The layouts fast_scnn_core.model.weights reads (its RULES; a test keeps them equal), spelt out here so
# that --help imports no torch.
SOURCES = ("mmseg", "tramac")

EPILOG = """\
published checkpoints (download them yourself; Cityscapes' terms of use may restrict models trained on it):
  mmseg   OpenMMLab mmsegmentation, 70.96 Cityscapes val mIoU:
          https://download.openmmlab.com/mmsegmentation/v0.5/fast_scnn/fast_scnn_lr0.12_8x4_160k_cityscapes/
          fast_scnn_lr0.12_8x4_160k_cityscapes_20210630_164853-0cec9937.pth
  tramac  Tramac/Fast-SCNN-pytorch weights/fast_scnn_citys.pth, 54.84 mIoU
mmseg trained with a sigmoid loss: its labels are right, its softmax confidences less calibrated than ours."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("input", metavar="IN.pth", help="the published checkpoint file")
    parser.add_argument("--from", dest="source", required=True, choices=SOURCES, help="the project that wrote IN")
    parser.add_argument("--out", required=True, metavar="OUT.pt", help="checkpoint to write (for every command)")
    parser.add_argument(
        "--keep-aux", action="store_true", help="keep mmseg's two auxiliary heads (for fine-tuning; not for inference)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def run(args: argparse.Namespace) -> int:
    import sys

    from fast_scnn_core.atomic import refuse_overwrite
    from fast_scnn_core.labels import CITYSCAPES
    from fast_scnn_core.model.checkpoint import IMAGENET_MEAN, IMAGENET_STD, save_checkpoint
    from fast_scnn_core.model.weights import import_weights

    out = Path(args.out)
    refuse_overwrite(out, args.overwrite)
    model, report = import_weights(args.source, args.input, keep_aux=args.keep_aux)
    for warning in report.warnings:
        print(f"fast-scnn import-weights: warning: {warning}", file=sys.stderr)
    save_checkpoint(out, model, CITYSCAPES, mean=IMAGENET_MEAN, std=IMAGENET_STD, imported_from=report.imported_from)
    source = report.imported_from
    miou = f"{source.reported_miou} mIoU reported" if source.reported_miou is not None else "not the release file"
    notes = [f"{report.source_tensors} source tensors"]
    notes += [f"{len(report.folded_biases)} biases folded into BatchNorm"] if report.folded_biases else []
    notes += [f"{len(report.dropped_aux)} auxiliary-head tensors dropped"] if report.dropped_aux else []
    filled = report.filled_num_batches_tracked
    notes += [f"{len(filled)} num_batches_tracked set to 0 (absent from the file)"] if filled else []
    print(
        f"wrote {out}: {source.project} {source.file} (sha256 {source.sha256[:12]}..., {miou}) as "
        f"FastSCNN(variant={args.source!r}); {', '.join(notes)}"
    )
    return 0
