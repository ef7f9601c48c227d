"""Ground outputs of the node (issue 19) as real processes over Fast DDS with real tf2: the grid and clouds equal
the core's projection of the labels the node published, field by field; the pose from a parameter, from another
process's static tf chain and from a moving broadcaster (interpolated) agree; a ring's cameras fill one fused grid;
a camera that cannot be projected says why while its labels keep flowing."""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from harness import NodeProcess, RosHarness, random_rgb
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header
from support import CLASSES

from fast_scnn_core.ground.camera import PinholeCamera
from fast_scnn_core.ground.grid import CostTable, GridSpec
from fast_scnn_core.ground.pose import CameraPose
from fast_scnn_core.ground.projection import GroundProjector, GroundResult
from fast_scnn_core.model.checkpoint import save_checkpoint
from fast_scnn_core.model.network import FastSCNN
from fast_scnn_ros.conversions import image_to_numpy, numpy_to_image
from fast_scnn_ros.tools.probe import pinhole_camera_info

pytestmark = pytest.mark.ros_process

MISSING = [m for m in ("nav_msgs", "tf2_ros", "vision_msgs") if importlib.util.find_spec(m) is None]
if MISSING:
    reason = f"{', '.join(MISSING)} missing: `make venv` installs them (../shared/ros2-extra, ros-nav-msgs)"
    if os.environ.get("CI", "").lower() == "true":
        raise RuntimeError(reason)
    pytest.skip(reason, allow_module_level=True)

from geometry_msgs.msg import TransformStamped  # noqa: E402
from nav_msgs.msg import OccupancyGrid  # noqa: E402
from tf2_ros import StaticTransformBroadcaster, TransformBroadcaster  # noqa: E402
from vision_msgs.msg import LabelInfo  # noqa: E402

H, W = 64, 128  # the camera: focal 64 px (90 degrees across), 1 m above the ground, pitched 20 degrees down
FOCAL = 64.0
POSE = CameraPose.looking(1.0, 20.0)
GRID = GridSpec(0.1, 0.0, 6.0, -3.0, 3.0)
COSTS = ["road=0", "traffic light=100", "sky=-1"]
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def ros_list(values: np.ndarray | list[float]) -> str:
    return "[" + ",".join(f"{float(v)!r}" for v in values) + "]"


def ground_args(grid: GridSpec = GRID, costs: list[str] = COSTS, poses: list[CameraPose] | None = None) -> list[str]:
    args = ["-p", "ground.enabled:=true", "-p", f"ground.resolution:={grid.resolution}"]
    for name in ("x_min", "x_max", "y_min", "y_max"):
        args += ["-p", f"ground.{name}:={getattr(grid, name)!r}"]
    args += ["-p", "ground.costs:=[" + ",".join(f"'{c}'" for c in costs) + "]", "-p", "diagnostics_period:=0.2"]
    if poses is not None:
        translation = np.concatenate([p.translation for p in poses])
        rotation = np.concatenate([p.quaternion() for p in poses])
        args += ["-p", f"ground.camera_translation:={ros_list(translation)}"]
        args += ["-p", f"ground.camera_rotation:={ros_list(rotation)}"]
    return args


def expected(labels: np.ndarray, pose: CameraPose, grid: GridSpec = GRID, costs: list[str] = COSTS) -> GroundResult:
    """What the core makes of these labels: the reference the node's outputs must equal."""
    camera = PinholeCamera.from_camera_info(
        (W, H), pinhole_camera_info(Header(), W, H, FOCAL).k, [0.0] * 5, "plumb_bob"
    )
    table = CostTable.from_entries(CLASSES, costs, 100, 100)
    return GroundProjector(camera.scaled(labels.shape[1], labels.shape[0]), pose, grid, table, 6.0).project(labels)


def cloud_points(msg: PointCloud2) -> tuple[np.ndarray, np.ndarray]:
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.width, msg.point_step)
    xyz = data[:, :12].copy().view("<f4").reshape(-1, 3)
    return xyz, data[:, 12].copy()


