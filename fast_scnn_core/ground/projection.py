"""Labels -> ground grid and obstacle/free-space points, through a backward table built once per camera model
and pose.

The grid: each cell's centre (on the ground, z = 0 of the base frame) is projected into the image once
(`cv2.projectPoints`, distortion included); per frame a cell takes the cost of the class of that pixel
(a gather). Cells no pixel sees (behind the camera, outside the view, beyond `max_range`) and cells of
classes that cost -1 (sky, ignore) are -1.

The flat-ground assumption puts every pixel on the ground: an obstacle's upright face would smear over
the cells behind it up to the horizon. So each image column's nearest obstacle pixel is its contact
with the ground; an obstacle-class cell farther than its column's contact (plus one cell) is what the
obstacle hides: -1, not lethal.

The points: per image column, scanning up from the bottom row, the free run (traversable classes);
the first pixel after it, when an obstacle class, gives an obstacle point (its ground contact, for
Nav2's ObstacleLayer marking); the run's far end gives a free point (clearing), clipped to
`max_range` along its ray when the run goes on beyond it (or above the horizon).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fast_scnn_core.errors import ConfigError
from fast_scnn_core.ground.camera import PinholeCamera
from fast_scnn_core.ground.grid import UNKNOWN, CostTable, GridSpec
from fast_scnn_core.ground.pose import CameraPose

MIN_HEIGHT = 0.01  # m: a camera closer to the ground (or below it) sees no ground plane worth projecting


class GroundGeometryError(ConfigError):
    """A camera model and pose that cannot see the ground grid: the reason, for the log and diagnostics."""


@dataclass
class GroundResult:
    """One frame on the ground: the grid's values and the two point sets (base frame, z = 0)."""

    grid: np.ndarray  # (height, width) int8, row = y index
    obstacle_points: np.ndarray  # (N, 3) float32
    obstacle_labels: np.ndarray  # (N,) uint8 class ids
    free_points: np.ndarray  # (M, 3) float32
    free_labels: np.ndarray  # (M,) uint8


