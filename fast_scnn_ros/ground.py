"""The node's ground outputs (issue 19): each camera's labels, through its camera_info and its pose (tf2, or the
`ground.camera_*` parameters), projected onto the ground by fast_scnn_core.ground, as what Nav2 consumes:

- `segmentation/ground_grid`: nav_msgs/OccupancyGrid in `ground.base_frame`, RELIABLE + TRANSIENT_LOCAL depth 1
  (Nav2's StaticLayer subscribes that way: a volatile publisher would never match it);
- `segmentation/obstacle_points` / `segmentation/free_points`: sensor_msgs/PointCloud2 (x, y, z float32, label
  uint8) for an ObstacleLayer's marking and clearing;
- a camera ring also publishes one fused `segmentation/ground_grid` of all its cameras.

Every output carries the labels' stamp. A camera that cannot be projected (no camera_info yet, no transform
yet, a pose that sees no ground) is skipped with its reason, logged when it changes and kept for diagnostics;
its labels keep flowing.
"""

from __future__ import annotations

import array
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import Pose
from nav_msgs.msg import MapMetaData, OccupancyGrid
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, PointCloud2, PointField
from std_msgs.msg import Header

from fast_scnn_core.errors import ConfigError
from fast_scnn_core.ground.camera import PinholeCamera
from fast_scnn_core.ground.grid import GridSpec
from fast_scnn_core.ground.pose import CameraPose
from fast_scnn_core.ground.projection import GroundProjectors, GroundResult, fuse
from fast_scnn_ros.names import FREE_POINTS_TOPIC, GROUND_GRID_TOPIC, OBSTACLE_POINTS_TOPIC
from fast_scnn_ros.params import GroundSettings
from fast_scnn_ros.pipeline import bounded

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
# A ring's fused grid takes each camera's newest grid if it is at most this much older than the newest one.
FUSE_MAX_AGE_S = 1.0
POINT_DTYPE = np.dtype({"names": ["x", "y", "z", "label"], "formats": ["<f4", "<f4", "<f4", "u1"], "itemsize": 16})
POINT_FIELDS = [
    PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
    PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
    PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
    PointField(name="label", offset=12, datatype=PointField.UINT8, count=1),
]


def occupancy_grid(grid: np.ndarray, spec: GridSpec, header: Header) -> OccupancyGrid:
    """The grid (rows = y) as an OccupancyGrid whose origin is the corner (x_min, y_min) of cell (0, 0)."""
    origin = Pose()
    origin.position.x, origin.position.y = float(spec.x_min), float(spec.y_min)
    info = MapMetaData(
        map_load_time=header.stamp,
        resolution=float(spec.resolution),
        width=spec.width,
        height=spec.height,
        origin=origin,
    )
    msg = OccupancyGrid(header=header, info=info)
    msg.data = array.array("b", np.ascontiguousarray(grid, dtype=np.int8).tobytes())
    return msg


def point_cloud(points: np.ndarray, labels: np.ndarray, header: Header) -> PointCloud2:
    """(N, 3) points and their class ids as an unorganised PointCloud2 (x, y, z float32, label uint8; 16 bytes)."""
    cloud = np.zeros(len(points), dtype=POINT_DTYPE)
    cloud["x"], cloud["y"], cloud["z"], cloud["label"] = points[:, 0], points[:, 1], points[:, 2], labels
    msg = PointCloud2(header=header, height=1, width=len(points), fields=POINT_FIELDS, is_bigendian=False)
    msg.point_step, msg.row_step, msg.is_dense = POINT_DTYPE.itemsize, POINT_DTYPE.itemsize * len(points), True
    msg.data = array.array("B", cloud.tobytes())
    return msg


def pose_of(transform) -> CameraPose:  # geometry_msgs/TransformStamped
    t, q = transform.transform.translation, transform.transform.rotation
    return CameraPose.from_quaternion((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))


@dataclass
class CameraGround:
    """One camera's projector cache, newest grid and state (the reason when it is not projecting)."""

    projectors: GroundProjectors
    state: str = "waiting for images"
    ok: bool = False
    grid: np.ndarray | None = None
    stamp_ns: int = 0
    projected: int = 0
    skipped: int = 0