class Frame:
    """One camera frame sent until the node's labels, grid (and clouds) for its stamp arrived."""

    def __init__(self, ros: RosHarness, prefix: str = "", frame_id: str = "camera_optical", seed: int = 0) -> None:
        self.ros, self.prefix = ros, prefix
        self.header = ros.header(frame_id, now=True)
        self.image = numpy_to_image(random_rgb(H, W, seed=seed), "rgb8", self.header)
        self.info = pinhole_camera_info(self.header, W, H, FOCAL)

    def send(self, *collectors, image_topic: str = "/camera/image", info_topic: str = "/camera/camera_info") -> list:
        """Publish image and camera_info (again each second: best effort) until every collector has this stamp."""
        stamp = self.header.stamp
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.ros.publisher(CameraInfo, info_topic).publish(self.info)
            self.ros.publisher(Image, image_topic).publish(self.image)
            if self.ros.spin_until(lambda: all(c.with_stamp(stamp) is not None for c in collectors), timeout=1.0):
                return [c.with_stamp(stamp) for c in collectors]
        raise AssertionError(f"not every output arrived for {stamp}: {[len(c.messages) for c in collectors]}")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 3-class checkpoint whose labels of these noise frames mix road (70-83 %) and traffic light: free
    runs, obstacles and hidden cells in every frame (torch's seed fixes its weights)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ground") / "mixed.pt"
    save_checkpoint(path, FastSCNN(len(CLASSES.names)), CLASSES)
    return path


@pytest.fixture(scope="module")
def node(start_node, checkpoint: Path, ros: RosHarness) -> Iterator[NodeProcess]:
    """One camera whose pose is given as parameters."""
    proc = start_node(
        "-p", f"checkpoint:={checkpoint}", *ground_args(poses=[POSE]),
        "-r", "image:=/camera/image", "-r", "camera_info:=/camera/camera_info", "-r", "__node:=fast_scnn_ground",
    )  # fmt: skip
    ros.wait_ready(proc, "/camera/image", Image, node_name="fast_scnn_ground")
    yield proc
    proc.stop()


def test_grid_and_clouds_equal_the_core_projection_of_the_published_labels(node, ros: RosHarness) -> None:
    labels_c = ros.collect(Image, "/segmentation/labels")
    grid_c = ros.collect(OccupancyGrid, "/segmentation/ground_grid", LATCHED)
    obstacles_c = ros.collect(PointCloud2, "/segmentation/obstacle_points")
    free_c = ros.collect(PointCloud2, "/segmentation/free_points")
    frame = Frame(ros)
    labels_msg, grid, obstacles, free = frame.send(labels_c, grid_c, obstacles_c, free_c)
    labels = image_to_numpy(labels_msg)
    assert 0.5 < (labels == 0).mean() < 0.95 and (labels == 1).mean() > 0.05  # the mixed checkpoint's labels
    reference = expected(labels, POSE)
    assert len(reference.obstacle_points) > 20 and len(reference.free_points) > 20
    assert (grid.header.frame_id, grid.header.stamp) == ("base_footprint", frame.header.stamp)
    info = grid.info
    assert (info.width, info.height, info.resolution) == (60, 60, pytest.approx(0.1))
    assert (info.origin.position.x, info.origin.position.y, info.origin.position.z) == (0.0, -3.0, 0.0)
    assert (info.origin.orientation.x, info.origin.orientation.w) == (
        0.0,
        1.0,
    ) and info.map_load_time == frame.header.stamp
    data = np.array(grid.data, dtype=np.int8).reshape(60, 60)
    np.testing.assert_array_equal(data, reference.grid)
    assert (data >= 0).sum() > 500 and (data == -1).sum() > 500  # both seen and unseen cells
    for cloud, points, classes in ((obstacles, reference.obstacle_points, reference.obstacle_labels),
                                   (free, reference.free_points, reference.free_labels)):  # fmt: skip
        assert (cloud.header.frame_id, cloud.header.stamp) == ("base_footprint", frame.header.stamp)
        assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
            ("x", 0, PointField.FLOAT32, 1), ("y", 4, PointField.FLOAT32, 1), ("z", 8, PointField.FLOAT32, 1),
            ("label", 12, PointField.UINT8, 1),
        ]  # fmt: skip
        assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (1, len(points), 16, 16 * len(points))
        assert cloud.is_dense and not cloud.is_bigendian and len(cloud.data) == cloud.row_step
        xyz, ids = cloud_points(cloud)
        np.testing.assert_array_equal(xyz, points)
        np.testing.assert_array_equal(ids, classes)
    assert len(free.data) > 0


def test_a_late_subscriber_gets_the_latched_grid_and_label_info(node, ros: RosHarness) -> None:
    first = ros.collect(OccupancyGrid, "/segmentation/ground_grid", LATCHED)
    frame = Frame(ros, seed=3)
    frame.send(first)
    late = ros.collect(OccupancyGrid, "/segmentation/ground_grid", LATCHED)
    assert ros.spin_until(lambda: bool(late.messages), timeout=10)
    assert late.messages[0].header.stamp == frame.header.stamp
    info = ros.collect(LabelInfo, "/segmentation/label_info", LATCHED)
    assert ros.spin_until(lambda: bool(info.messages), timeout=10)
    assert [(c.class_id, c.class_name) for c in info.messages[0].class_map] == list(enumerate(CLASSES.names))
    report = ros.wait_diagnostics(lambda d: d.get("ground") == "projecting", timeout=10)
    assert report.get("ground") == "projecting" and int(report["ground_frames"]) >= 1


