"""Colour coding, overlays and masks: the values of the numpy definitions, computed by OpenCV."""

from __future__ import annotations

import numpy as np
import pytest

from fast_scnn_core.infer.visualize import class_mask, colorize, overlay

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (48, 80, 3), dtype=np.uint8)
LABELS = RNG.integers(0, 256, (48, 80), dtype=np.uint8)  # every id, 255 (ignore) included
PALETTE = RNG.integers(0, 256, (256, 3), dtype=np.uint8)


def blend(image: np.ndarray, colors: np.ndarray, alpha: float) -> np.ndarray:
    """The overlay's definition: float32 blend, rounded half up."""
    blended = image.astype(np.float32) * (1.0 - alpha) + colors.astype(np.float32) * alpha
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def test_colorize_looks_every_id_up_in_the_palette() -> None:
    np.testing.assert_array_equal(colorize(LABELS, PALETTE), PALETTE[LABELS])
    strided = LABELS[::2, ::3]  # a view, as an inference-resolution crop would be
    np.testing.assert_array_equal(colorize(strided, PALETTE), PALETTE[strided])


def test_class_mask_is_255_exactly_where_the_class_is() -> None:
    for class_id in (0, 7, 255):
        mask = class_mask(LABELS, class_id)
        assert mask.dtype == np.uint8 and mask.shape == LABELS.shape
        np.testing.assert_array_equal(mask, np.where(np.equal(LABELS, class_id), 255, 0))


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("layout", ["rgb8", "bgr8 view", "mono8 view"])
def test_overlay_equals_the_float_blend_at_the_usual_alphas(alpha: float, layout: str) -> None:
    """The node passes image_to_rgb8's views: reversed channels (bgr8), a broadcast grey channel (mono8)."""
    image = {
        "rgb8": RGB,
        "bgr8 view": np.ascontiguousarray(RGB[:, :, ::-1])[:, :, ::-1],
        "mono8 view": np.broadcast_to(RGB[:, :, :1], RGB.shape),
    }[layout]
    expected = blend(image, PALETTE[LABELS], alpha)
    np.testing.assert_array_equal(overlay(image, LABELS, PALETTE, alpha), expected)
    colors = colorize(LABELS, PALETTE)  # given by a caller that publishes them too
    np.testing.assert_array_equal(overlay(image, LABELS, PALETTE, alpha, colors=colors), expected)


def test_overlay_at_other_alphas_is_at_most_one_step_off_the_float_blend() -> None:
    for alpha in (0.1, 0.3, 0.7, 0.9):
        difference = np.abs(overlay(RGB, LABELS, PALETTE, alpha).astype(int) - blend(RGB, PALETTE[LABELS], alpha))
        assert difference.max() <= 1 and np.mean(difference > 0) < 0.05, alpha


def test_overlay_refuses_a_size_mismatch_and_an_alpha_outside_0_1() -> None:
    with pytest.raises(ValueError, match="differ in size"):
        overlay(RGB, LABELS[1:], PALETTE)
    with pytest.raises(ValueError, match="alpha"):
        overlay(RGB, LABELS, PALETTE, 1.5)


# Issue 20 #5: the demo's pictures had no titles and no legend.


def test_legend_names_exactly_the_classes_present_each_beside_its_colour() -> None:
    from fast_scnn_core.infer.visualize import labelled_row, legend, present_classes
    from fast_scnn_core.labels import CITYSCAPES

    labels = np.full((40, 60), 255, np.uint8)  # ignore: in no legend
    labels[:10], labels[10:20, :5], labels[30:] = 0, 11, 13  # road, person, car
    assert present_classes(labels, CITYSCAPES) == [0, 11, 13]
    strip = legend([0, 11, 13], CITYSCAPES, 360)
    for class_id in range(CITYSCAPES.num_classes):  # a 14x14 swatch of each present colour, of no other class's
        pixels = np.all(strip == CITYSCAPES.colors[class_id], axis=-1).sum()  # (grey text edges are a few pixels)
        assert (pixels >= 14 * 14) == (class_id in (0, 11, 13)), CITYSCAPES.names[class_id]
    narrow = legend(list(range(CITYSCAPES.num_classes)), CITYSCAPES, 200)  # entries wrap onto more lines
    assert narrow.shape[1] == 200 and narrow.shape[0] > strip.shape[0]
    image = RGB[:40, :60]
    row = labelled_row([("input", image), ("labels", image)], labels, CITYSCAPES)
    assert row.shape == (24 + 40 + legend([0, 11, 13], CITYSCAPES, 120).shape[0], 120, 3)  # titles, panels, legend
    np.testing.assert_array_equal(row[24:64, 60:], image)  # the panels themselves are untouched
    assert row[:24].any()  # the titles are drawn
