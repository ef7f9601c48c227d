"""The ground grid's extents and what each class costs in it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fast_scnn_core.errors import ConfigError
from fast_scnn_core.labels import IGNORE_INDEX, ClassSet, mask_class_ids

# Largest grid, in cells, the node builds: bounded memory (per camera about 13 bytes a cell for the backward
# table, e.g. 13 MB for 1,000,000 cells = 50 m x 50 m at 0.05 m).
MAX_CELLS = 1_000_000
UNKNOWN = -1  # OccupancyGrid's value for a cell nobody knows
FREE, LETHAL = 0, 100


@dataclass(frozen=True)
class GridSpec:
    """A grid of square cells in the base frame: x from x_min to x_max, y from y_min to y_max (metres)."""

    resolution: float
    x_min: float
    x_max: float
    y_min: float
    y_max: float

    def __post_init__(self) -> None:
        if not self.resolution > 0:
            raise ConfigError(f"ground.resolution must be > 0 m; got {self.resolution}")
        for axis, low, high in (("x", self.x_min, self.x_max), ("y", self.y_min, self.y_max)):
            if not high > low:
                raise ConfigError(f"ground.{axis}_max ({high}) must be greater than ground.{axis}_min ({low})")
            cells = (high - low) / self.resolution
            if abs(cells - round(cells)) > 1e-6 * max(cells, 1.0):
                raise ConfigError(
                    f"ground.{axis}_max - ground.{axis}_min = {high - low:g} m is not a multiple of ground.resolution "
                    f"{self.resolution:g} m"
                )
        if self.width * self.height > MAX_CELLS:
            raise ConfigError(
                f"ground grid of {self.width} x {self.height} cells is over the limit of {MAX_CELLS:,} cells: make it "
                "smaller or coarser (ground.resolution)"
            )

    @property
    def width(self) -> int:
        """Cells along x (OccupancyGrid's info.width)."""
        return round((self.x_max - self.x_min) / self.resolution)

    @property
    def height(self) -> int:
        """Cells along y (OccupancyGrid's info.height)."""
        return round((self.y_max - self.y_min) / self.resolution)

    def cell_centres(self) -> np.ndarray:
        """(height, width, 2) x, y of each cell's centre; row = y index, as OccupancyGrid's data is laid out."""
        xs = self.x_min + (np.arange(self.width) + 0.5) * self.resolution
        ys = self.y_min + (np.arange(self.height) + 0.5) * self.resolution
        return np.stack(np.meshgrid(xs, ys), axis=-1)


@dataclass(frozen=True, eq=False)
class CostTable:
    """class id -> cost (-1 unknown, 0 free, 1..100), and which classes end a free run as obstacles."""

    table: np.ndarray  # (256,) int8: ignore and unknown ids -> -1
    obstacle_cost: int  # classes costing this or more are obstacles

    @classmethod
    def from_entries(cls, classes: ClassSet, entries: list[str], default_cost: int, obstacle_cost: int) -> CostTable:
        """`entries` like ["road=0", "sky=-1"] (class names or their topic names); other classes cost `default_cost`."""
        for name, value in (("ground.default_cost", default_cost), ("ground.obstacle_cost", obstacle_cost)):
            if not (value == UNKNOWN or FREE <= value <= LETHAL) or (name == "ground.obstacle_cost" and value < 1):
                raise ConfigError(f"{name} must be -1 or 0..100 (obstacle_cost 1..100); got {value}")
        table = np.full(256, UNKNOWN, dtype=np.int8)
        table[: classes.num_classes] = default_cost
        table[IGNORE_INDEX] = UNKNOWN
        for entry in entries:
            class_id = _class_id(classes, entry)
            table[class_id] = _cost(entry)
        return cls(table, obstacle_cost)

    @property
    def traversable(self) -> np.ndarray:
        """(256,) bool: classes a free run goes on through (known, below obstacle_cost)."""
        return (self.table >= FREE) & (self.table < self.obstacle_cost)

    @property
    def obstacle(self) -> np.ndarray:
        return self.table >= self.obstacle_cost


def _class_id(classes: ClassSet, entry: str) -> int:
    name, sep, _ = entry.rpartition("=")
    if not sep:
        raise ConfigError(f"ground.costs: {entry!r} is not CLASS=COST (e.g. road=0, sky=-1)")
    try:
        return mask_class_ids(classes, [name.strip()])[0]
    except ValueError:
        raise ConfigError(
            f"ground.costs: {entry!r} names no class of this checkpoint; its classes are {list(classes.names)}"
        ) from None


def _cost(entry: str) -> int:
    text = entry.rpartition("=")[2].strip()
    try:
        cost = int(text)
    except ValueError:
        cost = None
    if cost is None or not (cost == UNKNOWN or FREE <= cost <= LETHAL):
        raise ConfigError(f"ground.costs: {entry!r}: the cost must be -1 (unknown) or 0..100")
    return cost