class GroundProjector:
    """The backward table of one camera model and pose onto one grid; `project(labels)` per frame."""

    def __init__(self, camera: PinholeCamera, pose: CameraPose, grid: GridSpec, costs: CostTable, max_range: float):
        self.camera, self.pose, self.grid, self.costs, self.max_range = camera, pose, grid, costs, max_range
        height = float(pose.translation[2])
        if height < MIN_HEIGHT:
            raise GroundGeometryError(
                f"the camera is {'below' if height < 0 else 'on'} the ground: its optical centre is at "
                f"z = {height:.3f} m in the base frame (check the pose: tf or ground.camera_translation)"
            )
        self._obstacle = costs.obstacle
        self._blocks, self._unknown = ~costs.traversable, costs.table == UNKNOWN  # what ends or precedes a free run
        if not np.any((camera.border_rays @ pose.rotation.T)[:, 2] < 0):
            raise GroundGeometryError(
                "no ground visible: every pixel's ray points at or above the horizon (the optical axis is pitched "
                "up, or the camera is upside down: check the pose's rotation)"
            )
        self._build_table()

    # ---- geometry -------------------------------------------------------------------------------

    def pixel_to_ground(self, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) pixels -> ((N, 3) ground points, (N,) bool: the ray meets the ground in front of the camera)."""
        rays = self.camera.rays(uv) @ self.pose.rotation.T
        return self._intersect(rays)

    def _intersect(self, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = self.pose.translation
        down = rays[:, 2] < -1e-12
        scale = np.where(down, -t[2] / np.where(down, rays[:, 2], -1.0), np.nan)
        points = t + scale[:, None] * rays
        points[:, 2] = 0.0
        return points, down

    def ground_to_pixel(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) points in the base frame -> ((N, 2) pixels, (N,) bool: in front of the camera, within the lens)."""
        optical = (np.asarray(points, dtype=np.float64) - self.pose.translation) @ self.pose.rotation
        z = optical[:, 2]
        front = z > 1e-9
        uv = np.full((len(optical), 2), np.nan)
        radius = np.linalg.norm(optical[front, :2] / z[front, None], axis=1)
        front[front] = radius <= self.camera.max_radius
        uv[front] = self.camera.project(optical[front])
        return uv, front

    def _distance(self, points: np.ndarray) -> np.ndarray:
        """Horizontal distance from the camera's foot point."""
        return np.hypot(points[..., 0] - self.pose.translation[0], points[..., 1] - self.pose.translation[1])

    def _build_table(self) -> None:
        grid, camera = self.grid, self.camera
        centres = grid.cell_centres().reshape(-1, 2)
        points = np.column_stack([centres, np.zeros(len(centres))])
        uv, seen = self.ground_to_pixel(points)
        pixel = np.full(len(points), -1, dtype=np.int64)
        col, row = np.rint(uv[seen, 0]), np.rint(uv[seen, 1])
        inside = (col >= 0) & (col < camera.width) & (row >= 0) & (row < camera.height)
        seen[seen] = inside
        pixel[seen] = (row[inside] * camera.width + col[inside]).astype(np.int64)
        distance = self._distance(points)
        if self.max_range > 0:
            seen &= distance <= self.max_range
        if not seen.any():
            raise GroundGeometryError(
                f"no cell of the ground grid is in view (x {grid.x_min:g}..{grid.x_max:g} m, y {grid.y_min:g}.."
                f"{grid.y_max:g} m, range {self.max_range:g} m): the camera looks elsewhere"
            )
        self._cells = np.flatnonzero(seen)  # flat grid indices of the seen cells
        self._cell_pixels = pixel[seen]
        self._cell_columns = self._cell_pixels % camera.width
        self._cell_distance = distance[seen]
        self._shape = (camera.height, camera.width)
        self._top = self._top_row()

    def _top_row(self) -> int:
        """The highest image row (a margin above it) whose pixels can meet the ground within range: the column scan
        starts there, since whatever lies above is beyond range or sky (sampled every 16th column, 8 rows spare)."""
        height, width = self._shape
        columns = np.unique(np.append(np.arange(0, width, 16), width - 1))
        rows, cols = np.meshgrid(np.arange(height), columns, indexing="ij")
        points, down = self._intersect(self._rays_at(rows.ravel(), cols.ravel()))
        reach = self._in_range(points, down).reshape(rows.shape).any(axis=1)
        return max(int(np.argmax(reach)) - 8, 0) if reach.any() else height - 1

    # ---- per frame ------------------------------------------------------------------------------

    def project(self, labels: np.ndarray) -> GroundResult:
        """The grid and points of one frame's labels ((height, width) uint8 class ids at the camera's size)."""
        if labels.shape != self._shape or labels.dtype != np.uint8:
            raise ValueError(f"labels {labels.shape} {labels.dtype}: expected {self._shape} uint8")
        first, end = self._column_scan(labels)
        columns, points, contact_classes = self._contacts(labels, first)
        distance = self._distance(points)
        contact = np.full(labels.shape[1], np.inf)  # per column: how far its nearest obstacle meets the ground
        contact[columns] = distance
        grid = np.full(self.grid.width * self.grid.height, UNKNOWN, dtype=np.int8)
        classes = labels.ravel()[self._cell_pixels]
        costs = self.costs.table[classes]
        hidden = self._obstacle[classes] & (self._cell_distance > contact[self._cell_columns] + self.grid.resolution)
        costs[hidden] = UNKNOWN
        grid[self._cells] = costs
        # Obstacle points: the contacts that end a free run, within range.
        marked = (end[columns] >= 0) & ((distance <= self.max_range) if self.max_range > 0 else True)
        obstacles, obstacle_labels = points[marked].astype(np.float32), contact_classes[marked]
        free, free_labels = self._free_points(labels, end)
        return GroundResult(
            grid.reshape(self.grid.height, self.grid.width), obstacles, obstacle_labels, free, free_labels
        )

    def _column_scan(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per column, scanning up from the bottom row past unknown pixels there (the ego vehicle's bonnet, ignore
        id): the row of the first pixel after the free run (-1: the run reaches the top row scanned) and the row of
        the run's far end (-1: no free run)."""
        scanned = labels[self._top :][::-1]  # rows from the bottom
        rows, columns = scanned.shape[0], np.arange(labels.shape[1])
        blocked = np.take(self._blocks, scanned)  # the per-frame cost: one table lookup and one argmax
        lead = np.zeros(labels.shape[1], dtype=np.intp)
        if np.take(self._unknown, scanned[0]).any():  # some column starts unknown: skip those pixels first
            known = ~np.take(self._unknown, scanned)
            lead = np.argmax(known, axis=0)
            lead[~known[lead, columns]] = rows  # unknown all the way up
            stop = np.argmax(blocked & (np.arange(rows)[:, None] >= lead), axis=0)
        else:
            stop = np.argmax(blocked, axis=0)
        open_top = ~blocked[stop, columns] | (stop < lead)  # nothing blocks above the run's start
        stop[open_top] = rows
        height = labels.shape[0]
        first = np.where(open_top, -1, height - 1 - stop)
        end = np.where(stop > lead, height - stop, -1)  # the last traversable row of the run
        return first, end

    def _rays_at(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """Ray directions in the base frame of these pixels (from the camera's table of pixel rays)."""
        xy = self.camera.pixel_rays[rows * self._shape[1] + columns].astype(np.float64)
        r = self.pose.rotation  # r @ (x, y, 1), written out: numpy's small matmul is slow on (N, 3) arrays
        return xy[:, :1] * r[:, 0] + xy[:, 1:] * r[:, 1] + r[:, 2]

    def _contacts(self, labels: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The columns whose first pixel after the free run is an obstacle class that meets the ground: those columns,
        the ground points of those pixels, their classes."""
        columns = np.flatnonzero(first >= 0)
        classes = labels[first[columns], columns]
        obstacle = self._obstacle[classes]
        columns, classes = columns[obstacle], classes[obstacle]
        points, down = self._intersect(self._rays_at(first[columns], columns))
        return columns[down], points[down], classes[down]

    def _in_range(self, points: np.ndarray, down: np.ndarray) -> np.ndarray:
        return down & ((self._distance(points) <= self.max_range) if self.max_range > 0 else True)

    def _free_points(self, labels: np.ndarray, end: np.ndarray):
        columns = np.flatnonzero(end >= 0)
        rows = end[columns]  # the run's far end
        rays = self._rays_at(rows, columns)
        points, down = self._intersect(rays)
        if self.max_range > 0:
            far = ~self._in_range(points, down)
            horizontal = rays[far, :2]
            length = np.linalg.norm(horizontal, axis=1)
            ok = length > 1e-9
            clipped = self.pose.translation[:2] + self.max_range * horizontal[ok] / length[ok, None]
            far_index = np.flatnonzero(far)
            points[far_index[ok], :2] = clipped
            points[far_index[ok], 2] = 0.0
            keep = ~far
            keep[far_index[ok]] = True
        else:
            keep = down
        return points[keep].astype(np.float32), labels[rows[keep], columns[keep]]


class GroundProjectors:
    """One camera's projector, rebuilt only when its camera model or pose (beyond POSE_TOLERANCE) changes."""

    def __init__(self, grid: GridSpec, costs: CostTable, max_range: float) -> None:
        self.grid, self.costs, self.max_range = grid, costs, max_range
        self._projector: GroundProjector | None = None
        self.builds = 0

    def get(self, camera: PinholeCamera, pose: CameraPose) -> GroundProjector:
        """The projector for this camera model and pose (GroundGeometryError: why there is none)."""
        current = self._projector
        if current is not None and camera.same_as(current.camera):
            camera = current.camera  # keeps its table of pixel rays
        if current is None or camera is not current.camera or not pose.close_to(current.pose):
            self._projector = None  # a build that fails (GroundGeometryError) leaves no stale projector behind
            self._projector = GroundProjector(camera, pose, self.grid, self.costs, self.max_range)
            self.builds += 1
        return self._projector


def fuse(grids: list[np.ndarray]) -> np.ndarray:
    """Several cameras' grids of the same extents as one: the highest known cost of each cell, -1 where no camera
    knows it (costs are >= 0, so the maximum is the highest known one)."""
    return np.max(np.stack(grids), axis=0) if len(grids) > 1 else grids[0]
