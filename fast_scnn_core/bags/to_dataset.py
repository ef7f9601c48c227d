"""`fast-scnn bag-to-dataset`: a recorded drive's camera frames as a folder dataset for `fast-scnn train`.

Writes the layout `fast-scnn train data.format=folder` reads:
  images/<split>/<camera>_<recording time ns>.png   the frames, lossless
  masks/<split>/<same name>.png                      with --checkpoint: its labels (pseudo-labels to
                                                     correct by hand), class ids, 255 = ignore
  classes.yaml                                       with --checkpoint: its class set (data.classes)
  frames.csv                                         per frame: file, split, topic, recording time,
                                                     header stamp and frame_id (back to the bag)

The train/val split is by recording time, so near-identical neighbouring frames do not land on
both sides: the drive is cut into blocks of at most --block-seconds and a --val-fraction of the
blocks, spread evenly over the drive, goes to val. The same bag and options give the same split.

Without --checkpoint no masks are written: an all-ignore mask would be indistinguishable from an
annotated frame in which nothing was labelled, and a dataset of them trains to nothing. Training
an un-annotated folder therefore stops at once with "its mask ... does not exist", and the
annotation tool's masks go to masks/<split>/ under the image's name.

OUT_DIR is built as OUT_DIR.partial and renamed when complete (Ctrl-C leaves OUT_DIR.partial).
Exit status: 0 every frame written; 1 complete but some bad messages were skipped; 2 error.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from fast_scnn_core.atomic import check_replaceable, staged_directory
from fast_scnn_core.bags.io import (
    IMAGE_TYPES,
    Frame,
    SkipLog,
    add_bag_arguments,
    decode_frame,
    open_bag,
    read_messages,
    resolve_image_topics,
    sigterm_as_interrupt,
)
from fast_scnn_core.cli.predict import add_engine_arguments, engine_config
from fast_scnn_core.errors import DataError, FastSCNNError, InputError
from fast_scnn_core.infer.segmenter import InferenceConfig, Segmenter
from fast_scnn_core.labels import class_set_yaml

SPLITS = ("train", "val")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_bag_arguments(parser, "extract")
    parser.add_argument("output", metavar="OUT_DIR", help="dataset folder to write (images/, masks/, classes.yaml)")
    rate = parser.add_mutually_exclusive_group()
    rate.add_argument("--every", type=int, default=1, help="keep every N-th frame of each camera (default: all)")
    rate.add_argument("--fps", type=float, help="keep at most F frames per second of recording time per camera")
    parser.add_argument("--checkpoint", help="write its labels as masks (pseudo-labels) and its classes.yaml")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="share of the drive's time blocks for val")
    parser.add_argument("--block-seconds", type=float, default=10.0, help="longest time block of the split")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT_DIR (and a leftover OUT_DIR.partial)")
    add_engine_arguments(parser)


class TimeSplit:
    """Recording time -> 'train' or 'val': blocks of at most `block` seconds, a `fraction` of them val, evenly spread.

    Block b is val when floor((b + 1) * fraction) > floor(b * fraction), i.e. every 5th block for 0.2.
    A drive shorter than the blocks val needs is cut into exactly that many, so val is never empty by
    construction (its last 1/5 for 0.2).
    """

    def __init__(self, start_ns: int, duration_ns: int, fraction: float, block: float) -> None:
        self.start, self.fraction = start_ns, fraction
        blocks = max(math.ceil(duration_ns / (block * 1e9)), math.ceil(1 / fraction))
        self.blocks = blocks
        self.block_ns = max(duration_ns, 1) / blocks

    def __call__(self, timestamp: int) -> str:
        b = min(int((timestamp - self.start) / self.block_ns), self.blocks - 1)
        return "val" if math.floor((b + 1) * self.fraction) > math.floor(b * self.fraction) else "train"


class FrameFilter:
    """Keeps every N-th frame, or at most F per second of recording time, per camera."""

    def __init__(self, every: int, fps: float | None) -> None:
        self.every, self.period = every, None if fps is None else int(1e9 / fps)
        self.seen: Counter[str] = Counter()
        self.last: dict[str, int] = {}

    def keep(self, topic: str, timestamp: int) -> bool:
        if self.period is not None:
            if topic in self.last and timestamp - self.last[topic] < self.period:
                return False
            self.last[topic] = timestamp
            return True
        self.seen[topic] += 1
        return (self.seen[topic] - 1) % self.every == 0


def frame_name(topic: str, timestamp: int) -> str:
    """'/cam/image_raw', t -> 'cam_image_raw_<t as 19 digits>' (sorts by time; unique per camera)."""
    return f"{re.sub(r'[^0-9A-Za-z]+', '_', topic).strip('_')}_{timestamp:019d}"


def write_png(path: Path, image: np.ndarray) -> None:
    """An RGB or single-channel uint8 image as PNG (the folder's parents created)."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise DataError(f"cannot encode {path} as PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encoded.tobytes())


class DatasetWriter:
    """Writes frames (and their masks) into the folder layout under `root`, each indexed in frames.csv."""

    COLUMNS = ("file", "split", "topic", "recording_ns", "stamp_sec", "stamp_nanosec", "frame_id")

    def __init__(self, root: Path, split: TimeSplit) -> None:
        self.root, self.split = root, split
        root.mkdir(parents=True)
        self.index = open(root / "frames.csv", "w", newline="")  # noqa: SIM115 (closed by close())
        self.rows = csv.writer(self.index)
        self.rows.writerow(self.COLUMNS)
        self.counts: Counter[tuple[str, str]] = Counter()  # frames per (camera, split)

    def add(self, frame: Frame, labels: np.ndarray | None) -> None:
        name, part = frame_name(frame.topic, frame.timestamp), self.split(frame.timestamp)
        write_png(self.root / "images" / part / f"{name}.png", frame.rgb)
        if labels is not None:
            write_png(self.root / "masks" / part / f"{name}.png", labels)
        stamp = frame.header.stamp
        file = f"{part}/{name}.png"
        self.rows.writerow((file, part, frame.topic, frame.timestamp, stamp.sec, stamp.nanosec, frame.header.frame_id))
        self.counts[(frame.topic, part)] += 1

    def close(self) -> None:
        self.index.close()


def run(args: argparse.Namespace) -> int:
    source, out = Path(args.input), Path(args.output)
    check_replaceable(out, args.overwrite)  # before the model loads: fail fast
    if args.every < 1:
        raise FastSCNNError(f"--every must be >= 1, got {args.every}")
    if args.fps is not None and args.fps <= 0:
        raise FastSCNNError(f"--fps must be > 0, got {args.fps}")
    if not 0.0 < args.val_fraction < 1.0:
        raise FastSCNNError(f"--val-fraction must be in (0, 1), got {args.val_fraction}")
    if args.block_seconds <= 0:
        raise FastSCNNError(f"--block-seconds must be > 0, got {args.block_seconds}")
    with open_bag(source) as reader:
        cameras = resolve_image_topics(reader, source, args.topics)
        segmenter = Segmenter.from_checkpoint(args.checkpoint, engine_config(args)) if args.checkpoint else None
        max_pixels = (segmenter.config if segmenter else InferenceConfig()).max_pixels
        keep = FrameFilter(args.every, args.fps)
        skips = SkipLog("bag-to-dataset")
        total = sum(reader.topics[camera].msgcount for camera in cameras)
        connections = [c for c in reader.connections if c.topic in cameras and c.msgtype in IMAGE_TYPES]
        with staged_directory(out, args.overwrite) as partial, sigterm_as_interrupt():
            dataset = DatasetWriter(
                partial, TimeSplit(reader.start_time, reader.duration, args.val_fraction, args.block_seconds)
            )
            try:
                with tqdm(total=total, desc="bag-to-dataset", unit="frame", mininterval=0.5) as progress:
                    for connection, timestamp, raw in read_messages(reader, source, connections):
                        progress.update(1)
                        if not keep.keep(connection.topic, timestamp):
                            continue
                        try:
                            frame = decode_frame(connection, timestamp, raw, max_pixels)
                            # a copy: the frame is often a read-only view over the message bytes (torch warns)
                            labels = segmenter(np.array(frame.rgb)).labels if segmenter else None
                        except InputError as exc:  # a bad frame is counted and skipped, never the end of the run
                            skips.add(connection.topic, timestamp, exc)
                            continue
                        dataset.add(frame, labels)
                if segmenter:
                    (partial / "classes.yaml").write_text(class_set_yaml(segmenter.classes), encoding="utf-8")
            except BaseException as exc:
                why = "interruption" if isinstance(exc, KeyboardInterrupt) else "error"
                print(
                    f"fast-scnn bag-to-dataset: {out} was not written; {partial} holds the "
                    f"{sum(dataset.counts.values())} frames extracted before the {why}",
                    file=sys.stderr,
                )
                raise
            finally:
                dataset.close()
    report(out, cameras, dataset.counts, skips, labelled=segmenter is not None)
    return 1 if skips.total else 0


def report(out: Path, cameras: dict[str, str], counts: Counter, skips: SkipLog, labelled: bool) -> None:
    """What was written, per camera and split, and the next step (train, or annotate first)."""
    per_split = {part: sum(n for (_, p), n in counts.items() if p == part) for part in SPLITS}
    train, val = per_split["train"], per_split["val"]
    print(f"bag-to-dataset: {train + val} frames -> {out} ({train} train, {val} val)")
    for camera in cameras:
        skipped = f", {skips.on(camera)} skipped" if skips.on(camera) else ""
        print(f"  {camera}: {counts[(camera, 'train')]} train, {counts[(camera, 'val')]} val{skipped}")
    if skips.total:
        print(f"skipped {skips.total} bad message(s):\n{skips.report()}")
    empty = [part for part in SPLITS if not per_split[part]]
    if empty:
        print(f"warning: split {', '.join(empty)} is empty; keep more frames or change --val-fraction/--block-seconds")
    if labelled:
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
