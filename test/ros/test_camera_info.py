"""CameraInfo scaled to the output size, without a ROS graph."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from fast_scnn_ros.camera_info import scale_camera_info


def camera(width: int = 1024, height: int = 512) -> CameraInfo:
    info = CameraInfo(width=width, height=height, distortion_model="plumb_bob", binning_x=1, binning_y=2)
    info.k = [800.0, 0.0, 512.0, 0.0, 810.0, 256.0, 0.0, 0.0, 1.0]
    info.p = [800.0, 0.0, 512.0, -40.0, 0.0, 810.0, 256.0, 0.0, 0.0, 0.0, 1.0, 0.0]  # Tx of a stereo right camera
    info.d = [0.1, -0.2, 0.001, 0.002, 0.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 100, 50, 800, 400
    info.roi.do_rectify = True
    return info


def test_intrinsics_projection_and_roi_scale_with_each_axis() -> None:
    info = camera()
    header = Header(frame_id="front_optical")
    out = scale_camera_info(info, 512, 128, header)  # x / 2, y / 4
    assert (out.width, out.height, out.header.frame_id) == (512, 128, "front_optical")
    np.testing.assert_allclose(out.k, [400, 0, 256, 0, 202.5, 64, 0, 0, 1])
    np.testing.assert_allclose(out.p, [400, 0, 256, -20, 0, 202.5, 64, 0, 0, 0, 1, 0])
    assert (out.roi.x_offset, out.roi.y_offset, out.roi.width, out.roi.height) == (50, 12, 400, 100)
    assert out.roi.do_rectify


def test_distortion_rectification_and_binning_are_the_cameras() -> None:
    info = camera()
    out = scale_camera_info(info, 2048, 1024, Header())
    np.testing.assert_array_equal(out.d, info.d)
    np.testing.assert_array_equal(out.r, info.r)
    assert (out.distortion_model, out.binning_x, out.binning_y) == ("plumb_bob", 1, 2)


def test_the_same_size_is_the_identity_and_the_input_is_left_unchanged() -> None:
    info = camera()
    k, p = list(info.k), list(info.p)
    out = scale_camera_info(info, 1024, 512, Header())
    np.testing.assert_allclose(out.k, k)
    np.testing.assert_allclose(out.p, p)
    assert list(info.k) == k and list(info.p) == p and info.width == 1024
