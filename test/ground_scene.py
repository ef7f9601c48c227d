"""The ground tests' scene (issue 19): a camera of known pose over a ground-truth map, and the labels it sees,
ray-cast pixel by pixel, independently of the projection under test.

Camera: fx = fy = 500, cx = 512, cy = 256 at 1024x512, 1 m above the ground, pitched 20 degrees down.
Map: road where |y| < 1, grass elsewhere; a box on the road: x 4..4.5, y -0.5..0.5, 0.5 m high; sky above.
"""

from __future__ import annotations

import warnings

import numpy as np

from fast_scnn_core.ground.camera import PinholeCamera
from fast_scnn_core.ground.grid import CostTable, GridSpec
from fast_scnn_core.ground.pose import CameraPose
from fast_scnn_core.labels import IGNORE_INDEX, ClassSet

ROAD, GRASS, BOX, SKY = range(4)
CLASSES = ClassSet(("road", "grass", "box", "sky"), ((128, 64, 128), (0, 200, 0), (200, 0, 0), (70, 130, 180)))
COSTS = ["road=0", "grass=30", "box=100", "sky=-1"]
COST_OF = {ROAD: 0, GRASS: 30, BOX: 100}
BOX_MIN, BOX_MAX = np.array([4.0, -0.5, 0.0]), np.array([4.5, 0.5, 0.5])
K = [500.0, 0.0, 512.0, 0.0, 500.0, 256.0, 0.0, 0.0, 1.0]
WIDTH, HEIGHT = 1024, 512
GRID = GridSpec(0.05, 0.0, 6.0, -3.0, 3.0)
RANGE = 6.0


def camera(d: tuple[float, ...] = ()) -> PinholeCamera:
    return PinholeCamera.from_camera_info((WIDTH, HEIGHT), K, list(d), "plumb_bob")


def pose(yaw_deg: float = 0.0) -> CameraPose:
    return CameraPose.looking(1.0, 20.0, yaw_deg)


def costs() -> CostTable:
    return CostTable.from_entries(CLASSES, COSTS, 100, 100)


def ground_class(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The map's class of ground points (the box's footprint is BOX)."""
    inside = (x >= BOX_MIN[0]) & (x <= BOX_MAX[0]) & (y >= BOX_MIN[1]) & (y <= BOX_MAX[1])
    return np.where(inside, BOX, np.where(np.abs(y) < 1.0, ROAD, GRASS))


def box_hit(origin: np.ndarray, rays: np.ndarray) -> np.ndarray:
    """Distance along each ray (N, 3) to the box (slab method); inf where it misses."""
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rays of no pixel (NaN): all-NaN rows
        t1 = (BOX_MIN - origin) / rays
        t2 = (BOX_MAX - origin) / rays
        near = np.nanmax(np.minimum(t1, t2), axis=1)
        far = np.nanmin(np.maximum(t1, t2), axis=1)
    return np.where((far >= near) & (far > 0), np.maximum(near, 0.0), np.inf)


def render(cam: PinholeCamera, camera_pose: CameraPose) -> np.ndarray:
    """(H, W) uint8 labels: each pixel's ray (through the lens model) meets the box, the ground or nothing (sky)."""
    u, v = np.meshgrid(np.arange(cam.width, dtype=np.float64), np.arange(cam.height, dtype=np.float64))
    rays = cam.rays(np.column_stack([u.ravel(), v.ravel()])) @ camera_pose.rotation.T
    origin = camera_pose.translation
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = np.where(rays[:, 2] < 0, -origin[2] / rays[:, 2], np.inf)
    t_box = box_hit(origin, rays)
    hit = origin + np.where(np.isfinite(t_ground), t_ground, 0.0)[:, None] * rays
    labels = np.where(np.isfinite(t_ground), ground_class(hit[:, 0], hit[:, 1]), SKY)
    labels = np.where(t_box < t_ground, BOX, labels)
    labels = np.where(np.isnan(rays[:, 2]), IGNORE_INDEX, labels)  # no ray (beyond a lens's fold)
    return labels.reshape(cam.height, cam.width).astype(np.uint8)


def occluded(camera_pose: CameraPose, points: np.ndarray) -> np.ndarray:
    """Ground points (N, 3) the box hides from the camera (the segment camera -> point passes through it)."""
    rays = points - camera_pose.translation
    return box_hit(camera_pose.translation, rays) < 1.0 - 1e-9