# ---- pose from tf2, broadcast by this (another) process --------------------------------------------------


def send_until_state(ros: RosHarness, namespace: str, frame_id: str, state, camera: str = "") -> None:
    """Frames until the node's diagnostics satisfy `state` (the first frame may come before its camera_info and
    find "waiting for camera_info")."""
    prefix = f"{namespace}/{camera}".rstrip("/")
    labels = ros.collect(Image, f"{prefix}/segmentation/labels")
    for seed in range(5):
        frame = Frame(ros, frame_id=frame_id, seed=seed)
        frame.send(labels, image_topic=f"{prefix}/image", info_topic=f"{prefix}/camera_info")
        if state(ros.wait_diagnostics(state, timeout=2)):
            break
    ros.stop_collecting(labels)


def transform(parent: str, child: str, translation, xyzw, stamp=None) -> TransformStamped:
    msg = TransformStamped()
    msg.header.frame_id, msg.child_frame_id = parent, child
    if stamp is not None:
        msg.header.stamp = stamp
    t, r = msg.transform.translation, msg.transform.rotation
    t.x, t.y, t.z = (float(v) for v in translation)
    r.x, r.y, r.z, r.w = (float(v) for v in xyzw)
    return msg


@pytest.fixture(scope="module")
def tf_node(start_node, checkpoint: Path, ros: RosHarness) -> Iterator[NodeProcess]:
    """One camera whose pose comes from tf2 (in namespace /tfcam)."""
    proc = start_node(
        "-p", f"checkpoint:={checkpoint}", *ground_args(), "-p", "ground.tf_timeout:=0.5",
        "-r", "__ns:=/tfcam", "-r", "__node:=fast_scnn_tf",
    )  # fmt: skip
    ros.wait_ready(proc, "/tfcam/image", Image, node_name="fast_scnn_tf", namespace="/tfcam")
    yield proc
    proc.stop()


def send_tf_frame(ros: RosHarness, frame_id: str, seed: int) -> tuple[np.ndarray, np.ndarray, Frame]:
    labels_c = ros.collect(Image, "/tfcam/segmentation/labels")
    grid_c = ros.collect(OccupancyGrid, "/tfcam/segmentation/ground_grid", LATCHED)
    frame = Frame(ros, frame_id=frame_id, seed=seed)
    labels, grid = frame.send(labels_c, grid_c, image_topic="/tfcam/image", info_topic="/tfcam/camera_info")
    ros.stop_collecting(labels_c)
    ros.stop_collecting(grid_c)
    return image_to_numpy(labels), np.array(grid.data, dtype=np.int8).reshape(60, 60), frame


def test_without_a_transform_the_node_says_so_and_labels_keep_flowing(tf_node, ros: RosHarness) -> None:
    waiting = lambda d: "waiting for the transform" in d.get("ground", "")  # noqa: E731
    send_until_state(ros, "/tfcam", "nowhere_optical", waiting)
    report = ros.diagnostics()
    assert "base_footprint <- nowhere_optical" in report["ground"] and report["level"] == b"\x01"


def test_pose_from_a_static_tf_chain_equals_the_parameter_path(tf_node, ros: RosHarness) -> None:
    broadcaster = StaticTransformBroadcaster(ros.node)
    # base_footprint -> camera_link (1 m up, pitched 20 degrees down) -> camera_optical (REP-103 axes)
    pitch = np.radians(20.0)
    link = transform("base_footprint", "camera_link", (0, 0, 1.0), (0, np.sin(pitch / 2), 0, np.cos(pitch / 2)))
    optical = transform("camera_link", "static_optical", (0, 0, 0), (-0.5, 0.5, -0.5, 0.5))
    broadcaster.sendTransform([link, optical])
    labels, grid, _ = send_tf_frame(ros, "static_optical", seed=6)
    reference = expected(labels, POSE).grid
    assert (grid == reference).mean() >= 0.999 and (grid >= 0).sum() > 500


