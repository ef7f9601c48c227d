"""sensor_msgs Image / CompressedImage layout <-> numpy, in place of cv_bridge, without ROS.

One conversion code path for the live node (rclpy messages, `fast_scnn_ros.conversions`) and for
recorded drives (rosbags messages, `fast-scnn label-bag`): the functions here read any object with
the message's fields (`encoding`, `height`, `width`, `step`, `is_bigendian`, `data`; `format` and
`data` for a CompressedImage) and never import rclpy or ROS message packages.

Reading returns views over the message buffer wherever the encoding allows (np.frombuffer over
`msg.data`, row padding sliced away, byte order from `is_bigendian`); only colour conversions that
must compute (YUV 4:2:2, Bayer, 16 -> 8 bit) allocate. Writing produces the fields of a message
(`image_fields`, `compress_rgb8`); building the message object is left to the ROS side.

Limits (`fast_scnn_core.limits`): every image read here has sides of 1..MAX_SIDE pixels and, when the
caller passes `max_pixels`, at most that many; both are checked from the message's fields or, for a
CompressedImage, from the JPEG/PNG header, before any buffer proportional to the size is allocated.
A message that breaks a limit or contradicts itself raises an ImageConversionError (an InputError,
a ValueError) whose message names the field; nothing else escapes for any content of the fields.

CompressedImage: the bytes decide, as image_transport's compressed subscriber does (it calls
cv::imdecode and never compares the `format` string with the data): a JPEG labelled "png" decodes
as JPEG. Drivers and old bags mislabel or leave `format` empty, and refusing them would drop good
frames while the checks that matter (size from the header, strict decoding) come from the bytes
themselves. A `format` naming something else (compressedDepth, tiff) is still refused, and so are
bytes that are neither JPEG nor PNG. JPEG is decoded by libjpeg-turbo through simplejpeg in strict
mode: corrupt entropy-coded data (garbage mid-stream, a truncated file), which OpenCV decodes into
smeared blocks with only a warning on stderr, raises CorruptCompressedImageError, so the frame is a
counted bad message instead of wrong labels. PNG is decoded by OpenCV (libpng checks every chunk's
CRC and fails on corruption).
"""

from __future__ import annotations

import re
import struct
import sys
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import cv2
import numpy as np
import simplejpeg

from fast_scnn_core.errors import InputError
from fast_scnn_core.limits import size_problem


class ImageLike(Protocol):
    """The fields of a sensor_msgs/Image (an rclpy message, a rosbags message, ...)."""

    encoding: str
    height: int
    width: int
    step: int
    is_bigendian: int
    data: Any


class CompressedImageLike(Protocol):
    """The fields of a sensor_msgs/CompressedImage."""

    format: str
    data: Any


class ImageConversionError(InputError):
    """A sensor_msgs image cannot be converted; the message says which field is wrong and why."""


class UnsupportedEncodingError(ImageConversionError):
    """The `encoding` (or CompressedImage `format`) is not one this module reads."""


class MalformedImageError(ImageConversionError):
    """The fields contradict each other: size, step, data length."""


class CorruptCompressedImageError(ImageConversionError):
    """The CompressedImage payload does not decode."""


# encoding -> (numpy dtype, channels) of the raw pixel layout.
_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "rgb16": (np.dtype(np.uint16), 3),
    "bgr16": (np.dtype(np.uint16), 3),
    "rgba16": (np.dtype(np.uint16), 4),
    "bgra16": (np.dtype(np.uint16), 4),
    "yuv422": (np.dtype(np.uint8), 2),  # UYVY: U0 Y0 V0 Y1
    "yuv422_yuy2": (np.dtype(np.uint8), 2),  # YUYV: Y0 U0 Y1 V0
}
for _pattern in ("rggb", "bggr", "gbrg", "grbg"):
    _ENCODINGS[f"bayer_{_pattern}8"] = (np.dtype(np.uint8), 1)
    _ENCODINGS[f"bayer_{_pattern}16"] = (np.dtype(np.uint16), 1)

# OpenCV-style generic encodings (8UC3, 32FC1, ...), e.g. the node's confidence output.
_GENERIC = re.compile(r"^(8U|8S|16U|16S|32S|32F|64F)C([1-4])$")
_GENERIC_DTYPES = {"8U": np.uint8, "8S": np.int8, "16U": np.uint16, "16S": np.int16, "32S": np.int32}
_GENERIC_DTYPES |= {"32F": np.float32, "64F": np.float64}

