"""A deterministic procedural street-scene dataset in the exact Cityscapes layout (`fast-scnn synth`).

Each frame is drawn from its own seed (dataset seed, split, index), so a frame does not depend on
how many others are written. Scenes have perspective (a vanishing point: road and sidewalks narrow
towards the horizon, objects shrink with distance), texture (tiles, windows, lane marks, foliage)
and noise (colour jitter, illumination gradient, sensor noise, blur). Labels are Cityscapes
labelIds, including an ignored `ego vehicle` bonnet, so the Cityscapes loader runs unchanged.

`synthetic_frame` gives (RGB image, trainId labels) pairs in memory for demos and camera streamers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fast_scnn_core.atomic import atomic_path, remove_stale_temporaries
from fast_scnn_core.errors import DataError
from fast_scnn_core.labels import cityscapes_id_to_train_id

# Cityscapes labelIds of what the generator draws (cityscapesScripts labels.py).
EGO_VEHICLE, ROAD, SIDEWALK, BUILDING, POLE, VEGETATION, SKY, PERSON, CAR = 1, 7, 8, 11, 17, 21, 23, 24, 26

# One made-up city per split; Cityscapes file names are <city>_<sequence>_<frame>_<suffix>.png.
CITIES = {"train": "synthtown", "val": "synthvale", "test": "synthport"}
_SPLIT_STREAM = {"train": 0, "val": 1, "test": 2}


def _jitter(rng: np.random.Generator, color: tuple[int, int, int], amount: int) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)


def _fill(image: np.ndarray, labels: np.ndarray, polygon: np.ndarray, color: tuple, label_id: int) -> None:
    cv2.fillPoly(image, [polygon.astype(np.int32)], color)
    cv2.fillPoly(labels, [polygon.astype(np.int32)], label_id)


def _draw_building(rng: np.random.Generator, image: np.ndarray, labels: np.ndarray, x0: int, x1: int, y0: int, y1: int):
    base = _jitter(rng, (110, 100, 95), 40)
    cv2.rectangle(image, (x0, y0), (x1, y1), base, -1)
    cv2.rectangle(labels, (x0, y0), (x1, y1), BUILDING, -1)
    window = _jitter(rng, (50, 60, 80), 25)
    step_x, step_y = max(4, (x1 - x0) // rng.integers(3, 7)), max(4, int(rng.integers(8, 16)))
    for wy in range(y0 + step_y // 2, y1 - step_y, step_y):
        for wx in range(x0 + step_x // 3, x1 - step_x // 2, step_x):
            cv2.rectangle(image, (wx, wy), (wx + step_x // 2, wy + step_y // 2), window, -1)


def _draw_tree(rng: np.random.Generator, image: np.ndarray, labels: np.ndarray, x: int, y: int, r: int) -> None:
    for _ in range(6):
        cx, cy = x + int(rng.integers(-r, r + 1)) // 2, y + int(rng.integers(-r, r + 1)) // 2
        radius = max(2, int(r * rng.uniform(0.5, 0.9)))
        cv2.circle(image, (cx, cy), radius, _jitter(rng, (60, 110, 40), 25), -1)
        cv2.circle(labels, (cx, cy), radius, VEGETATION, -1)


def _draw_car(rng: np.random.Generator, image: np.ndarray, labels: np.ndarray, x: int, y: int, w: int) -> None:
    h = int(w * 0.55)
    body = tuple(int(c) for c in rng.integers(20, 235, 3))
    cabin = np.array(
        [[x + w * 0.2, y - h], [x + w * 0.8, y - h], [x + w * 0.9, y - h * 0.55], [x + w * 0.1, y - h * 0.55]]
    )
    _fill(image, labels, cabin, (40, 50, 60), CAR)
    cv2.rectangle(image, (x, int(y - h * 0.6)), (x + w, y), body, -1)
    cv2.rectangle(labels, (x, int(y - h * 0.6)), (x + w, y), CAR, -1)
    wheel = max(2, w // 8)
    for wx in (x + w // 5, x + 4 * w // 5):
        cv2.circle(image, (wx, y), wheel, (20, 20, 20), -1)
        cv2.circle(labels, (wx, y), wheel, CAR, -1)


def _draw_person(rng: np.random.Generator, image: np.ndarray, labels: np.ndarray, x: int, y: int, h: int) -> None:
    w = max(2, h // 4)
    clothes = tuple(int(c) for c in rng.integers(0, 256, 3))
    legs = _jitter(rng, (40, 40, 70), 30)
    cv2.rectangle(image, (x - w // 2, y - h // 2), (x + w // 2, y), legs, -1)
    cv2.rectangle(image, (x - w // 2, y - int(h * 0.85)), (x + w // 2, y - h // 2), clothes, -1)
    cv2.circle(image, (x, y - int(h * 0.9)), max(1, h // 10), _jitter(rng, (200, 160, 130), 40), -1)
    cv2.rectangle(labels, (x - w // 2, y - int(h * 0.85)), (x + w // 2, y), PERSON, -1)
    cv2.circle(labels, (x, y - int(h * 0.9)), max(1, h // 10), PERSON, -1)


@dataclass(frozen=True)
class Street:
    """The perspective of one scene: the horizon's row, the vanishing point's column, the road's edges at the bottom."""

    height: int
    width: int
    horizon: int
    vx: float
    left: float = 0.0
    right: float = 0.0


