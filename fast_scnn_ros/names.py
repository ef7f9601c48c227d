"""Names other programs rely on: topics, the node's name, diagnostic status names. Imports nothing heavy
(no torch, no rclpy), so launch files, the process starter and clients use them without loading the engine.
"""

from __future__ import annotations

NODE_NAME = "fast_scnn"

# Input names are relative so that launch remaps them (image -> /camera/image_raw); compressed input
# follows image_transport: <resolved image topic>/compressed.
IMAGE_TOPIC = "image"
CAMERA_INFO_TOPIC = "camera_info"
# Outputs are relative too: /segmentation/... in the root namespace, /<ns>/segmentation/... when pushed
# into a namespace, /<ns>/<camera>/segmentation/... for a camera of the ring; remappable one by one.
LABELS_TOPIC = "segmentation/labels"
MASKS_TOPIC = "segmentation/masks"
COLOR_TOPIC = "segmentation/color"
OVERLAY_TOPIC = "segmentation/overlay"
CONFIDENCE_TOPIC = "segmentation/confidence"
CAMERA_INFO_OUT_TOPIC = "segmentation/camera_info"
CLASS_INFO_TOPIC = "segmentation/class_info"
LABEL_INFO_TOPIC = "segmentation/label_info"  # vision_msgs/LabelInfo, latched, where vision_msgs is installed
# Ground projection (ground.enabled): per camera, and a ring's fused grid at the node's segmentation/ground_grid.
GROUND_GRID_TOPIC = "segmentation/ground_grid"
OBSTACLE_POINTS_TOPIC = "segmentation/obstacle_points"
FREE_POINTS_TOPIC = "segmentation/free_points"
DIAGNOSTICS_TOPIC = "/diagnostics"


def diagnostic_name(node_name: str = NODE_NAME, camera: str = "") -> str:
    """Name of a DiagnosticStatus, as diagnostic_updater names tasks: '<node>: segmentation' (the engine and
    all cameras), '<node>: segmentation <camera>' (one camera of a ring)."""
    return f"{node_name}: segmentation" + (f" {camera}" if camera else "")
