"""rosbag2 recordings (mcap and sqlite3 storage) without ROS: open, find image topics, decode, write.

The plumbing shared by `fast-scnn label-bag` and `fast-scnn bag-to-dataset`, on `rosbags` (a pure
Python rosbag2 reader and writer), so recorded drives are processed on a laptop or a training
cluster with no ROS install. Frames decode through `fast_scnn_core.image_msgs`, the code path the
live node uses; messages are streamed, never loaded whole, so memory stays flat over a long bag.
"""

from __future__ import annotations

import contextlib
import signal
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml
from rosbags.interfaces import Connection, Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from tqdm import tqdm

from fast_scnn_core.errors import DataError, InputError
from fast_scnn_core.image_msgs import (
    check_image,
    compressed_to_rgb8,
    image_fields,
    image_to_rgb8,
)

T = TypeVar("T")

# Kilted's message definitions (the ROS 2 this project targets); sensor_msgs/Image and
# CompressedImage are the same in every ROS 2 distribution, so bags of older ones decode too.
TYPESTORE = get_typestore(Stores.ROS2_KILTED)
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# The metadata version Jazzy and later write (QoS profiles as names, e.g. `reliability: reliable`).
BAG_VERSION = 9


def keep_last_qos(depth: int, reliability: QosReliability) -> Qos:
    """A keep-last, volatile QoS profile as rclpy fills one from depth and reliability (0 durations: unset)."""
    unset = QosTime(0, 0)
    return Qos(
        QosHistory.KEEP_LAST,
        depth,
        reliability,
        QosDurability.VOLATILE,
        unset,
        unset,
        QosLiveliness.AUTOMATIC,
        unset,
        False,
    )


# The live node's output QoS (reliable, keep last 5 = its qos_depth default): a replay of the
# labelled bag offers the outputs as the node would have.
NODE_OUTPUT_QOS = keep_last_qos(5, QosReliability.RELIABLE)


class BagError(DataError):
    """A bag cannot be opened or read; the message names the bag and says what to do."""


def _hint(path: Path) -> str:
    """What to try when `path` does not open or read: how a damaged recording is usually repaired."""
    if path.is_dir() and not (path / "metadata.yaml").exists():
        return (
            " (no metadata.yaml: the recording was not closed; pass its .mcap/.db3 file itself, "
            "or recreate the metadata with `ros2 bag reindex`)"
        )
    if path.suffix == ".mcap" or (path.is_dir() and any(path.glob("*.mcap"))):
        return " (Foxglove's `mcap recover damaged.mcap -o fixed.mcap` salvages a cut-off or damaged .mcap)"
    if path.suffix == ".db3" or (path.is_dir() and any(path.glob("*.db3"))):
        return " (`sqlite3 damaged.db3 .recover | sqlite3 fixed.db3` salvages a damaged sqlite3 bag)"
    return ""


@contextlib.contextmanager
def open_bag(path: str | Path) -> Iterator[Reader]:
    """An open rosbag2 reader (a bag directory, or a bare .mcap/.db3 file); BagError saying why it does not open."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag (expected a rosbag2 directory with metadata.yaml, or a .mcap/.db3 file)")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises ReaderError, but a damaged file can fail in struct/sqlite/zstd too
        raise BagError(f"{path}: cannot open the bag: {exc}{_hint(path)}") from None
    try:
        yield reader
    finally:
        reader.close()


def storage_of(path: str | Path) -> str:
    """'mcap' or 'sqlite3': the storage a bag (directory or bare file) is written in."""
    path = Path(path)
    if path.is_dir():
        info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        return str(info["storage_identifier"])
    return "mcap" if path.suffix == ".mcap" else "sqlite3"


def image_topics(reader: Reader) -> dict[str, tuple[str, int]]:
    """{topic: (message type, message count)} of the bag's Image and CompressedImage topics."""
    return {
        topic: (info.msgtype, info.msgcount)
        for topic, info in sorted(reader.topics.items())
        if info.msgtype in IMAGE_TYPES
    }


