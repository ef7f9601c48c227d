"""sensor_msgs Image / CompressedImage <-> numpy: every encoding round-trips, views stay views, bad input raises."""

from __future__ import annotations

import array

import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from fast_scnn_ros.conversions import (
    CorruptCompressedImageError,
    ImageConversionError,
    MalformedImageError,
    UnsupportedEncodingError,
    compressed_to_rgb8,
    image_to_numpy,
    image_to_rgb8,
    numpy_to_image,
    pixel_layout,
    rgb8_to_compressed,
)

H, W = 6, 8
ERR = MalformedImageError
ROS_ENCODINGS = [
    "rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "rgb16", "bgr16", "rgba16", "bgra16", "yuv422", "yuv422_yuy2",
    *(f"bayer_{p}{bits}" for p in ("rggb", "bggr", "gbrg", "grbg") for bits in (8, 16)),
    "8UC1", "8UC3", "16SC2", "32FC1", "64FC4",
]  # fmt: skip


def raw_pixels(encoding: str, seed: int = 0) -> np.ndarray:
    dtype, channels = pixel_layout(encoding)
    rng = np.random.default_rng(seed)
    shape = (H, W) if channels == 1 else (H, W, channels)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def with_padding(msg: Image, pad: int) -> Image:
    """The same image with `pad` junk bytes after every row, as some drivers send it."""
    row = msg.step
    data = bytes(msg.data)
    msg.data = b"".join(data[r * row : (r + 1) * row] + b"\xab" * pad for r in range(msg.height))
    msg.step = row + pad
    return msg


@pytest.mark.parametrize("encoding", ROS_ENCODINGS)
def test_every_encoding_round_trips_tight_and_padded(encoding: str) -> None:
    pixels = raw_pixels(encoding)
    header = Header(frame_id="cam")
    msg = numpy_to_image(pixels, encoding, header)
    assert isinstance(msg.data, array.array) and msg.header.frame_id == "cam"
    assert (msg.height, msg.width, msg.encoding) == (H, W, encoding)
    np.testing.assert_array_equal(image_to_numpy(msg), pixels)
    np.testing.assert_array_equal(image_to_numpy(with_padding(msg, 6)), pixels)


@pytest.mark.parametrize("encoding", ["mono16", "rgb16", "bgra16", "bayer_grbg16", "16SC2", "32FC1"])
def test_big_endian_messages_read_right(encoding: str) -> None:
    pixels = raw_pixels(encoding)
    big = pixels.astype(pixels.dtype.newbyteorder(">"))
    msg = numpy_to_image(big, encoding)
    assert msg.is_bigendian == 1 and bytes(msg.data) == big.tobytes()
    np.testing.assert_array_equal(image_to_numpy(msg), pixels)
    assert numpy_to_image(pixels.astype(pixels.dtype.newbyteorder("<")), encoding).is_bigendian == 0


@pytest.mark.parametrize("pad", [0, 4])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_8bit_reads_are_views_over_the_message_buffer(encoding: str, pad: int) -> None:
    msg = with_padding(numpy_to_image(raw_pixels(encoding), encoding), pad)
    buffer = np.frombuffer(msg.data, np.uint8)
    assert np.shares_memory(image_to_numpy(msg), buffer)
    assert np.shares_memory(image_to_rgb8(msg), buffer)


def test_colour_orders_give_the_same_rgb() -> None:
    rgb = raw_pixels("rgb8")
    alpha = np.full((H, W, 1), 7, np.uint8)
    variants = {
        "rgb8": rgb,
        "bgr8": rgb[:, :, ::-1],
        "rgba8": np.concatenate([rgb, alpha], 2),
        "bgra8": np.concatenate([rgb[:, :, ::-1], alpha], 2),
    }
    # 16-bit: the high byte is the 8-bit value, the low byte must not leak through.
    wide = rgb.astype(np.uint16) << 8 | 0xFF
    variants |= {"rgb16": wide, "bgr16": wide[:, :, ::-1], "rgba16": np.concatenate([wide, wide[:, :, :1]], 2)}
    for encoding, pixels in variants.items():
        out = image_to_rgb8(numpy_to_image(np.ascontiguousarray(pixels), encoding))
        assert out.dtype == np.uint8 and out.shape == (H, W, 3)
        np.testing.assert_array_equal(out, rgb, err_msg=encoding)


def test_mono_becomes_grey_rgb() -> None:
    mono = raw_pixels("mono8")
    for encoding, pixels in (("mono8", mono), ("mono16", mono.astype(np.uint16) << 8)):
        out = image_to_rgb8(numpy_to_image(pixels, encoding))
        np.testing.assert_array_equal(out, np.repeat(mono[:, :, None], 3, axis=2))


