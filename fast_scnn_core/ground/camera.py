"""The pinhole camera model of a sensor_msgs/CameraInfo's fields, in the pixel coordinates of the image
the labels are (after binning, ROI and the node's resize), as image_geometry's PinholeCameraModel reads it.

Pixel coordinates follow ROS and OpenCV: integer (u, v) is the centre of pixel column u, row v.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from fast_scnn_core.errors import ConfigError

# The distortion models OpenCV's projectPoints/undistortPoints implement (REP-104 names).
DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "")
# undistortPoints is iterative; with k1 = -0.2 its default 5 iterations leave errors of 1e-3 px.
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-15)


@dataclass(frozen=True, eq=False)
class PinholeCamera:
    """K (3x3) and distortion coefficients D for an image of width x height pixels."""

    width: int
    height: int
    k: np.ndarray
    d: np.ndarray

    @classmethod
    def from_camera_info(
        cls,
        info_size: tuple[int, int],
        k: list[float] | np.ndarray,
        d: list[float] | np.ndarray,
        distortion_model: str,
        *,
        binning: tuple[int, int] = (0, 0),
        roi: tuple[int, int, int, int] = (0, 0, 0, 0),
        use_distortion: bool = True,
    ) -> PinholeCamera:
        """The model of the image a camera driver publishes with this CameraInfo: `info_size` (width, height) and
        K are the full sensor's; `roi` (x_offset, y_offset, width, height) crops and `binning` (x, y) divides it."""
        width, height = info_size
        k = np.asarray(k, dtype=np.float64).reshape(3, 3).copy()
        if width <= 0 or height <= 0 or k[0, 0] <= 0 or k[1, 1] <= 0:
            raise ConfigError(f"camera_info: no calibration (size {width}x{height}, fx {k[0, 0]}, fy {k[1, 1]})")
        d = np.asarray(d, dtype=np.float64)
        if use_distortion and d.size and np.any(d):
            if distortion_model not in DISTORTION_MODELS:
                raise ConfigError(
                    f"camera_info: distortion model {distortion_model!r} is not supported (plumb_bob or "
                    "rational_polynomial); rectify the images (image_proc) or set ground.use_distortion false"
                )
        else:
            d = np.zeros(0)
        x_offset, y_offset, roi_width, roi_height = roi
        if roi_width and roi_height:
            k[0, 2] -= x_offset
            k[1, 2] -= y_offset
            width, height = roi_width, roi_height
        bx, by = max(binning[0], 1), max(binning[1], 1)
        k[0] /= bx
        k[1] /= by
        return cls(width // bx, height // by, k, d)

    def scaled(self, width: int, height: int) -> PinholeCamera:
        """The model of this image resized to width x height (as the node's segmentation/camera_info is scaled)."""
        if (width, height) == (self.width, self.height):
            return self
        k = self.k.copy()
        k[0] *= width / self.width
        k[1] *= height / self.height
        return PinholeCamera(width, height, k, self.d)

    def same_as(self, other: PinholeCamera | None) -> bool:
        return (
            other is not None
            and (self.width, self.height) == (other.width, other.height)
            and np.array_equal(self.k, other.k)
            and np.array_equal(self.d, other.d)
        )

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) points in the optical frame (z > 0) -> (N, 2) pixel coordinates (distortion applied)."""
        if not len(points):
            return np.zeros((0, 2))
        uv, _ = cv2.projectPoints(
            np.ascontiguousarray(points, dtype=np.float64), np.zeros(3), np.zeros(3), self.k, self.d
        )
        return uv.reshape(-1, 2)

    def rays(self, uv: np.ndarray) -> np.ndarray:
        """(N, 2) pixel coordinates -> (N, 3) ray directions (x, y, 1) in the optical frame (distortion removed);
        NaN for pixels the distortion model cannot have produced (beyond a barrel lens's fold, e.g. the corners
        of a wide image with k1 = -0.2 alone) or that do not map back onto themselves within 1e-7 px (next to it)."""
        uv = np.ascontiguousarray(uv, dtype=np.float64).reshape(-1, 2)
        if not self.d.size:
            xy = (uv - self.k[:2, 2]) / np.diag(self.k)[:2]
        else:
            xy = cv2.undistortPoints(uv.reshape(-1, 1, 2), self.k, self.d, criteria=_UNDISTORT_CRITERIA).reshape(-1, 2)
            radius = np.linalg.norm(xy, axis=1)
            back = self.project(np.column_stack([xy, np.ones(len(xy))]))
            xy[(np.abs(back - uv).max(axis=1) > 1e-7) | (radius > self.fold_radius)] = np.nan
        return np.column_stack([xy, np.ones(len(xy))])

    @cached_property
    def fold_radius(self) -> float:
        """The normalised radius where the radial distortion stops growing with the radius (inf: never within 10):
        beyond it the model maps several rays onto one pixel."""
        if not self.d.size:
            return np.inf
        d = np.zeros(8)
        d[: min(self.d.size, 8)] = self.d[:8]
        r = np.linspace(0.0, 10.0, 100_001)
        r2 = r * r
        radial = (1 + r2 * (d[0] + r2 * (d[1] + r2 * d[4]))) / (1 + r2 * (d[5] + r2 * (d[6] + r2 * d[7])))
        falling = np.flatnonzero(np.diff(r * radial) <= 0)
        return float(r[falling[0]]) if falling.size else np.inf

    def border(self) -> np.ndarray:
        """(N, 2) pixels spaced along the image's border (corners included)."""
        w, h = self.width - 1, self.height - 1
        us, vs = np.linspace(0, w, 65), np.linspace(0, h, 33)
        sides = [(us, np.zeros_like(us)), (us, np.full_like(us, h)), (np.zeros_like(vs), vs), (np.full_like(vs, w), vs)]
        return np.concatenate([np.column_stack(side) for side in sides])

    @cached_property
    def border_rays(self) -> np.ndarray:
        """The rays of `border()`'s pixels (NaN where there is none): the view's outline, once per model."""
        return self.rays(self.border())

    @cached_property
    def max_radius(self) -> float:
        """Largest normalised radius |(x, y)| of any pixel of the image: beyond it a distortion polynomial can fold
        points from outside the view back into the image, so those are never projected."""
        if not self.d.size:
            return np.inf
        radii = np.linalg.norm(self.border_rays[:, :2], axis=1)
        return float(radii.max()) if np.isfinite(radii).all() else self.fold_radius  # NaN: the fold is in view

    @cached_property
    def pixel_rays(self) -> np.ndarray:
        """(height * width, 2) float32 normalised (x, y) of every pixel's ray, row-major: computed once per model."""
        u, v = np.meshgrid(np.arange(self.width, dtype=np.float64), np.arange(self.height, dtype=np.float64))
        return self.rays(np.column_stack([u.ravel(), v.ravel()]))[:, :2].astype(np.float32)