def resolve_image_topics(reader: Reader, path: str | Path, requested: list[str]) -> dict[str, str]:
    """{topic: message type} for the requested topics; BagError listing the bag's image topics otherwise."""
    available = image_topics(reader)
    listing = ", ".join(f"{t} ({msgtype.rsplit('/', 1)[-1]}, {n} messages)" for t, (msgtype, n) in available.items())
    listing = f"its image topics are: {listing}" if listing else "it has no Image or CompressedImage topic"
    resolved: dict[str, str] = {}
    for topic in requested:
        name = topic if topic.startswith("/") else f"/{topic}"
        if name in available:
            resolved[name] = available[name][0]
        elif name in reader.topics:
            raise BagError(f"{path}: topic {name} holds {reader.topics[name].msgtype}, not images; {listing}")
        else:
            raise BagError(f"{path}: no topic {name}; {listing}")
    return resolved


def read_messages(
    reader: Reader, path: str | Path, connections: list[Connection] | None = None
) -> Iterator[tuple[Connection, int, bytes]]:
    """(connection, recording time in ns, CDR bytes) in recording order; a damaged bag raises BagError saying where."""
    iterator = reader.messages(connections or ())
    count, last = 0, None
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as exc:  # a truncated or corrupt storage file: struct, sqlite, zstd, CRC errors
            where = f" (last good message recorded at {last} ns)" if last is not None else ""
            raise BagError(f"{path}: unreadable after {count} messages{where}: {exc}{_hint(Path(path))}") from None
        count, last = count + 1, item[1]
        yield item


# Frames done, reported as they are done: a progress bar's update (the default) or a caller's counter.
Progress = Callable[[int], None]


@contextlib.contextmanager
def progress_of(report: Progress | None, total: int, command: str) -> Iterator[Progress]:
    """`report` when given (e.g. `fast-scnn label-bags`' overall bar), else a tqdm bar of `total` frames."""
    if report is not None:
        yield report
        return
    with tqdm(total=total, desc=command, unit="frame", mininterval=0.5) as bar:
        yield bar.update


class BadMessageError(InputError):
    """A recorded message that does not deserialize as its declared type."""


@dataclass
class RecordedFrame:
    """One decoded camera image of a bag."""

    topic: str
    timestamp: int  # recording time, ns
    header: Any  # the image's std_msgs/Header (a rosbags message), copied to every output
    rgb: np.ndarray  # (H, W, 3) uint8, often a view over the message's bytes


def decode_frame(connection: Connection, timestamp: int, raw: bytes, max_pixels: int) -> RecordedFrame:
    """Deserialize an Image or CompressedImage and convert it to RGB (ImageConversionError, BadMessageError)."""
    try:
        msg = TYPESTORE.deserialize_cdr(raw, connection.msgtype)
    except Exception as exc:  # the CDR deserializer's struct/index/unicode errors on damaged bytes
        raise BadMessageError(f"not a valid {connection.msgtype} ({len(raw)} bytes): {exc}") from None
    if connection.msgtype == IMAGE:
        check_image(msg, max_pixels)
        rgb = image_to_rgb8(msg)
    else:
        rgb = compressed_to_rgb8(msg, max_pixels)  # the size is checked from the header, before decoding
    return RecordedFrame(connection.topic, timestamp, msg.header, rgb)


class SkipLog:
    """Bad messages skipped per topic and kind of error; the first of each kind is reported when it happens."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.counts: Counter[tuple[str, str]] = Counter()
        self.first: dict[tuple[str, str], str] = {}

    def add(self, topic: str, timestamp: int, exc: Exception) -> None:
        key = (topic, type(exc).__name__)
        if key not in self.first:
            self.first[key] = f"{exc} (first at {timestamp} ns)"
            tqdm.write(f"fast-scnn {self.command}: skipped a message on {topic}: {exc}")
        self.counts[key] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def on(self, topic: str) -> int:
        return sum(n for (t, _), n in self.counts.items() if t == topic)

    def report(self) -> str:
        """One line per (topic, kind): how many were skipped and the first one's reason."""
        return "\n".join(f"  {topic}: {n} x {self.first[(topic, kind)]}" for (topic, kind), n in self.counts.items())