def test_yuv422_byte_orders_decode_alike_with_chroma_in_the_right_place() -> None:
    y, u, v = 128, 230, 128  # strong blue difference, no red difference
    uyvy = np.tile(np.array([u, y, v, y], np.uint8), (H, W // 2)).reshape(H, W, 2)
    yuy2 = np.tile(np.array([y, u, y, v], np.uint8), (H, W // 2)).reshape(H, W, 2)
    a = image_to_rgb8(numpy_to_image(uyvy, "yuv422"))
    b = image_to_rgb8(numpy_to_image(yuy2, "yuv422_yuy2"))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (H, W, 3) and (a[..., 2].astype(int) - a[..., 0] > 100).all()  # blue >> red


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_patterns_demosaic_to_the_true_colour(pattern: str, bits: int) -> None:
    colour = {"r": 200, "g": 100, "b": 30}
    mosaic = np.zeros((H, W), np.uint16 if bits == 16 else np.uint8)
    for (dy, dx), channel in zip([(0, 0), (0, 1), (1, 0), (1, 1)], pattern, strict=True):
        mosaic[dy::2, dx::2] = colour[channel] << (8 if bits == 16 else 0)
    rgb = image_to_rgb8(numpy_to_image(mosaic, f"bayer_{pattern}{bits}"))
    np.testing.assert_array_equal(rgb[2:-2, 2:-2], np.broadcast_to([200, 100, 30], (H - 4, W - 4, 3)))


def test_png_round_trips_exactly_and_jpeg_closely() -> None:
    rgb = np.ascontiguousarray(np.broadcast_to(np.linspace(0, 255, W, dtype=np.uint8)[None, :, None], (H, W, 3)))
    rgb[:, :, 1] = 40
    png = rgb8_to_compressed(rgb, "png", Header(frame_id="cam"))
    assert png.format == "rgb8; png compressed bgr8" and png.header.frame_id == "cam"
    np.testing.assert_array_equal(compressed_to_rgb8(png), rgb)
    jpeg = compressed_to_rgb8(rgb8_to_compressed(rgb, "jpeg"))
    assert jpeg.shape == rgb.shape and np.abs(jpeg.astype(int) - rgb).mean() < 8


def bad_image(**fields) -> Image:
    msg = numpy_to_image(raw_pixels("rgb8"), "rgb8")
    for key, value in fields.items():
        setattr(msg, key, value)
    return msg


@pytest.mark.parametrize(
    ("msg", "error", "text"),
    [
        (bad_image(encoding="rgb9"), UnsupportedEncodingError, "rgb9"),
        (bad_image(encoding=""), UnsupportedEncodingError, "unsupported"),
        (bad_image(step=W * 3 - 1), MalformedImageError, "step"),
        (bad_image(data=bytes(H * W * 3 - 5)), MalformedImageError, "data holds"),
        (bad_image(data=bytes(H * W * 3 + 5)), MalformedImageError, "data holds"),
        (bad_image(width=0, height=0, step=0, data=b""), MalformedImageError, "empty"),
        (bad_image(width=100_000, height=100_000, step=300_000), MalformedImageError, "side over 16384"),
        (bad_image(encoding="yuv422", width=W - 1, step=2 * W - 2, data=bytes(H * (2 * W - 2))), ERR, "even"),
        (bad_image(encoding="bayer_rggb8", height=H - 1, step=W, data=bytes(W * (H - 1))), MalformedImageError, "even"),
    ],
)  # fmt: skip
def test_bad_images_raise_a_clear_value_error(msg: Image, error: type, text: str) -> None:
    with pytest.raises(error, match=text) as info:
        image_to_rgb8(msg)
    assert isinstance(info.value, ImageConversionError) and isinstance(info.value, ValueError)


def test_absurd_size_is_refused_before_reading_pixels() -> None:
    from fast_scnn_ros.conversions import check_image

    with pytest.raises(MalformedImageError, match="max_pixels"):
        check_image(bad_image(width=16_384, height=16_384, step=3 * 16_384), max_pixels=4096 * 4096)


@pytest.mark.parametrize(
    ("data", "fmt", "error"),
    [
        (b"", "jpeg", MalformedImageError),
        (b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, "jpeg", CorruptCompressedImageError),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "png", CorruptCompressedImageError),
        (b"\0" * 16, "16UC1; compressedDepth png", UnsupportedEncodingError),
        (b"\0" * 16, "tiff", UnsupportedEncodingError),
    ],
)
def test_bad_compressed_images_raise_a_clear_value_error(data: bytes, fmt: str, error: type) -> None:
    with pytest.raises(error):
        compressed_to_rgb8(CompressedImage(format=fmt, data=data))


def test_writing_rejects_arrays_that_do_not_fit_the_encoding() -> None:
    with pytest.raises(ImageConversionError, match="rgb8"):
        numpy_to_image(np.zeros((H, W), np.uint8), "rgb8")
    with pytest.raises(ImageConversionError, match="mono16"):
        numpy_to_image(np.zeros((H, W), np.uint8), "mono16")


def test_matches_cv_bridge_where_installed() -> None:
    cv_bridge = pytest.importorskip("cv_bridge", reason="cv_bridge comes with a ROS install, not PyPI")
    bridge = cv_bridge.CvBridge()
    for encoding in ("rgb8", "bgr8", "mono8", "mono16", "rgba16", "32FC1"):
        pixels = raw_pixels(encoding)
        msg = numpy_to_image(pixels, encoding)
        np.testing.assert_array_equal(bridge.imgmsg_to_cv2(msg), image_to_numpy(msg))
        np.testing.assert_array_equal(image_to_numpy(bridge.cv2_to_imgmsg(pixels, encoding)), pixels)
    rgb = raw_pixels("rgb8")
    png = rgb8_to_compressed(rgb, "png")
    np.testing.assert_array_equal(bridge.compressed_imgmsg_to_cv2(png, "rgb8"), compressed_to_rgb8(png))
