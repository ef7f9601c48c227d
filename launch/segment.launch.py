"""Launch the fast_scnn segmentation node: `ros2 launch fast_scnn_ros segment.launch.py checkpoint:=model.pt`.

Parameters come from `params_file` (default: the installed config/segment.yaml); a launch argument
given on the command line overrides its parameter, one left empty keeps the file's value. The
camera topics are remapped onto the node's `image` and `camera_info` inputs (compressed input reads
<image_topic>/compressed). With `cameras` (a camera ring), `image_topic` and `camera_info_topic` are
patterns in which `{camera}` stands for each camera's name: `image_topic:=/{camera}/image_raw` remaps
the node's `front/image` onto `/front/image_raw`, and so on. The node's process gets
`fastdds_profile` (large outputs over shared memory, docs/ros.md). When the node exits with an error
(e.g. it cannot start), `ros2 launch` exits non-zero after the node's one-line reason.

`lifecycle:=true` starts the managed node (segmentation_lifecycle_node, same name, parameters and
topics) instead: it comes up unconfigured, and a lifecycle manager (or `ros2 lifecycle set /fast_scnn
configure`, then `activate`) brings it up.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events.process import ProcessExited
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch.utilities.type_utils import get_typed_value
from launch_ros.actions import LifecycleNode, Node

from fast_scnn_ros.names import CAMERA_INFO_TOPIC, IMAGE_TOPIC, NODE_NAME
from fast_scnn_ros.params import parameter_description
from launch import LaunchContext, LaunchDescription

# Launch arguments that override the node parameter of the same name when given (value type of each).
OVERRIDES = {
    "checkpoint": str,
    "device": str,
    "width": int,
    "height": int,
    "input_compressed": bool,
    "cameras": list[str],
}
# Launch arguments of this launch file itself, typed the same way.
SWITCHES = {"lifecycle": bool}
# Fast DDS 3 reads the XML profile named by this variable when a process starts.
PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"


def parameter_overrides(context: LaunchContext) -> dict[str, str | int | bool | list[str]]:
    """The OVERRIDES given on the command line, typed by launch's own rules ('512' -> 512, 'true' -> True).

    Typed here because launch_ros' ParameterValue(value_type=int) type-checks an evaluated string
    instead of converting it ('512' is not an int).
    """
    return {
        name: typed_argument(context, name, value_type)
        for name, value_type in OVERRIDES.items()
        if LaunchConfiguration(name).perform(context) != ""
    }


def typed_argument(context: LaunchContext, name: str, value_type: type) -> str | int | bool | list[str]:
    """The launch argument `name` as a `value_type`; a one-line error saying what was expected otherwise."""
    text = LaunchConfiguration(name).perform(context)
    try:
        return get_typed_value(text, value_type)
    except ValueError:
        expected = {bool: "true or false", int: "an integer"}.get(value_type, "a list such as [front, rear]")
        raise ValueError(f"launch argument {name}:={text}: expected {expected}") from None


def fastdds_environment(context: LaunchContext) -> dict[str, str]:
    """The node's Fast DDS profile variable; empty `fastdds_profile` leaves the environment as it is."""
    profile = LaunchConfiguration("fastdds_profile").perform(context)
    if profile and not os.path.isfile(profile):
        raise ValueError(f"launch argument fastdds_profile:={profile}: no such file")
    return {PROFILE_VARIABLE: profile} if profile else {}


def fail_on_error_exit(event: ProcessExited, context: LaunchContext) -> None:
    """launch logs a process's non-zero exit and still exits 0; an exception is what makes `ros2 launch` fail."""
    if event.returncode != 0:
        raise RuntimeError(f"{event.process_name} exited with status {event.returncode} (its reason is logged above)")


def camera_remappings(context: LaunchContext) -> list[tuple[str, str]]:
    """The node's inputs onto the camera topics: one camera's, or with `cameras` each camera's by the patterns."""
    topics = {  # the node's input -> the topic it reads; the launch arguments are named after the inputs
        IMAGE_TOPIC: LaunchConfiguration("image_topic").perform(context),
        CAMERA_INFO_TOPIC: LaunchConfiguration("camera_info_topic").perform(context),
    }
    cameras = parameter_overrides(context).get("cameras", [])
    if not cameras:
        return list(topics.items())
    for name, pattern in topics.items():
        if "{camera}" not in pattern:
            raise ValueError(
                f"launch argument {name}_topic:={pattern}: with cameras, write {{camera}} where each camera's "
                f"name goes, e.g. {name}_topic:=/{{camera}}/{'image_raw' if name == IMAGE_TOPIC else name}"
            )
    return [
        (f"{camera}/{name}", pattern.replace("{camera}", camera))
        for camera in cameras
        for name, pattern in topics.items()
    ]


def segmentation_node(context: LaunchContext) -> list:
    """The node (plain, or managed with lifecycle:=true) with the arguments of this launch, and the handler that
    fails the launch if it exits with an error."""
    arguments = {
        "package": "fast_scnn_ros",
        "name": NODE_NAME,
        "output": "screen",
        "emulate_tty": True,
        "parameters": [LaunchConfiguration("params_file"), parameter_overrides(context)],
        "remappings": camera_remappings(context),
        "additional_env": fastdds_environment(context),
    }
    if typed_argument(context, "lifecycle", SWITCHES["lifecycle"]):
        # launch_ros' LifecycleNode: its transitions become launch events (and launch's ChangeState reaches it).
        node = LifecycleNode(executable="segmentation_lifecycle_node", namespace="", **arguments)
    else:
        node = Node(executable="segmentation_node", **arguments)
    return [node, RegisterEventHandler(OnProcessExit(target_action=node, on_exit=fail_on_error_exit))]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("fast_scnn_ros")
    default_params = os.path.join(share, "config", "segment.yaml")
    default_profile = os.path.join(share, "config", "fastdds_large_images.xml")
    keep = " (empty: keep the params file's value)"

    described = {name: parameter_description(name) + keep for name in OVERRIDES}  # as the node parameter
    arguments = [
        DeclareLaunchArgument("checkpoint", default_value="", description=described["checkpoint"]),
        DeclareLaunchArgument(
            "image_topic",
            default_value="/camera/image_raw",
            description="input image topic; with cameras a pattern, {camera} = each camera's name",
        ),
        DeclareLaunchArgument(
            "camera_info_topic",
            default_value="/camera/camera_info",
            description="input camera_info topic; with cameras a pattern, {camera} = each camera's name",
        ),
        DeclareLaunchArgument("params_file", default_value=default_params, description="node parameters YAML"),
        DeclareLaunchArgument("device", default_value="", description=described["device"]),
        DeclareLaunchArgument("width", default_value="", description=described["width"]),
        DeclareLaunchArgument("height", default_value="", description=described["height"]),
        DeclareLaunchArgument("input_compressed", default_value="", description=described["input_compressed"]),
        DeclareLaunchArgument("cameras", default_value="", description=described["cameras"]),
        DeclareLaunchArgument(
            "lifecycle",
            default_value="false",
            description="true: start the lifecycle (managed) node, unconfigured until a lifecycle manager or "
            "`ros2 lifecycle set /fast_scnn configure` (then activate) brings it up",
        ),
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=EnvironmentVariable(PROFILE_VARIABLE, default_value=default_profile),
            description=f"Fast DDS XML profile of the node's process (default: ${PROFILE_VARIABLE} if set, else the "
            "installed config/fastdds_large_images.xml; empty: leave the environment as it is)",
        ),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=segmentation_node)])
