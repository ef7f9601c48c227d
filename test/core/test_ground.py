"""Ground projection (fast_scnn_core.ground): geometry against the issue's worked numbers, the grid and points
of ray-cast labels against the ground-truth map, the bad configurations' reasons."""

from __future__ import annotations

import re

import numpy as np
import pytest
from ground_scene import (
    BOX,
    BOX_MAX,
    BOX_MIN,
    CLASSES,
    COST_OF,
    GRID,
    HEIGHT,
    RANGE,
    WIDTH,
    camera,
    costs,
    ground_class,
    occluded,
    pose,
    render,
)

from fast_scnn_core.errors import ConfigError
from fast_scnn_core.ground.camera import PinholeCamera
from fast_scnn_core.ground.grid import MAX_CELLS, CostTable, GridSpec
from fast_scnn_core.ground.pose import CameraPose
from fast_scnn_core.ground.projection import GroundGeometryError, GroundProjector, GroundProjectors, fuse


def projector(cam: PinholeCamera | None = None, camera_pose: CameraPose | None = None) -> GroundProjector:
    return GroundProjector(cam or camera(), camera_pose or pose(), GRID, costs(), RANGE)


def test_worked_geometry_of_the_issue() -> None:
    ground = projector()
    points, valid = ground.pixel_to_ground(np.array([[512.0, 256.0], [512.0, 511.0], [512.0, 73.9], [512.0, 74.1]]))
    assert valid.tolist() == [True, True, False, True]  # the horizon is row 74
    assert points[0, 0] == pytest.approx(2.747, abs=5e-4) and points[0, 1] == pytest.approx(0.0, abs=1e-12)
    assert points[1, 0] == pytest.approx(0.932, abs=5e-4)


