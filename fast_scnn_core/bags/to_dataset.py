"""A recorded drive's camera frames as a folder dataset for `fast-scnn train` (`fast-scnn bag-to-dataset`).

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
"""

from __future__ import annotations

import csv
import math
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import Reader

from fast_scnn_core.atomic import check_replaceable, staged_directory
from fast_scnn_core.bags.io import (
    IMAGE_TYPES,
    Progress,
    RecordedFrame,
    SkipLog,
    decode_frame,
    open_bag,
    progress_of,
    read_messages,
    resolve_image_topics,
    sigterm_as_interrupt,
)
from fast_scnn_core.errors import DataError, InputError
from fast_scnn_core.infer.segmenter import InferenceConfig, Segmenter
from fast_scnn_core.labels import class_set_yaml

SPLITS = ("train", "val")


@dataclass
class ExtractOptions:
    """Which frames `bag_to_dataset` keeps and how it splits them (the flags of `fast-scnn bag-to-dataset`)."""

    topics: list[str]  # camera topics (Image or CompressedImage) to extract
    every: int = 1  # keep every N-th frame of each camera
    fps: float | None = None  # or at most F frames per second of recording time per camera
    val_fraction: float = 0.2  # share of the drive's time blocks for val
    block_seconds: float = 10.0  # longest time block of the split
    overwrite: bool = False  # replace OUT_DIR (and a leftover OUT_DIR.partial)


@dataclass
class ExtractReport:
    """What `bag_to_dataset` wrote: the cameras, frames per (camera, split), the messages skipped."""

    cameras: dict[str, str]
    counts: Counter[tuple[str, str]]
    skips: SkipLog
    labelled: bool  # masks were written (a segmenter was given)


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

    def add(self, frame: RecordedFrame, labels: np.ndarray | None) -> None:
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


def bag_to_dataset(
    source: Path,
    out: Path,
    options: ExtractOptions,
    load_segmenter: Callable[[], Segmenter] | None = None,
    progress: Progress | None = None,
) -> ExtractReport:
    """Write the folder dataset OUT_DIR of the camera frames of `options.topics`, with the segmenter's masks if given.

    `load_segmenter` is called once the bag and its topics are found good (fail fast, before a model loads);
    `progress` gets the camera messages read (default: a tqdm bar).
    """
    check_replaceable(out, options.overwrite)  # before the model loads: fail fast
    with open_bag(source) as reader:
        cameras = resolve_image_topics(reader, source, options.topics)
        segmenter = load_segmenter() if load_segmenter else None
        split = TimeSplit(reader.start_time, reader.duration, options.val_fraction, options.block_seconds)
        with staged_directory(out, options.overwrite) as partial, sigterm_as_interrupt():
            dataset = DatasetWriter(partial, split)
            try:
                skips = extract(reader, source, cameras, dataset, segmenter, options, progress)
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
    return ExtractReport(cameras, dataset.counts, skips, labelled=segmenter is not None)


def extract(
    reader: Reader,
    source: Path,
    cameras: dict[str, str],
    dataset: DatasetWriter,
    segmenter: Segmenter | None,
    options: ExtractOptions,
    progress: Progress | None = None,
) -> SkipLog:
    """Stream the cameras' frames into `dataset`, each kept frame decoded (and segmented); the messages skipped."""
    max_pixels = (segmenter.config if segmenter else InferenceConfig()).max_pixels
    keep = FrameFilter(options.every, options.fps)
    skips = SkipLog("bag-to-dataset")
    total = sum(reader.topics[camera].msgcount for camera in cameras)
    connections = [c for c in reader.connections if c.topic in cameras and c.msgtype in IMAGE_TYPES]
    with progress_of(progress, total, "bag-to-dataset") as report:
        for connection, timestamp, raw in read_messages(reader, source, connections):
            report(1)
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
    return skips
