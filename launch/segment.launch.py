"""Launch the fast_scnn segmentation node: `ros2 launch fast_scnn_ros segment.launch.py checkpoint:=model.pt`.

Parameters come from `params_file` (default: the installed config/segment.yaml); a launch argument
given on the command line overrides its parameter, one left empty keeps the file's value. The
camera topics are remapped onto the node's `image` and `camera_info` inputs (compressed input reads
<image_topic>/compressed).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchContext, LaunchDescription

# Launch arguments that override the node parameter of the same name when given (value type of each).
OVERRIDES = {"checkpoint": str, "device": str, "width": int, "height": int, "input_compressed": bool}


def segmentation_node(context: LaunchContext) -> list[Node]:
    overrides = {
        name: ParameterValue(value, value_type=value_type)
        for name, value_type in OVERRIDES.items()
        if (value := LaunchConfiguration(name).perform(context)) != ""
    }
    node = Node(
        package="fast_scnn_ros",
        executable="segmentation_node",
        name="fast_scnn",
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), overrides],
        remappings=[
            ("image", LaunchConfiguration("image_topic")),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
        ],
    )
    return [node]


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory("fast_scnn_ros"), "config", "segment.yaml")
    keep = " (empty: keep the params file's value)"
    arguments = [
        DeclareLaunchArgument("checkpoint", default_value="", description="Fast-SCNN checkpoint (.pt)" + keep),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw", description="input image topic"),
        DeclareLaunchArgument(
            "camera_info_topic", default_value="/camera/camera_info", description="input camera_info topic"
        ),
        DeclareLaunchArgument("params_file", default_value=default_params, description="node parameters YAML"),
        DeclareLaunchArgument("device", default_value="", description="auto, cpu, cuda or cuda:N" + keep),
        DeclareLaunchArgument("width", default_value="", description="inference width; 0 = input width" + keep),
        DeclareLaunchArgument("height", default_value="", description="inference height; 0 = input height" + keep),
        DeclareLaunchArgument(
            "input_compressed", default_value="", description="true: subscribe <image_topic>/compressed" + keep
        ),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=segmentation_node)])
