"""fast_scnn_ros: one ament_python ROS 2 package that is also a normal pip package.

Both `colcon build` and `pip install` lay out the ament index so `ros2 run` / `ros2 launch` find us:
  share/ament_index/resource_index/packages/{fast_scnn_ros,fast_scnn_core}   (markers)
  share/fast_scnn_ros/{package.xml,launch/,config/}, share/fast_scnn_core/package.xml
  lib/fast_scnn_ros/segmentation_node, segmentation_lifecycle_node,
  lib/fast_scnn_core/train                                                 (launcher scripts)
  bin/fast-scnn                                                            (console script)
The launchers are data_files, not console_scripts: pip puts console scripts into bin/ whatever
setup.cfg says, and keeps a data file's run bit. There is no setup.cfg, so colcon also installs
`fast-scnn` into bin/, which install/setup.bash puts on PATH (lib/<pkg>/ is not on PATH).
"""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "fast_scnn_ros"

TORCH = "torch>=2.1"  # CI and README install torch==2.13.0 (CPU wheel) first; see .ci/run
ROS = [
    "ros-rclpy[fastrtps]",
    "ros-sensor-msgs",
    "ros-std-msgs",
    "ros-diagnostic-msgs",
    "ros-rcl-interfaces",
    "ros-lifecycle-msgs",
    "ros-geometry-msgs",
    "ros-nav-msgs",  # ground projection: OccupancyGrid (tf2_ros and vision_msgs have no wheel: Makefile)
]
ONNX = ["onnx>=1.16", "onnxruntime>=1.18", "onnxscript>=0.1"]
# `fast-scnn label-bags --ray`: Ray core only (no dashboard, no Ray Data); pulls no torch.
RAY = ["ray>=2.40"]
# backend openvino (CPU, f32/bf16/int8) and `fast-scnn quantize` (NNCF calibrates the ONNX graph with onnxruntime)
OPENVINO = ["openvino>=2025.0", "nncf>=2.16", *ONNX]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Fast-SCNN real-time semantic segmentation in PyTorch, with a ROS 2 node",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["fast_scnn_core", "fast_scnn_core.*", "fast_scnn_ros", "fast_scnn_ros.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/fast_scnn_ros", "resource/fast_scnn_core"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        ("share/fast_scnn_core", ["fast_scnn_core/package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", sorted(glob("config/*.yaml") + glob("config/*.xml"))),
        ("lib/fast_scnn_ros", ["scripts/segmentation_node", "scripts/segmentation_lifecycle_node"]),
        ("lib/fast_scnn_core", ["scripts/train"]),
    ],
    install_requires=[
        TORCH,
        "numpy>=1.24",
        "PyYAML>=6.0",
        "opencv-python-headless>=4.8",
        "simplejpeg>=1.8",  # libjpeg-turbo: JPEG header without decoding, strict decoding that refuses corrupt data
        "pillow>=10",  # image sizes from PNG/JPEG headers, without decoding (dataset checks)
        "albumentations>=1.4",
        "tqdm>=4.60",
        "tensorboard>=2.14",
        "matplotlib>=3.7",
        "rosbags>=0.10",  # pure-Python rosbag2 reader/writer for `fast-scnn label-bag` (no ROS install needed)
    ],
    extras_require={
        "ros": ROS,
        "onnx": ONNX,
        "ray": RAY,
        "openvino": OPENVINO,
        "test": [
            "pytest>=8",
            "ruff>=0.6",
            "import-linter>=2.1",  # the layer rule (pyproject.toml [tool.importlinter]), checked by make test
            "colcon-common-extensions>=0.3",
            "hypothesis>=6.100",
            "psutil>=5.9",  # bench/soak.py samples the node's RSS, threads and CPU time
            "cityscapesscripts>=2.2",  # the official evaluation, the reference in tests
            "mcap>=1.2",  # Foxglove's reference MCAP reader and ROS 2 decoder check label-bag's output
            "mcap-ros2-support>=0.5",
            *OPENVINO,
            *RAY,
            *ROS,
        ],
    },
    entry_points={
        "console_scripts": [
            "fast-scnn = fast_scnn_core.cli:main",
        ],
    },
    zip_safe=False,
)
