"""The camera's pose: its optical frame (REP-103: x right, y down, z forward) in the base frame, as tf2's
lookup_transform(base_frame, camera_frame) returns it and static_transform_publisher takes it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fast_scnn_core.errors import ConfigError

# A new pose closer than this to the one a projector was built for reuses it (a static camera's tf, read
# every frame, never rebuilds; a pan-tilt camera's does, about once per 0.06 degrees of motion).
POSE_TOLERANCE_M = 1e-3
POSE_TOLERANCE_RAD = 1e-3


def quaternion_matrix(xyzw: tuple[float, float, float, float] | np.ndarray) -> np.ndarray:
    """The rotation matrix of a quaternion (x, y, z, w), normalised first."""
    q = np.asarray(xyzw, dtype=np.float64)
    norm = np.linalg.norm(q)
    if q.shape != (4,) or not np.isfinite(norm) or norm < 1e-9:
        raise ConfigError(f"rotation {list(q.ravel())}: not a quaternion (x, y, z, w) of non-zero length")
    x, y, z, w = q / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


@dataclass(frozen=True, eq=False)
class CameraPose:
    """p_base = rotation @ p_optical + translation."""

    rotation: np.ndarray  # (3, 3): the optical frame's axes in the base frame
    translation: np.ndarray  # (3,): the optical centre in the base frame

    @classmethod
    def from_quaternion(
        cls, translation: tuple[float, ...] | np.ndarray, xyzw: tuple[float, ...] | np.ndarray
    ) -> CameraPose:
        t = np.asarray(translation, dtype=np.float64)
        if t.shape != (3,) or not np.all(np.isfinite(t)):
            raise ConfigError(f"translation {list(t.ravel())}: expected three finite numbers (x, y, z) in metres")
        return cls(quaternion_matrix(xyzw), t)

    @classmethod
    def looking(
        cls, height: float, pitch_deg: float, yaw_deg: float = 0.0, x: float = 0.0, y: float = 0.0
    ) -> CameraPose:
        """A camera `height` m above the ground at (x, y), turned `yaw_deg` left of the base's x axis and pitched
        `pitch_deg` down: what a calibration sheet usually says."""
        pitch, yaw = np.radians(pitch_deg), np.radians(yaw_deg)
        # optical axes in a level, forward-looking body frame: z forward = x_base, x right = -y_base, y down = -z_base
        level = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
        cp, sp, cy, sy = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
        pitch_down = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])  # about +y_base: x tilts to -z
        turn = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
        return cls(turn @ pitch_down @ level, np.array([x, y, height], dtype=np.float64))

    def quaternion(self) -> np.ndarray:
        """(x, y, z, w) of the rotation (for broadcasting it as a transform)."""
        m = self.rotation
        w = np.sqrt(max(0.0, 1.0 + np.trace(m))) / 2
        x = np.copysign(np.sqrt(max(0.0, 1 + m[0, 0] - m[1, 1] - m[2, 2])) / 2, m[2, 1] - m[1, 2])
        y = np.copysign(np.sqrt(max(0.0, 1 - m[0, 0] + m[1, 1] - m[2, 2])) / 2, m[0, 2] - m[2, 0])
        z = np.copysign(np.sqrt(max(0.0, 1 - m[0, 0] - m[1, 1] + m[2, 2])) / 2, m[1, 0] - m[0, 1])
        return np.array([x, y, z, w])

    def close_to(self, other: CameraPose | None) -> bool:
        """Within POSE_TOLERANCE of `other` (in translation and in rotation angle)."""
        if other is None:
            return False
        if np.linalg.norm(self.translation - other.translation) > POSE_TOLERANCE_M:
            return False
        cos_angle = (np.trace(self.rotation.T @ other.rotation) - 1) / 2
        return float(np.arccos(np.clip(cos_angle, -1.0, 1.0))) <= POSE_TOLERANCE_RAD