K1 = (-0.2, 0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("d", [(), K1], ids=["pinhole", "k1=-0.2"])
def test_pixel_ground_pixel_round_trip(d: tuple[float, ...]) -> None:
    ground = projector(camera(d))
    rng = np.random.default_rng(0)
    uv = np.column_stack([rng.uniform(0, WIDTH - 1, 2000), rng.uniform(120, HEIGHT - 1, 2000)])
    points, valid = ground.pixel_to_ground(uv)
    # k1 = -0.2 alone folds at a normalised radius of 0.86: the corners of this 91-degree image have no ray
    inside = np.hypot((uv[:, 0] - 512) / 500, (uv[:, 1] - 256) / 500) < (0.85 if d else 10)
    assert valid[inside].all() and (valid.mean() < 0.95 if d else valid.all())
    back, seen = ground.ground_to_pixel(points[valid])
    assert seen.all()
    assert np.abs(back - uv[valid]).max() < 1e-6


def test_distortion_changes_where_pixels_land() -> None:
    """k1 = -0.2 moves a pixel near the bottom edge: the model is not ignoring D."""
    pixel = np.array([[512.0 - 300.0, HEIGHT - 1.0]])
    plain, _ = projector().pixel_to_ground(pixel)
    distorted, ok = projector(camera(K1)).pixel_to_ground(pixel)
    assert ok.all() and np.linalg.norm(plain - distorted) > 0.05


def cells_right(d: tuple[float, ...] = ()) -> tuple[float, np.ndarray, np.ndarray]:
    """Share of visible cells whose value is right (+-1 cell), the grid, and the visible mask."""
    cam, camera_pose = camera(d), pose()
    result = projector(cam, camera_pose).project(render(cam, camera_pose))
    centres = GRID.cell_centres()
    points = np.concatenate([centres, np.zeros((*centres.shape[:2], 1))], axis=-1).reshape(-1, 3)
    truth = np.vectorize(COST_OF.get)(ground_class(points[:, 0], points[:, 1])).reshape(result.grid.shape)
    seen = result.grid.ravel() >= 0
    visible = (seen & ~occluded(camera_pose, points)).reshape(truth.shape)
    padded = np.pad(truth, 1, mode="edge")
    around = np.stack(
        [
            padded[1 + dy : 1 + dy + truth.shape[0], 1 + dx : 1 + dx + truth.shape[1]]
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
        ]
    )
    right = (around == result.grid[None]).any(axis=0)
    return float(right[visible].mean()), result.grid, visible


@pytest.mark.parametrize("d", [(), K1], ids=["pinhole", "k1=-0.2"])
def test_grid_of_ray_cast_labels_matches_the_map(d: tuple[float, ...]) -> None:
    share, _, visible = cells_right(d)
    assert visible.sum() > 4000
    assert share >= 0.99


def test_unseen_cells_are_unknown() -> None:
    _, grid, _ = cells_right()
    centres = GRID.cell_centres()
    x, y = centres[..., 0], centres[..., 1]
    assert (grid[x < 0.9] == -1).all()  # closer than the bottom row (0.932 m)
    assert (grid[np.hypot(x, y) > RANGE + 0.05] == -1).all()
    camera_pose = pose()  # cells whose centre a plain pinhole puts outside the image (a cell's margin)
    optical = (np.stack([x, y, np.zeros_like(x)], axis=-1) - camera_pose.translation) @ camera_pose.rotation
    u = 500 * optical[..., 0] / optical[..., 2] + 512
    outside = (u < -0.5 - 30) | (u > WIDTH - 0.5 + 30)
    assert outside.sum() > 1000 and (grid[outside] == -1).all()


def test_the_box_front_is_lethal_and_its_shadow_unknown() -> None:
    _, grid, _ = cells_right()
    centres = GRID.cell_centres()
    x, y = centres[..., 0], centres[..., 1]
    front = (x > 4.0) & (x < 4.05) & (np.abs(y) < 0.45)
    assert (grid[front] == 100).all()
    shadow = (x > 4.2) & (x < 5.5) & (np.abs(y) < 0.3)
    assert (grid[shadow] == -1).all()  # what the box hides, not a lethal smear to the horizon


def test_obstacle_points_are_the_box_ground_contact() -> None:
    cam, camera_pose = camera(), pose()
    labels = render(cam, camera_pose)
    unlimited = GroundProjector(cam, camera_pose, GRID, costs(), 0.0)  # the box's top (x >= 8 m) would be in range
    points, classes = unlimited.project(labels).obstacle_points, unlimited.project(labels).obstacle_labels
    assert len(points) > 50 and (classes == BOX).all() and (points[:, 2] == 0).all()
    assert points[:, 0].max() < 7.0  # nothing from the box's top
    contact = np.abs(points[:, 0] - BOX_MIN[0]) <= GRID.resolution
    # the exceptions: the few columns at the front face's slanted side edges, where its bottom is out of view
    assert contact.mean() >= 0.95 and (np.abs(points[~contact, 1]) > BOX_MAX[1] - 2 * GRID.resolution).all()
    assert np.abs(points[contact, 1]).max() <= BOX_MAX[1] + GRID.resolution
    free = projector(cam, camera_pose).project(labels).free_points
    at_box = (np.abs(free[:, 0] - BOX_MIN[0]) <= GRID.resolution) & (np.abs(free[:, 1]) <= BOX_MAX[1] + 0.05)
    assert at_box.sum() > 50 and at_box[np.abs(free[:, 1]) < 0.4].all()  # the free run ends at the box
    at_range = np.abs(np.hypot(free[:, 0], free[:, 1]) - RANGE) < 1e-3  # elsewhere free up to the range: clipped
    edges = np.hypot(free[:, 0] - BOX_MIN[0], free[:, 1]) < 1.3  # the face's side edges again
    assert at_range.sum() > 500 and (at_box | at_range | edges).all() and (~at_box & ~at_range).sum() < 10


def test_a_half_size_camera_info_gives_the_same_metres() -> None:
    half = PinholeCamera.from_camera_info(
        (WIDTH // 2, HEIGHT // 2), [250.0, 0, 256.0, 0, 250.0, 128.0, 0, 0, 1], [], ""
    )
    scaled = half.scaled(WIDTH, HEIGHT)
    labels = render(camera(), pose())
    assert np.allclose(scaled.k, camera().k)
    np.testing.assert_array_equal(projector(scaled).project(labels).grid, projector().project(labels).grid)


def test_binning_and_roi_follow_image_geometry() -> None:
    binned = PinholeCamera.from_camera_info(
        (2048, 1024), [1000.0, 0, 1024, 0, 1000, 512, 0, 0, 1], [], "", binning=(2, 2)
    )
    assert (binned.width, binned.height) == (1024, 512) and np.allclose(binned.k, camera().k)
    roi = PinholeCamera.from_camera_info(
        (1224, 612), [500.0, 0, 612, 0, 500, 306, 0, 0, 1], [], "", roi=(100, 50, 1024, 512)
    )
    assert (roi.width, roi.height) == (1024, 512) and np.allclose(roi.k, camera().k)


@pytest.mark.parametrize(
    ("camera_pose", "reason"),
    [
        (CameraPose.looking(-0.2, 20.0), "below the ground"),
        (CameraPose.looking(1.0, -60.0), "no ground visible"),
        (CameraPose.looking(1.0, 20.0, yaw_deg=180.0), "no cell of the ground grid is in view"),
    ],
)
def test_bad_geometry_is_refused_with_its_reason(camera_pose: CameraPose, reason: str) -> None:
    with pytest.raises(GroundGeometryError, match=reason):
        projector(camera_pose=camera_pose)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (dict(resolution=0.05, x_min=0, x_max=6.02, y_min=-3, y_max=3), "not a multiple"),
        (dict(resolution=0.01, x_min=-10, x_max=10, y_min=-10, y_max=10), f"over the limit of {MAX_CELLS:,}"),
        (dict(resolution=0.05, x_min=1, x_max=1, y_min=-3, y_max=3), "greater than"),
        (dict(resolution=0, x_min=0, x_max=6, y_min=-3, y_max=3), "resolution"),
    ],
)
def test_bad_grids_are_refused(spec: dict, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        GridSpec(**spec)


@pytest.mark.parametrize(
    ("entries", "reason"),
    [(["tree=0"], "names no class"), (["road=150"], "-1 .* 0..100"), (["road"], "CLASS=COST"), (["road=x"], "0..100")],
)
def test_bad_cost_tables_are_refused(entries: list[str], reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        CostTable.from_entries(CLASSES, entries, 100, 100)


def test_cost_table_maps_ignore_and_unknown_ids_to_unknown() -> None:
    table = CostTable.from_entries(CLASSES, ["road=0", "sky=-1"], 70, 100).table
    assert table[:5].tolist() == [0, 70, 70, -1, -1] and table[255] == -1


def test_projectors_are_rebuilt_only_when_the_camera_or_pose_changes() -> None:
    cache = GroundProjectors(GRID, costs(), RANGE)
    first = cache.get(camera(), pose())
    assert cache.get(camera(), CameraPose(pose().rotation, pose().translation + 5e-4)) is first  # within tolerance
    assert cache.builds == 1
    moved = cache.get(camera(), CameraPose.looking(1.0, 21.0))  # a pan-tilt camera tilting 1 degree
    assert moved is not first and cache.builds == 2
    cache.get(camera().scaled(512, 256), CameraPose.looking(1.0, 21.0))
    assert cache.builds == 3


def test_fused_grid_takes_the_highest_known_cost() -> None:
    a = np.array([[-1, 0, 30], [-1, -1, 100]], dtype=np.int8)
    b = np.array([[0, -1, 0], [-1, 30, 0]], dtype=np.int8)
    assert fuse([a, b]).tolist() == [[0, 0, 30], [-1, 30, 100]]


def test_quaternion_round_trip() -> None:
    camera_pose = CameraPose.looking(1.2, 15.0, yaw_deg=37.0)
    again = CameraPose.from_quaternion(camera_pose.translation, camera_pose.quaternion())
    assert np.allclose(again.rotation, camera_pose.rotation, atol=1e-12)
    with pytest.raises(ConfigError, match="quaternion"):
        CameraPose.from_quaternion((0, 0, 1), (0, 0, 0, 0))


def test_the_documented_parameter_pose_is_the_documented_camera() -> None:
    """docs/ros.md: "A camera 1.2 m up, pitched 15 degrees down, looking forward" and its parameters."""
    import yaml
    from support import REPO

    docs = (REPO / "docs/ros.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", docs, re.S) if "camera_rotation" in b)
    ground = yaml.safe_load(block)["fast_scnn"]["ros__parameters"]["ground"]
    documented = CameraPose.from_quaternion(ground["camera_translation"], ground["camera_rotation"])
    camera_pose = CameraPose.looking(1.2, 15.0)
    assert np.allclose(documented.rotation, camera_pose.rotation, atol=1e-6)
    assert np.allclose(documented.translation, camera_pose.translation)
    assert "1.2 m up, pitched 15 degrees down" in docs


def test_unknown_pixels_at_the_bottom_do_not_hide_the_free_run() -> None:
    """An ego vehicle's bonnet (ignore id) over the bottom rows: the scan starts above it."""
    cam, camera_pose = camera(), pose()
    labels = render(cam, camera_pose)
    plain = projector(cam, camera_pose).project(labels)
    labels[-40:] = 255
    bonnet = projector(cam, camera_pose).project(labels)
    np.testing.assert_array_equal(bonnet.obstacle_points, plain.obstacle_points)
    assert len(bonnet.free_points) == len(plain.free_points)
    labels[-40:, 400:600] = BOX  # an obstacle right at the bottom, under the box: no free run, no point
    assert len(projector(cam, camera_pose).project(labels).obstacle_points) < len(plain.obstacle_points)
