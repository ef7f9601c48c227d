"""fast_scnn_core.image_msgs under hostile input: issue 13's fault campaign kept as tests.

Property tests (Hypothesis) feed random encodings, sizes, steps, byte lengths, byte orders and
compressed payloads: the result is the right pixels or an ImageConversionError, never another
exception, and nothing proportional to a claimed size is allocated before the claim is checked
(numpy's allocations are visible to tracemalloc; OpenCV's and simplejpeg's outputs are numpy arrays).
Messages are rosbags' sensor_msgs classes (what `fast-scnn label-bag` reads, no ROS install), their
data held as rosbags (ndarray), rclpy (array.array) or a plain client (bytes) holds it.
"""

from __future__ import annotations

import array
import struct
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rosbags.typesys import Stores, get_typestore

from fast_scnn_core.image_msgs import (
    CorruptCompressedImageError,
    ImageConversionError,
    MalformedImageError,
    UnsupportedEncodingError,
    check_image,
    compressed_to_rgb8,
    image_to_numpy,
    image_to_rgb8,
    pixel_layout,
)
from fast_scnn_core.limits import DEFAULT_MAX_PIXELS, MAX_SIDE

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# Real sensor_msgs classes as `fast-scnn label-bag` reads them from a bag (rosbags, no ROS install).
TYPES = get_typestore(Stores.LATEST).types
HEADER = TYPES["std_msgs/msg/Header"](stamp=TYPES["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="cam")


def image_msg(encoding: str, height: int, width: int, step: int, is_bigendian: int, data: Any) -> Any:
    """A sensor_msgs/Image; `data` as given (rosbags: ndarray, rclpy: array.array, or bytes)."""
    fields = dict(encoding=encoding, height=height, width=width, step=step, is_bigendian=is_bigendian, data=data)
    return TYPES["sensor_msgs/msg/Image"](header=HEADER, **fields)


def compressed_msg(format: str, data: Any) -> Any:
    """A sensor_msgs/CompressedImage."""
    return TYPES["sensor_msgs/msg/CompressedImage"](header=HEADER, format=format, data=data)


def containers(data: bytes) -> st.SearchStrategy:
    """The message bytes as rosbags (ndarray), rclpy (array.array) or a plain client (bytes) holds them."""
    return st.sampled_from([np.frombuffer(data, np.uint8), array.array("B", data), data])


def peak_allocation(call: Callable[[], object]) -> tuple[object, int]:
    """(result or the ImageConversionError raised, peak bytes numpy/Python allocated during the call)."""
    tracemalloc.start()
    try:
        try:
            result: object = call()
        except ImageConversionError as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ---- raw Images ---------------------------------------------------------------------------------

BYTE_ENCODINGS = {"rgb8": slice(None), "bgr8": slice(None, None, -1), "rgba8": slice(0, 3), "bgra8": slice(2, None, -1)}
ENCODINGS = [
    *BYTE_ENCODINGS, "mono8", "mono16", "rgb16", "bgr16", "rgba16", "bgra16", "yuv422", "yuv422_yuy2",
    *(f"bayer_{p}{bits}" for p in ("rggb", "bggr", "gbrg", "grbg") for bits in (8, 16)),
    "8UC1", "8SC3", "16UC2", "16SC1", "32SC4", "32FC1", "64FC3",
]  # fmt: skip


@st.composite
def valid_images(draw: st.DrawFn) -> tuple[Any, np.ndarray]:
    """A well-formed Image of any encoding, byte order and row padding, and the pixel values it holds."""
    encoding = draw(st.sampled_from(ENCODINGS))
    dtype, channels = pixel_layout(encoding)
    even = encoding.startswith(("bayer_", "yuv422"))
    height = draw(st.integers(1, 12)) * (2 if encoding.startswith("bayer_") else 1)
    width = draw(st.integers(1, 12)) * (2 if even else 1)
    shape = (height, width) if channels == 1 else (height, width, channels)
    raw = draw(st.binary(min_size=dtype.itemsize * int(np.prod(shape)), max_size=dtype.itemsize * int(np.prod(shape))))
    big = draw(st.booleans())
    stored = np.frombuffer(raw, dtype.newbyteorder(">" if big else "<")).reshape(shape)
    pad = draw(st.integers(0, 9))
    row = width * channels * dtype.itemsize
    rows = stored.reshape(height, row // dtype.itemsize).view(np.uint8).reshape(height, row)
    data = np.concatenate([rows, np.full((height, pad), 0xAB, np.uint8)], axis=1).tobytes()
    msg = image_msg(encoding, height, width, row + pad, int(big), draw(containers(data)))
    return msg, stored.astype(dtype)  # values in native byte order


@PROPERTY
@given(valid_images())
def test_every_well_formed_image_reads_its_pixels_in_any_byte_order_and_padding(case: tuple[Any, np.ndarray]) -> None:
    msg, pixels = case
    np.testing.assert_array_equal(image_to_numpy(msg), pixels)
    if pixels.dtype.kind == "f" or msg.encoding[0].isdigit():
        return  # generic encodings (8UC3, 32FC1, ...) have no colour meaning
    rgb = image_to_rgb8(msg)
    assert rgb.dtype == np.uint8 and rgb.shape == (msg.height, msg.width, 3)
    eight = (pixels >> 8).astype(np.uint8) if pixels.dtype.itemsize == 2 else pixels
    family = msg.encoding.replace("16", "8")
    if family in BYTE_ENCODINGS:
        np.testing.assert_array_equal(rgb, eight[:, :, BYTE_ENCODINGS[family]])
    elif family == "mono8":
        np.testing.assert_array_equal(rgb, np.repeat(eight[:, :, None], 3, axis=2))


sizes = st.one_of(st.integers(0, 64), st.integers(0, 2**32), st.sampled_from([MAX_SIDE, MAX_SIDE + 1, 2**31 - 1]))


@PROPERTY
@given(
    encoding=st.one_of(st.sampled_from(ENCODINGS), st.text(max_size=12)),
    height=sizes,
    width=sizes,
    step=st.one_of(st.integers(0, 256), st.integers(0, 2**40)),
    is_bigendian=st.integers(0, 255),
    data=st.binary(max_size=2048).flatmap(containers),
    max_pixels=st.sampled_from([None, 1024, DEFAULT_MAX_PIXELS]),
)
def test_any_image_fields_give_pixels_or_a_conversion_error_within_bounded_memory(
    encoding: str, height: int, width: int, step: int, is_bigendian: int, data: Any, max_pixels: int | None
) -> None:
    msg = image_msg(encoding, height, width, step, is_bigendian, data)
    checked, peak = peak_allocation(lambda: check_image(msg, max_pixels))
    assert checked is None or isinstance(checked, ImageConversionError)
    assert peak < 64 << 10
    result, peak = peak_allocation(lambda: image_to_rgb8(msg))
    if isinstance(result, ImageConversionError):
        assert peak < 64 << 10, f"{peak} bytes allocated before refusing {msg}"
        return
    assert result.shape == (height, width, 3) and result.dtype == np.uint8
    assert peak <= 4 * len(data) + (64 << 10)


# ---- CompressedImages ---------------------------------------------------------------------------


def encode(rgb: np.ndarray, codec: str) -> bytes:
    return cv2.imencode(f".{codec}", np.ascontiguousarray(rgb[:, :, ::-1]))[1].tobytes()


def png_header(width: int, height: int, bit_depth: int = 8, colour_type: int = 2) -> bytes:
    """PNG signature + IHDR chunk, as the PNG specification lays them out."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


def with_jpeg_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header (SOF0) claiming another size."""
    at = jpeg.index(b"\xff\xc0")
    return jpeg[: at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9 :]


FORMATS = ["", "jpeg", "png", "rgb8; jpeg compressed bgr8", "bgr8; png compressed bgr8", "mono8; jpeg compressed mono8"]


@PROPERTY
@given(
    rgb=st.integers(1, 40).flatmap(
        lambda h: st.integers(1, 40).flatmap(
            lambda w: st.binary(min_size=h * w * 3, max_size=h * w * 3).map(
                lambda b: np.frombuffer(b, np.uint8).reshape(h, w, 3)
            )
        )
    ),
    codec=st.sampled_from(["png", "jpg"]),
    fmt=st.sampled_from(FORMATS),
)
def test_every_png_decodes_exactly_and_every_jpeg_to_its_size_whatever_the_format_says(
    rgb: np.ndarray, codec: str, fmt: str
) -> None:
    data = encode(rgb, codec)
    out = compressed_to_rgb8(compressed_msg(fmt, data))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    if codec == "png":
        np.testing.assert_array_equal(out, rgb)
    reference = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert np.abs(out.astype(int) - reference).max() <= (0 if codec == "png" else 8)  # libjpeg-turbo both


@st.composite
def hostile_payloads(draw: st.DrawFn) -> bytes:
    """Valid, resized, truncated, garbled or random JPEG/PNG bytes."""
    base = encode(np.full((16, 24, 3), draw(st.integers(0, 255)), np.uint8), draw(st.sampled_from(["png", "jpg"])))
    kind = draw(st.sampled_from(["resized", "truncated", "garbled", "random", "header only"]))
    side = st.one_of(st.integers(0, 300), st.integers(0, 65535), st.sampled_from([MAX_SIDE, MAX_SIDE + 1]))
    if kind == "resized" and base.startswith(b"\xff\xd8"):
        return with_jpeg_size(base, draw(side), draw(side))
    if kind == "resized":
        return png_header(draw(side), draw(side)) + base[33:]
    if kind == "truncated":
        return base[: draw(st.integers(0, len(base)))]
    if kind == "garbled":
        at = draw(st.integers(0, len(base) - 1))
        return base[:at] + draw(st.binary(min_size=1, max_size=64)) + base[at + 1 :]
    if kind == "header only":
        return png_header(draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)))
    return draw(st.sampled_from([b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"])) + draw(st.binary(max_size=256))


@PROPERTY
@given(data=hostile_payloads().flatmap(containers), fmt=st.one_of(st.sampled_from(FORMATS), st.text(max_size=20)))
def test_any_compressed_payload_gives_pixels_or_a_conversion_error_within_max_pixels(data: Any, fmt: str) -> None:
    max_pixels = 64 * 64
    result, peak = peak_allocation(lambda: compressed_to_rgb8(compressed_msg(fmt, data), max_pixels))
    assert peak <= 4 * max_pixels * 3 + (64 << 10)
    if not isinstance(result, ImageConversionError):
        assert result.dtype == np.uint8 and result.ndim == 3 and result.shape[2] == 3
        assert result.shape[0] * result.shape[1] <= max_pixels


# ---- the campaign's findings, one test each -----------------------------------------------------


def zero_png(width: int, height: int) -> bytes:
    """A complete, valid grey PNG of zeros: a few kB for millions of pixels (a decompression bomb)."""
    raw = zlib.compress(bytes((width + 1) * height), 9)
    idat = b"IDAT" + raw
    end = b"IEND"
    return (
        png_header(width, height, colour_type=0)
        + struct.pack(">I", len(raw)) + idat + struct.pack(">I", zlib.crc32(idat))
        + struct.pack(">I", 0) + end + struct.pack(">I", zlib.crc32(end))
    )  # fmt: skip


@pytest.mark.parametrize(
    ("data", "max_pixels", "message"),
    [
        (zero_png(5000, 5000), DEFAULT_MAX_PIXELS, "5000x5000 pixels exceeds max_pixels=16777216"),
        (png_header(1, 16_777_216), DEFAULT_MAX_PIXELS, "side over 16384"),  # issue 13 #4 as a PNG
        (png_header(32000, 32000), None, "side over 16384"),  # issue 13 #3: decoded to 3 GB before the check
        (with_jpeg_size(encode(np.zeros((8, 8, 3), np.uint8), "jpg"), 5000, 5000), DEFAULT_MAX_PIXELS, "5000x5000"),
    ],
    ids=["png-bomb", "png-1xN", "png-32000", "jpeg-header"],
)
def test_compressed_size_is_refused_from_the_header_before_decoding(
    data: bytes, max_pixels: int | None, message: str
) -> None:
    msg = compressed_msg("png" if data.startswith(b"\x89") else "jpeg", data)
    result, peak = peak_allocation(lambda: compressed_to_rgb8(msg, max_pixels))
    assert isinstance(result, MalformedImageError) and message in str(result)
    assert peak < 64 << 10


def street_jpeg() -> bytes:
    rng = np.random.default_rng(0)
    return encode(cv2.GaussianBlur(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), (9, 9), 3), "jpg")


def garbled_mid_stream(jpeg: bytes) -> bytes:
    middle = len(jpeg) // 2
    return (
        jpeg[:middle] + np.random.default_rng(1).integers(0, 256, 200, dtype=np.uint8).tobytes() + jpeg[middle + 200 :]
    )


@pytest.mark.parametrize(
    "data",
    [
        garbled_mid_stream(street_jpeg()),
        street_jpeg()[: len(street_jpeg()) * 2 // 3],
        street_jpeg()[: len(street_jpeg()) * 2 // 3] + b"\xff\xd9",  # truncated, end marker put back
    ],
    ids=["garbage-mid-stream", "truncated", "truncated-with-eoi"],
)
def test_corrupt_jpeg_is_a_bad_message_not_labelled(data: bytes) -> None:
    """Issue 13 #9: OpenCV decoded these into smeared blocks (only a libjpeg warning on stderr)."""
    with pytest.raises(CorruptCompressedImageError, match="JPEG"):
        compressed_to_rgb8(compressed_msg("rgb8; jpeg compressed bgr8", data))


def test_the_bytes_decide_the_codec_not_the_format_string() -> None:
    """image_transport decodes by content (cv::imdecode); a mislabelled frame is still a good frame."""
    rgb = np.random.default_rng(2).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        compressed_to_rgb8(compressed_msg("rgb8; jpeg compressed bgr8", encode(rgb, "png"))), rgb
    )
    assert compressed_to_rgb8(compressed_msg("png", encode(rgb, "jpg"))).shape == rgb.shape


@pytest.mark.parametrize(
    ("fmt", "data", "message"),
    [
        ("jpeg", encode(np.zeros((4, 4, 3), np.uint8), "bmp"), "neither JPEG nor PNG"),
        ("", encode(np.zeros((4, 4, 3), np.uint8), "webp"), "neither JPEG nor PNG"),
        ("16UC1; compressedDepth png", b"\0" * 12 + encode(np.zeros((4, 4, 3), np.uint8), "png"), "depth"),
        ("tiff", encode(np.zeros((4, 4, 3), np.uint8), "png"), "expected jpeg or png"),
    ],
    ids=["bmp", "webp", "compressed-depth", "tiff"],
)
def test_other_codecs_are_refused_by_name(fmt: str, data: bytes, message: str) -> None:
    with pytest.raises(UnsupportedEncodingError, match=message):
        compressed_to_rgb8(compressed_msg(fmt, data))
