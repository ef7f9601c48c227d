"""`fast-scnn predict`: segment an image, a folder of images or a video into PNGs.

For every image (or video frame) it writes, as asked by `--outputs`:
  `<name>_labels.png`  8-bit single channel, one class id per pixel (`fast-scnn eval --predictions` reads it);
  `<name>_color.png`   the labels in the checkpoint's class colours;
  `<name>_overlay.png` the colours blended over the image (`--alpha`).
With `--label-ids` (a Cityscapes benchmark submission) it writes only `<name>.png`, the Cityscapes
labelIds of the 19 classes, named like the input (`<city>_<seq>_<frame>_leftImg8bit.png`): the
benchmark server and cityscapesScripts' evaluation find a prediction by `<city>_<seq>_<frame>*.png`
and take exactly one per image, so no other PNG is written beside it.
A folder is walked recursively and its layout kept under `--out`; a video's frames go to
`<out>/<video name>/<frame:06d>_*.png`. Nothing is overwritten without `--overwrite`, and every
file is written atomically (complete or absent).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fast_scnn_core.atomic import atomic_write_bytes, refuse_overwrite, remove_stale_temporaries
from fast_scnn_core.cli.engine_args import add_engine_arguments, inference_config_from_args
from fast_scnn_core.errors import DataError, FastSCNNError, InputError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import cv2
    import numpy as np

    from fast_scnn_core.infer.options import InferenceConfig
    from fast_scnn_core.infer.segmenter import Segmenter

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
OUTPUTS = ("labels", "color", "overlay")
LABEL_IDS = "label_ids"  # the --label-ids output: Cityscapes labelIds named like the input image


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="an image, a folder of images (recursive) or a video file")
    parser.add_argument("--checkpoint", required=True, help="checkpoint (.pt) written by `fast-scnn train`")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--outputs", default=None, help=f"comma-separated subset of {','.join(OUTPUTS)} (default: all three)"
    )
    parser.add_argument(
        "--label-ids",
        action="store_true",
        help="Cityscapes benchmark submission: only <name>.png holding Cityscapes labelIds, named like the input "
        "image, as the server and cityscapesScripts' evaluation read them (a checkpoint of the 19 Cityscapes classes)",
    )
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the class colours")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_engine_arguments(parser)


def _outputs(text: str | None, label_ids: bool) -> tuple[str, ...]:
    if label_ids:
        if text is not None:
            raise FastSCNNError("--label-ids writes only the labelIds PNGs (one prediction per image); drop --outputs")
        return (LABEL_IDS,)
    text = ",".join(OUTPUTS) if text is None else text
    chosen = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in chosen if name not in OUTPUTS]
    if unknown or not chosen:
        raise FastSCNNError(f"--outputs {text!r}: choose from {','.join(OUTPUTS)}")
    return chosen


def _targets(stem: Path, outputs: tuple[str, ...]) -> dict[str, Path]:
    return {name: stem.with_name(stem.name + (".png" if name == LABEL_IDS else f"_{name}.png")) for name in outputs}


def _refuse_existing(paths: list[Path], overwrite: bool) -> None:
    if overwrite:
        return
    existing = [p for p in paths if p.exists()]
    if existing:
        shown = ", ".join(str(p) for p in existing[:3])
        more = f" and {len(existing) - 3} more" if len(existing) > 3 else ""
        raise FastSCNNError(f"{len(existing)} output file(s) exist ({shown}{more}); pass --overwrite to replace them")


def _write_png(path: Path, image: np.ndarray, overwrite: bool) -> None:
    import cv2

    refuse_overwrite(path, overwrite)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise DataError(f"cannot encode {path} as PNG")
    atomic_write_bytes(path, encoded.tobytes())


@dataclass
class Pictures:
    """Draws and writes the chosen outputs of one image or frame: class colours, overlay opacity, --overwrite."""

    palette: np.ndarray
    alpha: float
    overwrite: bool
    train_id_to_id: np.ndarray  # for --label-ids

    def write(self, rgb: np.ndarray, labels: np.ndarray, targets: dict[str, Path]) -> None:
        from fast_scnn_core.infer.visualize import colorize, overlay

        for name, path in targets.items():
            if name == "labels":
                picture = labels
            elif name == LABEL_IDS:
                picture = self.train_id_to_id[labels]
            elif name == "color":
                picture = colorize(labels, self.palette)
            else:
                picture = overlay(rgb, labels, self.palette, self.alpha)
            _write_png(path, picture, self.overwrite)


def _pictures(segmenter: Segmenter, args: argparse.Namespace) -> Pictures:
    from fast_scnn_core.labels import cityscapes_train_id_to_id

    return Pictures(segmenter.classes.palette(), args.alpha, args.overwrite, cityscapes_train_id_to_id())


def _images(root: Path) -> list[Path]:
    if root.is_dir():
        return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return [root]


def _frames(capture: cv2.VideoCapture) -> Iterator[np.ndarray]:
    import cv2

    while True:
        ok, bgr = capture.read()
        if not ok:
            return
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def run(args: argparse.Namespace) -> int:
    source = Path(args.input)
    if not source.exists():
        raise DataError(f"input {source} does not exist")
    if not 0.0 <= args.alpha <= 1.0:
        raise FastSCNNError(f"--alpha must be in [0, 1], got {args.alpha}")
    outputs = _outputs(args.outputs, args.label_ids)
    out = Path(args.out)
    remove_stale_temporaries(out)  # left by a killed run's writes
    config = inference_config_from_args(args)
    if source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES:
        if args.label_ids:
            raise FastSCNNError("--label-ids writes Cityscapes submissions from images; extract the frames first")
        return _predict_video(source, out, outputs, config, args)
    return _predict_images(source, out, outputs, config, args)


def _predict_images(
    source: Path, out: Path, outputs: tuple[str, ...], config: InferenceConfig, args: argparse.Namespace
) -> int:
    from tqdm import tqdm

    from fast_scnn_core.data.images import read_rgb
    from fast_scnn_core.infer.segmenter import Segmenter
    from fast_scnn_core.labels import CITYSCAPES

    images = _images(source)
    if not images:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {source}")
    base = source if source.is_dir() else source.parent
    jobs = [(image, _targets(out / image.relative_to(base).with_suffix(""), outputs)) for image in images]
    _refuse_existing([path for _, targets in jobs for path in targets.values()], args.overwrite)
    segmenter = Segmenter.from_checkpoint(args.checkpoint, config)
    if args.label_ids and segmenter.classes != CITYSCAPES:
        raise FastSCNNError(
            f"--label-ids maps the 19 Cityscapes classes to labelIds, but {args.checkpoint} predicts "
            f"{segmenter.classes.num_classes} classes {list(segmenter.classes.names)[:4]}...; use --outputs labels"
        )
    pictures = _pictures(segmenter, args)
    failed = 0
    for image_path, targets in tqdm(jobs, desc="predict", unit="image", disable=len(jobs) < 2):
        try:
            rgb = read_rgb(image_path, config.max_pixels)
            labels = segmenter(rgb).labels
        except (DataError, InputError) as exc:  # one bad file never stops a folder: skipped, counted, reported
            failed += 1
            tqdm.write(f"fast-scnn predict: skipped: {exc}", file=sys.stderr)
            continue
        pictures.write(rgb, labels, targets)
    print(f"wrote {', '.join(outputs)} PNGs for {len(jobs) - failed} image(s) under {out}")
    if failed:
        print(f"fast-scnn predict: {failed} image(s) skipped (unreadable or refused)", file=sys.stderr)
        return 1
    return 0


def _predict_video(
    source: Path, out: Path, outputs: tuple[str, ...], config: InferenceConfig, args: argparse.Namespace
) -> int:
    import cv2
    from tqdm import tqdm

    from fast_scnn_core.infer.segmenter import Segmenter

    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise DataError(f"cannot open video {source}")
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        folder = out / source.stem
        if total:
            expected = [p for i in range(total) for p in _targets(folder / f"{i:06d}", outputs).values()]
            _refuse_existing(expected, args.overwrite)
        segmenter = Segmenter.from_checkpoint(args.checkpoint, config)
        pictures = _pictures(segmenter, args)
        count = 0
        for count, rgb in enumerate(tqdm(_frames(capture), total=total, desc="predict", unit="frame"), start=1):
            pictures.write(rgb, segmenter(rgb).labels, _targets(folder / f"{count - 1:06d}", outputs))
    finally:
        capture.release()
    if count == 0:
        raise DataError(f"no frames could be decoded from {source}")
    print(f"wrote {', '.join(outputs)} PNGs for {count} frame(s) under {folder}")
    return 0
