"""Segment every camera frame of a recorded drive into a new bag (the library of `fast-scnn label-bag`).

OUT holds every message of IN unchanged (topics, types, definitions, recorded QoS, recording
times, bytes) plus, for each chosen camera topic `/ns/image_raw` (or `/ns/image_raw/compressed`),
what the live node would publish for it: `/ns/segmentation/labels` (mono8 class ids) and, when
asked, `masks/<class>`, `color` and `overlay`, each with the camera image's header and the image's
recording time, so `ros2 bag play OUT` replays camera and labels in step. Unlike the live node,
no frame is dropped.

Messages stream through in recording order (memory does not grow with the bag); frames are
segmented in batches while a worker thread writes OUT. OUT is built as `OUT.partial/OUT` and
renamed only when complete: an interrupted (Ctrl-C, SIGTERM) or failed run leaves that readable
bag, marked incomplete in its metadata.yaml, and no OUT.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rosbags.interfaces import Connection
from rosbags.rosbag2 import Reader

from fast_scnn_core.atomic import check_replaceable, partial_path, staged_directory
from fast_scnn_core.bags.io import (
    IMAGE_TYPES,
    BackgroundWriter,
    BagError,
    Progress,
    RecordedFrame,
    SkipLog,
    add_image_topic,
    copy_connection,
    decode_frame,
    open_bag,
    progress_of,
    read_messages,
    resolve_image_topics,
    segmentation_namespace,
    serialize_image,
    sigterm_as_interrupt,
    storage_of,
)
from fast_scnn_core.errors import ConfigError, FastSCNNError, InputError
from fast_scnn_core.infer.segmenter import Segmenter
from fast_scnn_core.infer.visualize import class_mask, colorize, overlay
from fast_scnn_core.labels import mask_class_ids, mask_topic_names

# CPU: batches beyond a few frames measured no faster (docs/benchmarks.md) and only hold more memory.
CPU_BATCH = 4
# CUDA: Fast-SCNN's peak activation memory per inference pixel, fp32, C=19 (the logits upsampled to full
# size dominate), estimated with headroom and not yet measured on a GPU: a batch takes at most half the
# free memory, at most 32 frames.
CUDA_BYTES_PER_PIXEL = 400
MAX_BATCH = 32


@dataclass
class LabelOptions:
    """What `label_bag` writes besides each camera's labels, and how (the flags of `fast-scnn label-bag`)."""

    topics: list[str]  # camera topics (Image or CompressedImage) to label
    masks: list[str] = field(default_factory=list)  # classes (names or topic names) that get masks/<class>
    color: bool = False
    overlay: bool = False
    alpha: float = 0.5  # overlay opacity of the class colours
    batch: int = 0  # frames per inference batch; 0: sized to the device (default_batch)
    storage: str | None = None  # OUT's storage, 'mcap' or 'sqlite3'; None: IN's
    replace_existing: bool = False  # leave IN's own messages on the output topics out of OUT
    overwrite: bool = False  # replace OUT (and a leftover OUT.partial)


@dataclass
class CameraOutputs:
    """The output topics of one camera topic in OUT."""

    labels: Connection
    masks: list[tuple[int, Connection]]  # (class id, topic)
    color: Connection | None
    overlay: Connection | None

    def topics(self) -> list[str]:
        conns = [self.labels, *(c for _, c in self.masks), self.color, self.overlay]
        return [c.topic for c in conns if c is not None]


def output_topics(camera: str, mask_tokens: list[str], color: bool, overlay: bool) -> list[str]:
    """The topic names written for `camera`: labels, masks/<token>..., then color and overlay when asked."""
    namespace = segmentation_namespace(camera)
    names = [f"{namespace}/labels", *(f"{namespace}/masks/{token}" for token in mask_tokens)]
    return names + [f"{namespace}/{name}" for name, wanted in (("color", color), ("overlay", overlay)) if wanted]


