"""Size limits of the engine's input: one place for the Segmenter, the sensor_msgs conversions and the
ranges of `InferenceConfig` (hence of the node's parameters and the README's table).

- Sides of 1..`MAX_SIDE` pixels. The network needs no more than one pixel per side (measured at
  every size from 1x1 to 64x64 with torch, ONNX Runtime and both exporters' ONNX files), but a side
  below 32 stops shrinking its feature maps (a stride-2 convolution keeps a 1-pixel side at 1), so a
  thin image costs like a 32-pixel-high one: on the 2-core EPYC 1x262144 took 1.0 s where 1024x256
  (the same pixels) took 0.07 s, and the fault campaign's 1x16,777,216 took 72 s and 11 GB.
  `MAX_SIDE` = 16384 bounds that: the worst thin image costs what 32x16384 (0.5 M pixels) does.
  16384 is wider than any camera a robot carries (8K is 7680, 360-degree panoramas reach about
  11000) and the width at which `DEFAULT_MAX_PIXELS` still allows a 1024-pixel height; it also
  bounds what grows with one side only (rows, interpolation tables, a decoder's row buffers).
- `MIN_SIDE` = 32, the network's output stride (the global feature extractor works at 1/32, paper
  Table 1), is the smallest inference resolution the `width`/`height` options accept: a smaller one
  leaves one feature pixel for the whole image, a configuration mistake. Images themselves may be
  smaller (a thumbnail is segmented at its own size). TensorRT's shape profile starts at 32 too.
- `max_pixels` (an option, default `DEFAULT_MAX_PIXELS` = 4096 x 4096) bounds width x height, the
  memory guard: about 0.8 GB of activations per 16.7 M pixels in the torch backend.
"""

from __future__ import annotations

from fast_scnn_core.errors import ConfigError

MIN_SIDE = 32
MAX_SIDE = 16384
DEFAULT_MAX_PIXELS = 4096 * 4096


def size_problem(width: int, height: int, max_pixels: int | None = None) -> str:
    """Why an image of width x height is refused, or "" when its sides and pixel count are within the limits.

    Sides must be 1..MAX_SIDE, width x height at most `max_pixels` when given.
    """
    if width < 1 or height < 1:
        return f"empty image: {width}x{height}"
    if width > MAX_SIDE or height > MAX_SIDE:
        return f"image of {width}x{height} pixels has a side over {MAX_SIDE} (the engine's limit per side)"
    if max_pixels is not None and width * height > max_pixels:
        return f"image of {width}x{height} pixels exceeds max_pixels={max_pixels}"
    return ""


def parse_size(text: str, minimum: int = MIN_SIDE, what: str = "--size") -> tuple[int, int]:
    """`512x1024` -> (512, 1024) as (height, width): the one HEIGHTxWIDTH parser of every command and benchmark."""
    h, sep, w = text.strip().lower().partition("x")
    if (
        not sep
        or not h.isdigit()
        or not w.isdigit()
        or not minimum <= int(h) <= MAX_SIDE
        or not minimum <= int(w) <= MAX_SIDE
    ):
        raise ConfigError(f"{what} {text!r}: expected HEIGHTxWIDTH with both in {minimum}..{MAX_SIDE}, e.g. 512x1024")
    return int(h), int(w)


def parse_sizes(text: str, minimum: int = MIN_SIDE, what: str = "--sizes") -> tuple[tuple[int, int], ...]:
    """`512x1024,1024x2048` -> ((512, 1024), (1024, 2048)); at least one size."""
    sizes = tuple(parse_size(item, minimum, what) for item in text.split(",") if item.strip())
    if not sizes:
        raise ConfigError(f"{what} {text!r}: expected HEIGHTxWIDTH[,HEIGHTxWIDTH...], e.g. 512x1024")
    return sizes
