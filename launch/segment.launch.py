"""Launch the fast_scnn segmentation node: `ros2 launch fast_scnn_ros segment.launch.py checkpoint:=model.pt`.

Launch arguments override the parameters file; the camera topics are remapped onto the node's
`image` and `camera_info` inputs (compressed input reads <image_topic>/compressed).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory("fast_scnn_ros"), "config", "segment.yaml")
    arguments = [
        DeclareLaunchArgument("checkpoint", default_value="", description="Fast-SCNN checkpoint (.pt); required"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw", description="input image topic"),
        DeclareLaunchArgument(
            "camera_info_topic", default_value="/camera/camera_info", description="input camera_info topic"
        ),
        DeclareLaunchArgument("params_file", default_value=default_params, description="node parameters YAML"),
        DeclareLaunchArgument("device", default_value="auto", description="auto, cpu, cuda or cuda:N"),
        DeclareLaunchArgument("width", default_value="0", description="inference width; 0 = input width"),
        DeclareLaunchArgument("height", default_value="0", description="inference height; 0 = input height"),
        DeclareLaunchArgument(
            "input_compressed", default_value="false", description="subscribe <image_topic>/compressed"
        ),
    ]
    node = Node(
        package="fast_scnn_ros",
        executable="segmentation_node",
        name="fast_scnn",
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "checkpoint": ParameterValue(LaunchConfiguration("checkpoint"), value_type=str),
                "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                "width": ParameterValue(LaunchConfiguration("width"), value_type=int),
                "height": ParameterValue(LaunchConfiguration("height"), value_type=int),
                "input_compressed": ParameterValue(LaunchConfiguration("input_compressed"), value_type=bool),
            },
        ],
        remappings=[
            ("image", LaunchConfiguration("image_topic")),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
        ],
    )
    return LaunchDescription([*arguments, node])