# ROS names the Bayer pattern by its first row; OpenCV 5 names the same pattern the same way.
_BAYER_TO_RGB = {
    "rggb": cv2.COLOR_BayerRGGB2RGB,
    "bggr": cv2.COLOR_BayerBGGR2RGB,
    "gbrg": cv2.COLOR_BayerGBRG2RGB,
    "grbg": cv2.COLOR_BayerGRBG2RGB,
}
_YUV422_TO_RGB = {"yuv422": cv2.COLOR_YUV2RGB_UYVY, "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2}

SUPPORTED_ENCODINGS: tuple[str, ...] = (*_ENCODINGS, "8UC1..64FC4")


def pixel_layout(encoding: str) -> tuple[np.dtype, int]:
    """(dtype, channels) of an encoding's raw pixels; UnsupportedEncodingError for unknown ones."""
    if encoding in _ENCODINGS:
        return _ENCODINGS[encoding]
    match = _GENERIC.match(encoding)
    if match:
        return np.dtype(_GENERIC_DTYPES[match.group(1)]), int(match.group(2))
    raise UnsupportedEncodingError(
        f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
    )


def check_image(msg: ImageLike, max_pixels: int | None = None) -> None:
    """Validate an Image's fields without touching its pixels (cheap enough for a subscription callback)."""
    dtype, channels = pixel_layout(msg.encoding)
    problem = size_problem(msg.width, msg.height, max_pixels)
    if problem:
        raise MalformedImageError(problem)
    bayer = msg.encoding.startswith("bayer_")
    if (bayer or msg.encoding.startswith("yuv422")) and (msg.width % 2 or (bayer and msg.height % 2)):
        raise MalformedImageError(
            f"{msg.encoding} needs an even width (Bayer also an even height), got {msg.width}x{msg.height}"
        )
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes:
        raise MalformedImageError(
            f"step {msg.step} is smaller than a row of {msg.width} {msg.encoding} pixels ({row_bytes} bytes)"
        )
    if len(msg.data) != msg.step * msg.height:
        raise MalformedImageError(
            f"data holds {len(msg.data)} bytes, expected step * height = {msg.step} * {msg.height} = "
            f"{msg.step * msg.height}"
        )


def _buffer(data: object) -> np.ndarray:
    """The message bytes as a uint8 array: a view for array.array/bytes/ndarray (rclpy, rosbags), a copy for lists."""
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8)


def image_to_numpy(msg: ImageLike) -> np.ndarray:
    """The raw pixels as (H, W) or (H, W, C) in the encoding's own layout, a view over `msg.data`.

    Multi-byte pixels keep the message's byte order in the dtype ('>u2' when is_bigendian), so the
    values are right without a copy; row padding is sliced off, not copied.
    """
    check_image(msg)
    dtype, channels = pixel_layout(msg.encoding)
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    row_bytes = msg.width * channels * dtype.itemsize
    rows = _buffer(msg.data).reshape(msg.height, msg.step)[:, :row_bytes]
    pixels = rows.view(dtype).reshape(msg.height, msg.width, channels)
    return pixels[:, :, 0] if channels == 1 else pixels


def image_to_rgb8(msg: ImageLike) -> np.ndarray:
    """Any supported Image as (H, W, 3) uint8 RGB, the engine's input; a view for rgb8/bgr8/rgba8/bgra8/mono8.

    16-bit encodings keep their high byte (value >> 8), as a display would.
    """
    pixels = image_to_numpy(msg)
    encoding = msg.encoding
    if pixels.dtype.itemsize == 2 and encoding in _ENCODINGS:
        pixels = (pixels >> 8).astype(np.uint8)
        encoding = encoding.replace("16", "8")
    if encoding == "rgb8":
        return pixels
    if encoding == "bgr8":
        return pixels[:, :, ::-1]
    if encoding == "rgba8":
        return pixels[:, :, :3]
    if encoding == "bgra8":
        return pixels[:, :, 2::-1]
    if encoding == "mono8":
        return np.broadcast_to(pixels[:, :, None], (*pixels.shape, 3))
    if encoding in _YUV422_TO_RGB:
        return cv2.cvtColor(np.ascontiguousarray(pixels), _YUV422_TO_RGB[encoding])
    if encoding.startswith("bayer_"):
        return cv2.cvtColor(np.ascontiguousarray(pixels), _BAYER_TO_RGB[encoding[6:10]])
    raise UnsupportedEncodingError(f"encoding {msg.encoding!r} cannot be shown as RGB (not a colour image)")