def test_pose_from_a_moving_broadcaster_is_interpolated_at_the_image_stamp(tf_node, ros: RosHarness) -> None:
    """A tilting camera: pitched 10 degrees 0.1 s before the image and 30 degrees 0.1 s after it -> 20 at it."""
    broadcaster = TransformBroadcaster(ros.node)
    frame_time = ros.node.get_clock().now()
    for dt, degrees in ((-0.1, 10.0), (0.1, 30.0)):
        pose = CameraPose.looking(1.0, degrees)
        stamp = (frame_time + rclpy_duration(dt)).to_msg()
        broadcaster.sendTransform(
            transform("base_footprint", "pan_optical", pose.translation, pose.quaternion(), stamp)
        )
    ros.spin_until(lambda: False, timeout=0.3)
    labels_c = ros.collect(Image, "/tfcam/segmentation/labels")
    grid_c = ros.collect(OccupancyGrid, "/tfcam/segmentation/ground_grid", LATCHED)
    frame = Frame(ros, frame_id="pan_optical", seed=7)
    frame.header.stamp = frame_time.to_msg()
    frame.image.header = frame.info.header = frame.header
    labels_msg, grid = frame.send(labels_c, grid_c, image_topic="/tfcam/image", info_topic="/tfcam/camera_info")
    grid = np.array(grid.data, dtype=np.int8).reshape(60, 60)
    labels = image_to_numpy(labels_msg)
    assert (grid == expected(labels, POSE).grid).mean() >= 0.999
    assert (grid != expected(labels, CameraPose.looking(1.0, 10.0)).grid).sum() > 20  # the tilt matters


def rclpy_duration(seconds: float):
    from rclpy.duration import Duration

    return Duration(nanoseconds=int(seconds * 1e9))


# ---- a camera ring: one fused grid; a camera that cannot be projected ------------------------------------


def test_two_cameras_facing_opposite_ways_fill_both_halves_of_the_fused_grid(
    start_node, checkpoint: Path, ros: RosHarness
) -> None:
    grid = GridSpec(0.1, -3.0, 3.0, -3.0, 3.0)
    costs = ["road=0", "traffic light=50", "sky=20"]  # every class known: every seen cell has a value
    low = CameraPose.looking(-0.2, 20.0)  # a third camera below the ground: refused, its labels still flow
    poses = [POSE, CameraPose.looking(1.0, 20.0, yaw_deg=180.0), low]
    proc = start_node(
        "-p", f"checkpoint:={checkpoint}", "-p", "cameras:=[front,rear,low]", *ground_args(grid, costs, poses),
        "-r", "__ns:=/ring", "-r", "__node:=fast_scnn_ground_ring",
    )  # fmt: skip
    try:
        ros.wait_ready(proc, "/ring/front/image", Image, node_name="fast_scnn_ground_ring", namespace="/ring")
        fused_c = ros.collect(OccupancyGrid, "/ring/segmentation/ground_grid", LATCHED)
        per_camera = {
            n: ros.collect(OccupancyGrid, f"/ring/{n}/segmentation/ground_grid", LATCHED) for n in ("front", "rear")
        }
        stamp = ros.header(now=True).stamp  # synchronised cameras: one stamp (the fused grid takes grids <= 1 s apart)
        for name, seed in (("front", 1), ("rear", 2)):
            frame = Frame(ros, frame_id=f"{name}_optical", seed=seed)
            frame.header.stamp = frame.image.header.stamp = frame.info.header.stamp = stamp
            frame.send(per_camera[name], image_topic=f"/ring/{name}/image", info_topic=f"/ring/{name}/camera_info")
        x = grid.cell_centres()[..., 0]
        ahead, behind = (x > 1.0) & (x < 2.5), (x < -1.0) & (x > -2.5)

        def both_halves() -> bool:  # a fused grid after both cameras' frames (earlier ones have the front only)
            fused = [np.array(m.data, dtype=np.int8).reshape(60, 60) for m in fused_c.messages]
            return any((f[ahead] >= 0).mean() > 0.5 and (f[behind] >= 0).mean() > 0.5 for f in fused)

        assert ros.spin_until(both_halves, timeout=10), proc.output()
        front = np.array(per_camera["front"].messages[-1].data, dtype=np.int8).reshape(60, 60)
        assert (front[behind] == -1).all()  # the front camera alone knows nothing behind
        below = lambda d: "below the ground" in d.get("ground", "")  # noqa: E731
        send_until_state(ros, "/ring", "low_optical", below, camera="low")  # its labels flow: send waits for them
        report = ros.diagnostics()
        assert report["level"] == b"\x01" and report["ground"].startswith("low: the camera is below the ground")
    finally:
        proc.stop()