def segmentation_namespace(topic: str) -> str:
    """Where a camera's outputs go, as the node in the camera's namespace publishes them.

    '/ns/image_raw' -> '/ns/segmentation'; image_transport's '/ns/image_raw/compressed' likewise;
    '/image_raw' -> '/segmentation'.
    """
    base = topic.removesuffix("/compressed")
    return f"{base.rsplit('/', 1)[0]}/segmentation"


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (e.g. from a job scheduler) ends a run like Ctrl-C, so its partial output is closed and named as such."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def create_writer(path: Path, storage: str) -> Writer:
    """An open rosbag2 writer at `path` (which must not exist) in `storage` ('mcap' or 'sqlite3')."""
    writer = Writer(path, version=BAG_VERSION, storage_plugin=STORAGES[storage])
    writer.open()
    return writer


def copy_connection(writer: Writer, connection: Connection) -> Connection:
    """The same topic in `writer`: type, definition, type hash, serialization and recorded QoS unchanged."""
    ext = connection.ext
    options = {"serialization_format": ext.serialization_format, "offered_qos_profiles": ext.offered_qos_profiles}
    if connection.msgdef.data and connection.digest:
        return writer.add_connection(
            connection.topic, connection.msgtype, msgdef=connection.msgdef.data, rihs01=connection.digest, **options
        )
    if connection.msgtype in TYPESTORE.fielddefs:
        return writer.add_connection(connection.topic, connection.msgtype, typestore=TYPESTORE, **options)
    # A custom type from a bag that stores no definitions (Humble's sqlite3): the bytes are copied as
    # they are; rosbags needs some hash, and an all-zero one says "unknown" (players look types up by name).
    return writer.add_connection(
        connection.topic,
        connection.msgtype,
        msgdef=connection.msgdef.data,
        rihs01=connection.digest or "RIHS01_" + "0" * 64,
        **options,
    )


def add_image_topic(writer: Writer, topic: str) -> Connection:
    """A sensor_msgs/Image output topic with the node's output QoS."""
    return writer.add_connection(topic, IMAGE, typestore=TYPESTORE, offered_qos_profiles=[NODE_OUTPUT_QOS])


def serialize_image(pixels: np.ndarray, encoding: str, header: Any) -> memoryview:
    """(H, W[, C]) pixels -> CDR bytes of a sensor_msgs/Image with `header`."""
    fields = image_fields(pixels, encoding)
    msg = TYPESTORE.types[IMAGE](
        header=header,
        height=fields.height,
        width=fields.width,
        encoding=fields.encoding,
        is_bigendian=fields.is_bigendian,
        step=fields.step,
        data=fields.pixels.reshape(-1).view(np.uint8),
    )
    return TYPESTORE.serialize_cdr(msg, IMAGE)


class BackgroundWriter:
    """A rosbags Writer run by one worker thread, so that writing OUT overlaps the next batch's inference.

    File and sqlite writes release the GIL, as onnxruntime and torch do while they compute. Every
    call on the writer runs in the worker (a sqlite3 connection belongs to the thread that made it),
    in order; at most `depth` writes wait (bounded memory); a failed write raises in the caller.
    """

    def __init__(self, path: Path, storage: str, depth: int = 16) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bag-writer")
        self.depth = depth
        self.inflight: deque[Future] = deque()
        self.writer: Writer = self.call(create_writer, path, storage)

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `function` in the writer's thread after the writes before it; its result."""
        return self.executor.submit(function, *args, **kwargs).result()

    def write(self, connection: Connection, timestamp: int, data: bytes | memoryview) -> None:
        self.inflight.append(self.executor.submit(self.writer.write, connection, timestamp, data))
        while len(self.inflight) > self.depth:
            self.inflight.popleft().result()

    def drain(self) -> None:
        """Wait until everything handed over is written."""
        while self.inflight:
            self.inflight.popleft().result()

    def close(self, custom_data: dict[str, str]) -> None:
        """Write the rest, the metadata (with `custom_data`) and the index; a failed close aborts (no index)."""
        try:
            self.drain()
        finally:
            self.call(_close, self.writer, custom_data)
            self.executor.shutdown()


def _close(writer: Writer, custom_data: dict[str, str]) -> None:
    for key, value in custom_data.items():
        writer.set_custom_data(key, value)
    try:
        writer.close()
    except BaseException:
        writer.abort()
        raise