@dataclass(frozen=True)
class ImageFields:
    """The fields of a sensor_msgs/Image holding `pixels`: tight step, the array's byte order."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    pixels: np.ndarray  # C-contiguous; its bytes are the message's `data`


def image_fields(pixels: np.ndarray, encoding: str) -> ImageFields:
    """(H, W) or (H, W, C) array -> the fields of an Image in `encoding` (checked against the array)."""
    dtype, channels = pixel_layout(encoding)
    shape = pixels.shape if pixels.ndim == 3 else (*pixels.shape, 1)
    if pixels.ndim not in (2, 3) or shape[2] != channels or pixels.dtype.newbyteorder("=") != dtype:
        raise ImageConversionError(
            f"{encoding} needs an (H, W{'' if channels == 1 else f', {channels}'}) {dtype} array, "
            f"got {pixels.shape} {pixels.dtype}"
        )
    big = pixels.dtype.byteorder == ">" or (pixels.dtype.byteorder == "=" and sys.byteorder == "big")
    return ImageFields(
        height=shape[0],
        width=shape[1],
        encoding=encoding,
        is_bigendian=int(big and dtype.itemsize > 1),
        step=shape[1] * channels * dtype.itemsize,
        pixels=np.ascontiguousarray(pixels),
    )


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8"  # start-of-image marker


@dataclass(frozen=True)
class CompressedHeader:
    """What a CompressedImage's header says: the codec its bytes are in and the image's size."""

    codec: Literal["jpeg", "png"]
    width: int
    height: int


def check_compressed_image(msg: CompressedImageLike, max_pixels: int | None = None) -> CompressedHeader:
    """Codec and size from the JPEG/PNG header, checked against the limits, without decoding (microseconds).

    The PNG size is IHDR's, which the PNG specification places first; the JPEG size is read by
    libjpeg-turbo's own header parser (simplejpeg.decode_jpeg_header).
    """
    fmt = msg.format.lower()
    if "compresseddepth" in fmt:
        raise UnsupportedEncodingError(f"CompressedImage format {msg.format!r}: depth images are not supported")
    if fmt and not any(name in fmt for name in ("jpeg", "jpg", "png")):
        raise UnsupportedEncodingError(f"CompressedImage format {msg.format!r}: expected jpeg or png")
    data = _buffer(msg.data)
    if len(data) == 0:
        raise MalformedImageError("CompressedImage with empty data")
    start = data[:24].tobytes()
    if start.startswith(_PNG_SIGNATURE):
        # signature (8 bytes), chunk length (4), b"IHDR" (4), width (4), height (4), big-endian
        if len(start) < 24 or start[12:16] != b"IHDR":
            raise CorruptCompressedImageError(f"PNG CompressedImage ({len(data)} bytes) without an IHDR header")
        width, height = struct.unpack(">II", start[16:24])
        header = CompressedHeader("png", width, height)
    elif start.startswith(_JPEG_SOI):
        try:
            height, width, _, _ = simplejpeg.decode_jpeg_header(data)
        except ValueError as exc:
            raise CorruptCompressedImageError(
                f"JPEG CompressedImage ({len(data)} bytes) has no readable header: {exc}"
            ) from None
        header = CompressedHeader("jpeg", width, height)
    else:
        raise UnsupportedEncodingError(
            f"CompressedImage ({msg.format or 'no format'}, {len(data)} bytes) is neither JPEG nor PNG: "
            f"it starts with {start[:8].hex(' ')}"
        )
    problem = size_problem(header.width, header.height, max_pixels)
    if problem:
        raise MalformedImageError(f"{header.codec.upper()} CompressedImage: {problem}")
    return header


def compressed_to_rgb8(msg: CompressedImageLike, max_pixels: int | None = None) -> np.ndarray:
    """Decode a jpeg/png CompressedImage (as image_transport's compressed plugin sends it) to (H, W, 3) RGB.

    The size is checked from the header first (`check_compressed_image`); a corrupt JPEG is refused
    (strict decoding), not labelled.
    """
    header = check_compressed_image(msg, max_pixels)
    data = _buffer(msg.data)
    if header.codec == "jpeg":
        try:
            rgb = simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
        except ValueError as exc:
            raise CorruptCompressedImageError(
                f"JPEG CompressedImage ({len(data)} bytes) does not decode cleanly: {exc}"
            ) from None
    else:
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if bgr is None or bgr.size == 0:
            raise CorruptCompressedImageError(f"PNG CompressedImage ({len(data)} bytes) does not decode")
        rgb = bgr[:, :, ::-1]
    return rgb


def compress_rgb8(rgb: np.ndarray, fmt: str = "jpeg") -> tuple[str, np.ndarray]:
    """(H, W, 3) RGB -> (CompressedImage format string as image_transport writes it, encoded bytes)."""
    ok, encoded = cv2.imencode(".jpg" if fmt == "jpeg" else f".{fmt}", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise ImageConversionError(f"OpenCV cannot encode {rgb.shape} {rgb.dtype} as {fmt}")
    return f"rgb8; {fmt} compressed bgr8", encoded.reshape(-1)