class GroundOutputs:
    """The ground publishers of every camera (and the ring's fused grid), the tf2 listener, the projectors."""

    def __init__(self, node: Node, settings: GroundSettings, prefixes: Sequence[str], output_qos: QoSProfile) -> None:
        self.node, self.settings, self.prefixes = node, settings, list(prefixes)
        self._lock = threading.Lock()  # the worker writes the cameras' state, the diagnostics timer reads it
        self.cameras = [
            CameraGround(GroundProjectors(settings.grid, settings.costs, settings.max_range)) for _ in prefixes
        ]
        self.buffer = self.listener = None
        if settings.poses is None:
            from tf2_ros import Buffer, TransformListener  # ROS 2's tf2_ros (apt, or ../shared/ros2-extra here)

            self.buffer = Buffer()
            # Its subscriptions are on this node, spun by the node's executor; the worker waits in lookups.
            self.listener = TransformListener(self.buffer, node)
        self.publishers: dict[str, object] = {}
        for prefix in self.prefixes:
            self.publishers[prefix + GROUND_GRID_TOPIC] = node.create_publisher(
                OccupancyGrid, prefix + GROUND_GRID_TOPIC, LATCHED
            )
            for topic in (OBSTACLE_POINTS_TOPIC, FREE_POINTS_TOPIC):
                self.publishers[prefix + topic] = node.create_publisher(PointCloud2, prefix + topic, output_qos)
        self.fused = None
        if self.prefixes != [""]:
            self.fused = node.create_publisher(OccupancyGrid, GROUND_GRID_TOPIC, LATCHED)

    def _set_state(self, index: int, ok: bool, state: str) -> None:
        camera = self.cameras[index]
        with self._lock:
            changed = state != camera.state
            camera.ok, camera.state = ok, state
            if ok:
                camera.projected += 1
            else:
                camera.skipped += 1
        if changed:
            name = self.prefixes[index].rstrip("/") or "camera"
            if ok:  # one call site per severity: rclpy refuses a call site whose severity changes
                self.node.get_logger().info(f"ground projection of {name}: {state}")
            else:
                self.node.get_logger().warning(f"ground projection of {name}: {state}")

    def project(self, index: int, header: Header, labels: np.ndarray, info: CameraInfo | None) -> None:
        """Project one frame's labels and publish its grid and (subscribed) clouds; a reason when it cannot."""
        try:
            result = self._project(index, header, labels, info)
        except ConfigError as exc:
            self._set_state(index, False, str(exc))
            return
        except Exception as exc:  # the labels keep flowing whatever the projection does
            self._set_state(index, False, bounded(f"failed: {type(exc).__name__}: {exc}"))
            return
        prefix, spec = self.prefixes[index], self.settings.grid
        out = Header(stamp=header.stamp, frame_id=self.settings.base_frame)
        self.publishers[prefix + GROUND_GRID_TOPIC].publish(occupancy_grid(result.grid, spec, out))
        for topic, points, classes in (
            (OBSTACLE_POINTS_TOPIC, result.obstacle_points, result.obstacle_labels),
            (FREE_POINTS_TOPIC, result.free_points, result.free_labels),
        ):
            publisher = self.publishers[prefix + topic]
            if publisher.get_subscription_count() > 0:
                publisher.publish(point_cloud(points, classes, out))
        camera = self.cameras[index]
        with self._lock:
            camera.grid, camera.stamp_ns = result.grid, Time.from_msg(header.stamp).nanoseconds
        self._set_state(index, True, "projecting")

    def _project(self, index: int, header: Header, labels: np.ndarray, info: CameraInfo | None) -> GroundResult:
        if info is None or not info.width or not info.height:
            raise ConfigError("waiting for camera_info (the camera model is needed to project the labels)")
        model = PinholeCamera.from_camera_info(
            (info.width, info.height),
            info.k,
            info.d,
            info.distortion_model,
            binning=(info.binning_x, info.binning_y),
            roi=(info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height),
            use_distortion=self.settings.use_distortion,
        ).scaled(labels.shape[1], labels.shape[0])
        pose = self._pose(index, info.header.frame_id or header.frame_id, header)
        return self.cameras[index].projectors.get(model, pose).project(labels)

    def _pose(self, index: int, frame: str, header: Header) -> CameraPose:
        if self.settings.poses is not None:
            return self.settings.poses[index]
        from tf2_ros import TransformException

        if not frame:
            raise ConfigError("the image and its camera_info have no frame_id: no transform to look up")
        base = self.settings.base_frame
        try:
            transform = self.buffer.lookup_transform(
                base, frame, Time.from_msg(header.stamp), Duration(seconds=self.settings.tf_timeout)
            )
        except TransformException as exc:
            raise ConfigError(f"waiting for the transform {base} <- {frame}: {exc}") from None
        return pose_of(transform)

    def publish_fused(self) -> None:
        """The ring's one grid from its cameras' newest grids (those no more than FUSE_MAX_AGE_S behind)."""
        if self.fused is None:
            return
        with self._lock:
            grids = [(c.stamp_ns, c.grid) for c in self.cameras if c.grid is not None]
        if not grids:
            return
        newest = max(stamp for stamp, _ in grids)
        fresh = [grid for stamp, grid in grids if newest - stamp <= FUSE_MAX_AGE_S * 1e9]
        header = Header(stamp=Time(nanoseconds=newest).to_msg(), frame_id=self.settings.base_frame)
        self.fused.publish(occupancy_grid(fuse(fresh), self.settings.grid, header))

    def status(self, index: int) -> tuple[bool, str, int, int]:
        """(projecting, state, frames projected, frames skipped) of a camera."""
        camera = self.cameras[index]
        with self._lock:
            return camera.ok, camera.state, camera.projected, camera.skipped

    def destroy(self) -> None:
        if self.listener is not None:
            self.listener.unregister()
        for publisher in [*self.publishers.values(), self.fused]:
            if publisher is not None:
                self.node.destroy_publisher(publisher)
        self.publishers, self.fused, self.listener = {}, None, None
