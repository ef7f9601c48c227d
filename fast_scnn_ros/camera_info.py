"""sensor_msgs CameraInfo for the node's outputs: the input camera's calibration scaled to the output size."""

from __future__ import annotations

from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header


def scale_camera_info(info: CameraInfo, width: int, height: int, header: Header) -> CameraInfo:
    """CameraInfo for an image resized to width x height (intrinsics and ROI scaled, as image_proc's resize does).

    K and P scale their x rows by width / info.width and their y rows by height / info.height (P's Tx
    too); D, R, binning and the distortion model are the camera's. `info` is left unchanged.
    """
    sx, sy = width / info.width, height / info.height
    out = CameraInfo(header=header, width=width, height=height, distortion_model=info.distortion_model)
    out.d, out.r = info.d, info.r
    k, p = list(info.k), list(info.p)
    k[0], k[2], k[4], k[5] = k[0] * sx, k[2] * sx, k[4] * sy, k[5] * sy
    p[0], p[2], p[3], p[5], p[6] = p[0] * sx, p[2] * sx, p[3] * sx, p[5] * sy, p[6] * sy
    out.k, out.p = k, p
    out.binning_x, out.binning_y = info.binning_x, info.binning_y
    roi = info.roi
    out.roi.x_offset, out.roi.width = round(roi.x_offset * sx), round(roi.width * sx)
    out.roi.y_offset, out.roi.height = round(roi.y_offset * sy), round(roi.height * sy)
    out.roi.do_rectify = roi.do_rectify
    return out
