"""Synthetic rosbag2 recordings for the bag tests, written with rosbags as a robot's `ros2 bag record` would.

A drive has three cameras in their own namespaces, each encoding the node accepts, image_transport's
compressed topic, and a non-image topic, with header stamps that differ from the recording times
(capture latency), so a test can tell which one an output copied.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.interfaces import QosReliability

from fast_scnn_core.bags.io import COMPRESSED_IMAGE, IMAGE, TYPESTORE, create_writer, keep_last_qos
from fast_scnn_core.image_msgs import compress_rgb8, image_fields

HEADER = TYPESTORE.types["std_msgs/msg/Header"]
TIME = TYPESTORE.types["builtin_interfaces/msg/Time"]
TEMPERATURE = "sensor_msgs/msg/Temperature"

# REP 2003 sensor data QoS, what camera drivers offer (best effort, keep last 5).
SENSOR_QOS = keep_last_qos(5, QosReliability.BEST_EFFORT)

START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000  # 10 Hz cameras
LATENCY_NS = 20_000_000  # header stamp = capture time, 20 ms before the recording time
# The rear camera cycles through the node's other encodings (16-bit ones big-endian).
REAR_ENCODINGS = ("bgr8", "mono8", "rgba8", "yuv422", "yuv422_yuy2", "bayer_rggb8", "rgb16", "mono16", "bgra16")


@dataclass(frozen=True)
class Recorded:
    """One message as written: topic, recording time (ns), CDR bytes."""

    topic: str
    timestamp: int
    data: bytes


def header(timestamp: int, frame_id: str) -> object:
    stamp = timestamp - LATENCY_NS
    return HEADER(stamp=TIME(sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id=frame_id)


def image_bytes(pixels: np.ndarray, encoding: str, msg_header: object, padding: int = 0) -> bytes:
    """A sensor_msgs/Image, rows padded by `padding` bytes (a driver's `step` > width * bytes per pixel)."""
    fields = image_fields(pixels, encoding)
    rows = fields.pixels.reshape(fields.height, -1).view(np.uint8)
    data = np.zeros((fields.height, fields.step + padding), np.uint8)
    data[:, : fields.step] = rows
    msg = TYPESTORE.types[IMAGE](
        header=msg_header,
        height=fields.height,
        width=fields.width,
        encoding=encoding,
        is_bigendian=fields.is_bigendian,
        step=fields.step + padding,
        data=data.reshape(-1),
    )
    return bytes(TYPESTORE.serialize_cdr(msg, IMAGE))


def compressed_bytes(data: np.ndarray, fmt: str, msg_header: object) -> bytes:
    msg = TYPESTORE.types[COMPRESSED_IMAGE](header=msg_header, format=fmt, data=np.asarray(data, np.uint8))
    return bytes(TYPESTORE.serialize_cdr(msg, COMPRESSED_IMAGE))


def rear_pixels(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """The rear camera's raw pixels in `encoding` (content from `rgb`; 16-bit ones big-endian)."""
    if encoding in ("bgr8", "rgba8"):
        return np.ascontiguousarray(rgb[:, :, ::-1]) if encoding == "bgr8" else np.dstack([rgb, rgb[:, :, :1]])
    if encoding in ("mono8", "bayer_rggb8"):
        return np.ascontiguousarray(rgb[:, :, 1])
    if encoding.startswith("yuv422"):
        return np.ascontiguousarray(rgb[:, :, :2])
    wide = ((rgb.astype(np.uint16) << 8) | 0x5A).astype(">u2")
    if encoding == "rgb16":
        return wide
    if encoding == "mono16":
        return np.ascontiguousarray(wide[:, :, 0])
    return np.dstack([wide[:, :, ::-1], wide[:, :, :1]]).astype(">u2")  # bgra16


def scene(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random picture (compresses like a camera frame, unlike noise)."""
    small = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(small, 8, 0), 8, 1)[:height, :width])


def write_drive(path: Path, storage: str, frames: int = 6, size: tuple[int, int] = (48, 64)) -> list[Recorded]:
    """A bag of `frames` frames per camera and the messages written, in recording order.

    /front/image_raw rgb8 with row padding; /rear/image_raw through REAR_ENCODINGS;
    /side/image_raw/compressed jpeg and png in turn; /engine/temperature (not an image) at twice the rate.
    """
    rng = np.random.default_rng(0)
    writer = create_writer(path, storage)
    conns = {
        "/front/image_raw": writer.add_connection(
            "/front/image_raw", IMAGE, typestore=TYPESTORE, offered_qos_profiles=[SENSOR_QOS]
        ),
        "/rear/image_raw": writer.add_connection(
            "/rear/image_raw", IMAGE, typestore=TYPESTORE, offered_qos_profiles=[SENSOR_QOS]
        ),
        "/side/image_raw/compressed": writer.add_connection(
            "/side/image_raw/compressed", COMPRESSED_IMAGE, typestore=TYPESTORE, offered_qos_profiles=[SENSOR_QOS]
        ),
        "/engine/temperature": writer.add_connection("/engine/temperature", TEMPERATURE, typestore=TYPESTORE),
    }
    written: list[Recorded] = []

    def write(topic: str, timestamp: int, data: bytes) -> None:
        writer.write(conns[topic], timestamp, data)
        written.append(Recorded(topic, timestamp, data))

    for i in range(frames):
        t = START_NS + i * PERIOD_NS
        rgb = scene(rng, *size)
        write("/front/image_raw", t, image_bytes(rgb, "rgb8", header(t, "front"), padding=4))
        encoding = REAR_ENCODINGS[i % len(REAR_ENCODINGS)]
        write("/rear/image_raw", t + 1000, image_bytes(rear_pixels(rgb, encoding), encoding, header(t + 1000, "rear")))
        fmt, data = compress_rgb8(rgb, "jpeg" if i % 2 == 0 else "png")
        write("/side/image_raw/compressed", t + 2000, compressed_bytes(data, fmt, header(t + 2000, "side")))
        for k in range(2):
            at = t + 3000 + k * PERIOD_NS // 2
            reading = TYPESTORE.types[TEMPERATURE](header=header(at, "engine"), temperature=80.0 + i, variance=0.1)
            write("/engine/temperature", at, bytes(TYPESTORE.serialize_cdr(reading, TEMPERATURE)))
    writer.close()
    return written


def write_camera_bag(
    path: Path,
    storage: str,
    frames: int,
    size: tuple[int, int] = (48, 64),
    topics: tuple[str, ...] = ("/camera/image_raw",),
) -> list[Recorded]:
    """A bag of rgb8 cameras at 10 Hz (by default one: the README's `/camera/image_raw`)."""
    rng = np.random.default_rng(1)
    writer = create_writer(path, storage)
    conns = [writer.add_connection(t, IMAGE, typestore=TYPESTORE, offered_qos_profiles=[SENSOR_QOS]) for t in topics]
    written = []
    for i in range(frames):
        t = START_NS + i * PERIOD_NS
        for conn in conns:
            data = image_bytes(scene(rng, *size), "rgb8", header(t, "camera"))
            writer.write(conn, t, data)
            written.append(Recorded(conn.topic, t, data))
    writer.close()
    return written