def default_batch(segmenter: Segmenter, frame: RecordedFrame) -> int:
    """RecordedFrames per batch for this device and frame size (see CPU_BATCH, CUDA_BYTES_PER_PIXEL)."""
    if segmenter.device.type != "cuda":
        return CPU_BATCH
    height = segmenter.config.height or frame.rgb.shape[0]
    width = segmenter.config.width or frame.rgb.shape[1]
    pixels = max(height * width, frame.rgb.shape[0] * frame.rgb.shape[1])
    free, _ = torch.cuda.mem_get_info(segmenter.device)
    return int(max(1, min(MAX_BATCH, free // (2 * CUDA_BYTES_PER_PIXEL * pixels))))


class BagLabeller:
    """Copies a bag's messages into `writer` in recording order, adding each camera frame's segmentation.

    Messages wait in a queue only until the frames before them are segmented (at most one batch),
    so the output is in recording order and memory stays bounded.
    """

    def __init__(
        self,
        writer: BackgroundWriter,
        segmenter: Segmenter,
        cameras: dict[str, CameraOutputs],
        batch: int,
        alpha: float,
    ) -> None:
        self.writer, self.segmenter, self.cameras = writer, segmenter, cameras
        self.batch, self.alpha = batch, alpha
        self.palette = segmenter.classes.palette()
        self.connections: dict[int, Connection | None] = {}  # IN connection id -> OUT (None: left out)
        self.queue: list[tuple[Connection, int, bytes | memoryview]] = []
        self.pending: list[tuple[RecordedFrame, int]] = []  # frames to segment, with their place in the queue
        self.labelled: Counter[str] = Counter()  # frames written per camera topic

    def add(self, connection: Connection, timestamp: int, raw: bytes, frame: RecordedFrame | None) -> int:
        """Queue one message of IN (and its frame to segment, if it is a decoded camera image); frames written."""
        out = self.connections[connection.id]
        if out is not None:
            self.queue.append((out, timestamp, raw))
        if frame is not None:
            if not self.batch:
                self.batch = default_batch(self.segmenter, frame)
            self.pending.append((frame, len(self.queue)))
            if len(self.pending) >= self.batch:
                return self.flush()
        return 0

    def flush(self) -> int:
        """Segment the pending frames, write the queue with their outputs in place; the number of frames written."""
        outputs: list[list[tuple[Connection, int, memoryview]]] = [[] for _ in self.pending]
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, (frame, _) in enumerate(self.pending):
            by_size.setdefault(frame.rgb.shape, []).append(i)
        for indices in by_size.values():
            labels = self.segmenter(np.stack([self.pending[i][0].rgb for i in indices])).labels
            for i, frame_labels in zip(indices, labels, strict=True):
                outputs[i] = self.frame_outputs(self.pending[i][0], frame_labels)
        written = 0
        for (frame, place), frame_outputs in zip(self.pending, outputs, strict=True):
            for message in self.queue[written:place]:
                self.writer.write(*message)
            for message in frame_outputs:
                self.writer.write(*message)
            written = place
            self.labelled[frame.topic] += 1
        for message in self.queue[written:]:
            self.writer.write(*message)
        count = len(self.pending)
        self.queue.clear()
        self.pending.clear()
        return count

    def frame_outputs(self, frame: RecordedFrame, labels: np.ndarray) -> list[tuple[Connection, int, memoryview]]:
        """The serialized output messages of one frame, each with the frame's header and recording time."""
        camera = self.cameras[frame.topic]
        images = [(camera.labels, labels, "mono8")]
        images += [(conn, class_mask(labels, class_id), "mono8") for class_id, conn in camera.masks]
        if camera.color is not None:
            images.append((camera.color, colorize(labels, self.palette), "rgb8"))
        if camera.overlay is not None:
            images.append((camera.overlay, overlay(frame.rgb, labels, self.palette, self.alpha), "rgb8"))
        return [(conn, frame.timestamp, serialize_image(pixels, enc, frame.header)) for conn, pixels, enc in images]


def check_paths(source: Path, out: Path) -> None:
    """OUT must not be IN, inside IN or hold IN: --overwrite would otherwise destroy the recording."""
    src, dst = source.resolve(), out.resolve()
    for a, b in ((src, dst), (src, partial_path(dst).parent)):
        if a == b or a in b.parents or b in a.parents:
            raise FastSCNNError(f"OUT {out} and IN {source} overlap; write the labelled bag somewhere else")


def plan_outputs(
    reader: Reader, source: Path, cameras: list[str], tokens: list[str], options: LabelOptions
) -> dict[str, list[str]]:
    """{camera: its output topics}; refuses cameras sharing a namespace, and topics IN has unless --replace-existing."""
    planned = {camera: output_topics(camera, tokens, options.color, options.overlay) for camera in cameras}
    owner: dict[str, str] = {}
    for camera, topics in planned.items():
        if topics[0] in owner:
            raise FastSCNNError(
                f"cameras {owner[topics[0]]} and {camera} share the namespace {segmentation_namespace(camera)} "
                "(outputs go to the camera's namespace, as the node's do); label them in separate runs"
            )
        owner[topics[0]] = camera
    clashes = sorted({topic for topics in planned.values() for topic in topics} & set(reader.topics))
    if clashes and not options.replace_existing:
        raise BagError(
            f"{source} already has {', '.join(clashes)} (recorded from the live node?); pass --replace-existing "
            "to leave those recorded messages out of OUT"
        )
    return planned


def label(reader: Reader, source: Path, labeller: BagLabeller, skips: SkipLog, progress: Progress) -> None:
    """Stream every message of IN through the labeller, decoding the camera topics' frames."""
    max_pixels = labeller.segmenter.config.max_pixels
    for connection, timestamp, raw in read_messages(reader, source):
        frame = None
        if connection.topic in labeller.cameras and connection.msgtype in IMAGE_TYPES:
            try:
                frame = decode_frame(connection, timestamp, raw, max_pixels)
            except InputError as exc:  # a bad frame is counted and skipped, never the end of a long run
                skips.add(connection.topic, timestamp, exc)
                progress(1)
        done = labeller.add(connection, timestamp, raw, frame)
        if done:
            progress(done)
    progress(labeller.flush())


@dataclass
class LabelReport:
    """What `label_bag` wrote: the output topics and frames labelled per camera, the messages skipped."""

    cameras: dict[str, CameraOutputs]
    labelled: Counter[str]
    skips: SkipLog
    seconds: float


def label_bag(
    source: Path,
    out: Path,
    load_segmenter: Callable[[], Segmenter],
    options: LabelOptions,
    checkpoint: str = "",
    progress: Progress | None = None,
) -> LabelReport:
    """Write OUT: IN's messages plus the segmentation of each camera frame of `options.topics`.

    `load_segmenter` is called once the bag and its topics are found good (fail fast, before a model
    loads); `checkpoint` is recorded in OUT's metadata; `progress` gets the frames done (default: a tqdm bar).
    """
    check_paths(source, out)
    check_replaceable(out, options.overwrite)  # before the model loads: fail fast
    with open_bag(source) as reader:
        cameras = list(resolve_image_topics(reader, source, options.topics))
        segmenter = load_segmenter()
        try:
            mask_ids = mask_class_ids(segmenter.classes, [n.strip() for n in options.masks if n.strip()])
        except ValueError as exc:
            raise ConfigError(f"--masks: {exc}") from None
        tokens = mask_topic_names(segmenter.classes)
        planned = plan_outputs(reader, source, cameras, [tokens[i] for i in mask_ids], options)
        total = sum(reader.topics[camera].msgcount for camera in cameras)
        skips = SkipLog("label-bag")
        with staged_directory(out, options.overwrite) as partial, sigterm_as_interrupt():
            output = BackgroundWriter(partial, options.storage or storage_of(source))
            labeller = BagLabeller(output, segmenter, {}, options.batch, options.alpha)
            started = time.monotonic()
            try:
                add_topics(labeller, reader, planned, mask_ids, options)
                with progress_of(progress, total, "label-bag") as report:
                    label(reader, source, labeller, skips, report)
                output.drain()
            except BaseException as exc:
                abandon(labeller, exc, out, partial, total)
                raise
            seconds = time.monotonic() - started
            output.close({"fast_scnn.labelled_from": str(source), "fast_scnn.checkpoint": checkpoint})
    return LabelReport(labeller.cameras, labeller.labelled, skips, seconds)


def add_topics(
    labeller: BagLabeller,
    reader: Reader,
    planned: dict[str, list[str]],
    mask_ids: tuple[int, ...],
    options: LabelOptions,
) -> None:
    """OUT's topics: IN's own (but for those replaced by the outputs), then each camera's output topics."""
    output = labeller.writer
    ours = {topic for topics in planned.values() for topic in topics}
    for connection in reader.connections:
        keep = connection.topic not in ours
        labeller.connections[connection.id] = output.call(copy_connection, output.writer, connection) if keep else None
    for camera, topics in planned.items():
        conns = [output.call(add_image_topic, output.writer, topic) for topic in topics]
        masks = list(zip(mask_ids, conns[1 : 1 + len(mask_ids)], strict=True))
        color = conns[1 + len(mask_ids)] if options.color else None
        labeller.cameras[camera] = CameraOutputs(conns[0], masks, color, conns[-1] if options.overlay else None)


def abandon(labeller: BagLabeller, exc: BaseException, out: Path, partial: Path, total: int) -> None:
    """After an interruption or error: close what was written as a readable bag marked incomplete, and say so."""
    interrupted = isinstance(exc, KeyboardInterrupt)
    if isinstance(exc, BagError):  # IN is damaged here: label what was read before the damage
        with contextlib.suppress(Exception):
            labeller.flush()
    done = sum(labeller.labelled.values())
    why = "interrupted" if interrupted else f"failed: {exc}"
    with contextlib.suppress(Exception):  # still readable up to here, marked incomplete
        labeller.writer.close({"fast_scnn.incomplete": f"{why}; {done} of {total} frames labelled"})
    print(
        f"fast-scnn label-bag: {out} was not written; {partial} holds the {done} of {total} frames "
        f"labelled before the {'interruption' if interrupted else 'error'} (a readable bag, marked "
        "incomplete in its metadata.yaml)",
        file=sys.stderr,
    )
