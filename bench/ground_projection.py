"""The node's ground projection per frame: labels -> grid + obstacle and free points, and the messages built
from them (OccupancyGrid, two PointCloud2), against the issue's budget of 2 ms for 512x1024 labels into a
6 m x 6 m grid at 0.05 m (120 x 120 cells).

    python bench/ground_projection.py [--size 512x1024] [--frames 300] [--resolution 0.05]

The camera: fx = fy = 500 at 1024x512 (scaled to --size), 1 m above the ground, pitched 20 degrees down;
labels: road where |y| < 1, grass elsewhere, a 1 m wide obstacle 4 m ahead, sky above the horizon (drawn per
pixel through the same camera model). Also times what happens only when the camera model or its pose
changes: the backward table (and, once per camera model, the table of pixel rays). Prints a markdown table;
docs/benchmarks.md records the numbers.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from fast_scnn_core.ground.camera import PinholeCamera
from fast_scnn_core.ground.grid import CostTable, GridSpec
from fast_scnn_core.ground.pose import CameraPose
from fast_scnn_core.ground.projection import GroundProjector
from fast_scnn_core.labels import ClassSet
from fast_scnn_core.limits import parse_size

CLASSES = ClassSet(("road", "grass", "obstacle", "sky"), ((128, 64, 128), (0, 200, 0), (200, 0, 0), (70, 130, 180)))


def scene(projector: GroundProjector) -> np.ndarray:
    """Labels of the benchmark's scene as the camera sees it (flat ground, an obstacle's face 4 m ahead)."""
    height, width = projector.camera.height, projector.camera.width
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    points, down = projector.pixel_to_ground(np.column_stack([u.ravel(), v.ravel()]))
    x, y = points[:, 0], points[:, 1]
    labels = np.where(np.abs(y) < 1.0, 0, 1)
    labels = np.where((x > 4.0) & (np.abs(y) < 0.5 * x / 4.0), 2, labels)  # the face, projected beyond its foot
    return np.where(down, labels, 3).reshape(height, width).astype(np.uint8)


def timed(function, repeat: int) -> np.ndarray:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return np.array(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512x1024", help="labels HEIGHTxWIDTH")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--resolution", type=float, default=0.05)
    args = parser.parse_args()
    height, width = parse_size(args.size)
    camera = PinholeCamera.from_camera_info((1024, 512), [500.0, 0, 512, 0, 500, 256, 0, 0, 1], [], "").scaled(
        width, height
    )
    grid = GridSpec(args.resolution, 0.0, 6.0, -3.0, 3.0)
    costs = CostTable.from_entries(CLASSES, ["road=0", "grass=30", "sky=-1"], 100, 100)
    pose = CameraPose.looking(1.0, 20.0)
    start = time.perf_counter()
    _ = camera.pixel_rays
    rays_ms = (time.perf_counter() - start) * 1e3
    build = timed(lambda: GroundProjector(camera, pose, grid, costs, 6.0), 20)
    projector = GroundProjector(camera, pose, grid, costs, 6.0)
    labels = scene(projector)
    timed(lambda: projector.project(labels), 20)  # warm caches
    project = timed(lambda: projector.project(labels), args.frames)
    rows = [("grid + both point sets (per frame)", project)]
    try:
        from std_msgs.msg import Header

        from fast_scnn_ros.ground import occupancy_grid, point_cloud

        def with_messages() -> None:
            result = projector.project(labels)
            occupancy_grid(result.grid, grid, Header())
            point_cloud(result.obstacle_points, result.obstacle_labels, Header())
            point_cloud(result.free_points, result.free_labels, Header())

        rows.append(("... and their three messages (per frame)", timed(with_messages, args.frames)))
    except ImportError as exc:
        print(f"(no ROS messages: {exc})")
    rows.append(("backward table (camera model or pose changed)", build))
    result = projector.project(labels)
    print(
        f"{platform.processor() or platform.machine()}, labels {height}x{width}, grid {grid.width}x{grid.height} cells"
    )
    print(f"obstacle points {len(result.obstacle_points)}, free points {len(result.free_points)}, "
          f"known cells {(result.grid >= 0).sum()}; pixel rays once per camera model: {rays_ms:.0f} ms\n")  # fmt: skip
    print("| step | median ms | p90 ms |\n|---|---|---|")
    for name, times in rows:
        print(f"| {name} | {np.median(times):.2f} | {np.percentile(times, 90):.2f} |")


if __name__ == "__main__":
    main()