def _draw_sky(rng: np.random.Generator, image: np.ndarray, labels: np.ndarray, street: Street) -> None:
    """A vertical gradient from a bluish top to a paler horizon."""
    horizon = street.horizon
    top, bottom = np.array(_jitter(rng, (70, 130, 200), 30)), np.array(_jitter(rng, (180, 200, 225), 25))
    t = np.linspace(0.0, 1.0, horizon + 1)[:, None]
    image[: horizon + 1] = (top * (1 - t) + bottom * t).astype(np.uint8)[:, None, :]
    labels[: horizon + 1] = SKY


def _draw_ground(rng: np.random.Generator, image: np.ndarray, labels: np.ndarray, street: Street) -> Street:
    """Sidewalk everywhere below the horizon, with paving tiles, then the road trapezoid on top; the street with
    the road's edges."""
    height, width, horizon, vx = street.height, street.width, street.horizon, street.vx
    image[horizon:] = _jitter(rng, (175, 150, 160), 25)
    labels[horizon:] = SIDEWALK
    tile = max(3, height // 40)
    image[horizon::tile] = (np.asarray(image[horizon::tile], np.int16) - 35).clip(0, 255).astype(np.uint8)
    left, right = width * rng.uniform(0.0, 0.25), width * rng.uniform(0.75, 1.0)
    road = np.array([[vx - 3, horizon], [vx + 3, horizon], [right, height], [left, height]])
    _fill(image, labels, road, _jitter(rng, (95, 90, 100), 20), ROAD)
    for k in range(12):  # dashed centre line, narrowing with distance
        a, b = k / 12, (k + 0.5) / 12
        ya, yb = horizon + (height - horizon) * a**2, horizon + (height - horizon) * b**2
        xa, xb = vx + ((left + right) / 2 - vx) * a**2, vx + ((left + right) / 2 - vx) * b**2
        cv2.line(image, (int(xa), int(ya)), (int(xb), int(yb)), (220, 220, 210), max(1, int(4 * b)))
    return Street(height, width, horizon, vx, left, right)


def _draw_buildings(rng: np.random.Generator, image: np.ndarray, labels: np.ndarray, street: Street) -> None:
    """Buildings left and right of the vanishing point, standing on the horizon."""
    width, horizon, vx = street.width, street.horizon, street.vx
    for side_start, side_end in ((0, int(vx - width * 0.08)), (int(vx + width * 0.08), width)):
        x = side_start
        while x < side_end:
            w = int(width * rng.uniform(0.08, 0.2))
            _draw_building(
                rng, image, labels, x, min(x + w, side_end), int(horizon * rng.uniform(0.05, 0.7)), horizon + 2
            )
            x += w + int(rng.integers(0, max(1, width // 30)))


def _scene_objects(rng: np.random.Generator) -> list[tuple[str, float]]:
    """1-3 trees, poles, cars and people, each with its depth (0: horizon, 1: bottom), sorted far to near."""
    objects = []
    for kind, low, high in (("tree", 0.0, 0.25), ("pole", 0.1, 0.9), ("car", 0.2, 0.9), ("person", 0.15, 0.9)):
        for _ in range(int(rng.integers(1, 4))):
            objects.append((kind, rng.uniform(low, high)))
    return sorted(objects, key=lambda o: o[1])


def _draw_object(
    rng: np.random.Generator, image: np.ndarray, labels: np.ndarray, street: Street, kind: str, depth: float
) -> None:
    """One object at `depth`, sized by its distance below the horizon; cars on the road, the rest beside it."""
    height, width, horizon, vx = street.height, street.width, street.horizon, street.vx
    y = int(horizon + (height - horizon) * depth)
    scale = (y - horizon) / max(1, height - horizon)
    road_left = vx + (street.left - vx) * scale
    road_right = vx + (street.right - vx) * scale
    off_road = (
        road_left * rng.uniform(0.2, 0.9)
        if rng.random() < 0.5
        else road_right + (width - road_right) * rng.uniform(0.1, 0.8)
    )
    if kind == "tree":
        r = max(3, int(height * 0.25 * (0.3 + scale)))
        _draw_tree(rng, image, labels, int(off_road), y - 2 * r, r)
    elif kind == "pole":
        h, w = int(height * 0.6 * (0.3 + scale)), max(1, int(width * 0.008 * (0.5 + scale)))
        x = int(off_road)
        cv2.rectangle(image, (x, y - h), (x + w, y), _jitter(rng, (150, 150, 150), 30), -1)
        cv2.rectangle(labels, (x, y - h), (x + w, y), POLE, -1)
    elif kind == "car":
        w = max(6, int(width * 0.3 * scale))
        x = int(road_left + (road_right - road_left - w) * rng.uniform(0.0, 1.0))
        _draw_car(rng, image, labels, x, y, w)
    else:
        _draw_person(rng, image, labels, int(off_road), y, max(6, int(height * 0.45 * scale)))


def _draw_bonnet(rng: np.random.Generator, image: np.ndarray, labels: np.ndarray, street: Street) -> None:
    """The ego vehicle's bonnet at the bottom: ignored in training, as in Cityscapes."""
    height, width = street.height, street.width
    bonnet = int(height * rng.uniform(0.03, 0.08))
    hood = np.array([[0, height], [width * 0.1, height - bonnet], [width * 0.9, height - bonnet], [width, height]])
    _fill(image, labels, hood, _jitter(rng, (30, 30, 35), 10), EGO_VEHICLE)


def _camera(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """What the camera adds: an illumination gradient, sensor noise, slight blur."""
    width = image.shape[1]
    gain = np.linspace(rng.uniform(0.75, 1.1), rng.uniform(0.75, 1.1), width, dtype=np.float32)[None, :, None]
    noisy = image.astype(np.float32) * gain + rng.normal(0.0, 6.0, image.shape).astype(np.float32)
    return cv2.GaussianBlur(noisy.clip(0, 255).astype(np.uint8), (3, 3), 0)


def synthetic_label_ids(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One procedural street scene: (H, W, 3) uint8 RGB and (H, W) uint8 Cityscapes labelIds."""
    image = np.zeros((height, width, 3), np.uint8)
    labels = np.zeros((height, width), np.uint8)
    # Drawn back to front, each part from the same generator in this order (a frame depends on its seed only).
    street = Street(height, width, int(height * rng.uniform(0.35, 0.5)), width * rng.uniform(0.4, 0.6))
    _draw_sky(rng, image, labels, street)
    street = _draw_ground(rng, image, labels, street)
    _draw_buildings(rng, image, labels, street)
    for kind, depth in _scene_objects(rng):
        _draw_object(rng, image, labels, street, kind, depth)
    _draw_bonnet(rng, image, labels, street)
    return _camera(rng, image), labels


def frame_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one frame: depends only on (seed, split, index)."""
    return np.random.default_rng([seed, _SPLIT_STREAM.get(split, 3), index])


def synthetic_frame(
    index: int, height: int = 256, width: int = 512, seed: int = 0, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 (H, W, 3), Cityscapes trainId labels uint8 (H, W), 255 = ignore) without writing files."""
    image, label_ids = synthetic_label_ids(frame_rng(seed, split, index), height, width)
    return image, cityscapes_id_to_train_id()[label_ids]


def write_synthetic_dataset(
    out: str | Path, counts: dict[str, int], height: int = 256, width: int = 512, seed: int = 0
) -> list[Path]:
    """Write `counts[split]` frames per split under `out` in the Cityscapes layout; returns the image paths."""
    out = Path(out)
    remove_stale_temporaries(out)  # left by a killed run's writes
    written = []
    for split, count in counts.items():
        city = CITIES[split]
        for index in range(count):
            image, label_ids = synthetic_label_ids(frame_rng(seed, split, index), height, width)
            stem = f"{city}_{0:06d}_{index:06d}"
            image_path = out / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"
            label_path = out / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png"
            for path, array in ((image_path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)), (label_path, label_ids)):
                with atomic_path(path) as tmp:
                    if not cv2.imwrite(str(tmp), array):
                        raise DataError(f"cannot write {path}")
            written.append(image_path)
    return written
