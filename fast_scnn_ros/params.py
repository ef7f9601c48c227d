"""The node's parameters in one place: the engine's options, generated from `InferenceConfig`'s fields, then
the node's own; and the pure checks that turn parameter values into settings (no ROS graph needed).

Each engine option's description, bounds and choices come from its `InferenceConfig` field
(`option_help`, `option_range`, `option_choices`), the same text `fast-scnn predict --help` and the
launch file's argument descriptions show. An integer option's range goes into its descriptor
(`integer_range`), so rclpy refuses `width:=20000` or `threads:=100000` with the bounds before the
node sees it; values inside the range that an option still refuses (width 1..31: 0 means "the
image's") are refused by `InferenceConfig`'s own check with its reason.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.parameter import Parameter

from fast_scnn_core.errors import ConfigError
from fast_scnn_core.ground.grid import CostTable, GridSpec
from fast_scnn_core.ground.pose import CameraPose
from fast_scnn_core.infer.options import InferenceConfig, option_choices, option_help, option_range
from fast_scnn_core.labels import ClassSet, mask_class_ids

UNCONFIGURED_ONLY = "set only while the lifecycle node is unconfigured"


@dataclass(frozen=True)
class ParameterSpec:
    """One ROS parameter: its default (which fixes its type), meaning and constraints."""

    name: str
    default: Any  # a value, or Parameter.Type.STRING_ARRAY for an initially empty string array
    description: str
    read_only: bool = False
    choices: tuple[str, ...] = ()
    integer_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None

    def descriptor(self, managed: bool = False) -> ParameterDescriptor:
        """Its ROS descriptor. In a managed (lifecycle) node a read-only parameter is declared writable and
        refused by the node while configured: set while unconfigured, a failed configure is fixed in place."""
        constraints = [f"one of: {', '.join(self.choices)}"] if self.choices else []
        if managed and self.read_only:
            constraints.append(UNCONFIGURED_ONLY)
        descriptor = ParameterDescriptor(
            description=self.description,
            read_only=self.read_only and not managed,
            additional_constraints="; ".join(constraints),
        )
        if self.integer_range:
            descriptor.integer_range = [IntegerRange(from_value=self.integer_range[0], to_value=self.integer_range[1])]
        if self.float_range:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=self.float_range[0], to_value=self.float_range[1])
            ]
        return descriptor


READ_ONLY_ENGINE = {"checkpoint"}  # a new checkpoint may bring a new class set: restart the node
ENGINE_NAMES = tuple(field.name for field in dataclasses.fields(InferenceConfig))


def engine_parameters() -> list[ParameterSpec]:
    """One parameter per InferenceConfig field, described and bounded by the field itself."""
    specs = []
    for field in dataclasses.fields(InferenceConfig):
        default = field.default
        if not isinstance(default, (bool, int, float, str)):
            raise TypeError(f"InferenceConfig.{field.name}: no ROS parameter type for {default!r}")
        specs.append(
            ParameterSpec(
                field.name,
                default,
                option_help(field.name),
                read_only=field.name in READ_ONLY_ENGINE,
                choices=tuple(str(choice) for choice in option_choices(field.name)),
                integer_range=option_range(field.name) if type(default) is int else None,
            )
        )
    return specs


NODE_PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec(
        "cameras",
        Parameter.Type.STRING_ARRAY,
        "camera names of a camera ring, e.g. [front, rear]: each reads <name>/image and <name>/camera_info and "
        "publishes <name>/segmentation/...; empty = one camera on image",
        True,
    ),
    ParameterSpec("input_compressed", False, "subscribe <image>/compressed (jpeg/png) instead of raw image", True),
    ParameterSpec("use_camera_info", True, "subscribe camera_info and republish it scaled to the output size", True),
    ParameterSpec(
        "qos_reliability",
        "best_effort",
        "input QoS reliability; best_effort is REP 2003 sensor-data QoS",
        True,
        choices=("best_effort", "reliable"),
    ),
    ParameterSpec("qos_depth", 5, "input and output queue depth (keep last)", True, integer_range=(1, 100)),
    ParameterSpec(
        "mask_classes",
        Parameter.Type.STRING_ARRAY,
        "class names (or their topic names) that get a segmentation/masks/<name> topic; empty = none",
    ),
    ParameterSpec("publish_color", True, "publish segmentation/color (rgb8 colour-coded labels)"),
    ParameterSpec("publish_overlay", True, "publish segmentation/overlay (rgb8 image blended with colours)"),
    ParameterSpec("publish_confidence", True, "publish segmentation/confidence (32FC1; needs mode prob)"),
    ParameterSpec("publish_camera_info", True, "publish segmentation/camera_info scaled to the output size"),
    ParameterSpec("overlay_alpha", 0.5, "weight of the colours in the overlay", float_range=(0.0, 1.0)),
    ParameterSpec("diagnostics_period", 1.0, "seconds between /diagnostics reports", True, float_range=(0.05, 60.0)),
    # Ground projection (fast_scnn_ros/ground.py, docs/ros.md "Ground grid and clouds for Nav2").
    ParameterSpec(
        "ground.enabled",
        False,
        "project each camera's labels onto the ground: segmentation/ground_grid (OccupancyGrid), "
        "segmentation/obstacle_points and segmentation/free_points (PointCloud2)",
        True,
    ),
    ParameterSpec("ground.base_frame", "base_footprint", "frame of the grid and clouds; its z = 0 is the ground", True),
    ParameterSpec("ground.resolution", 0.05, "grid cell size (m)", True, float_range=(0.001, 10.0)),
    ParameterSpec(
        "ground.x_min", 0.0, "grid extent in the base frame (m); extents are multiples of the resolution", True
    ),
    ParameterSpec("ground.x_max", 6.0, "grid extent in the base frame (m)", True),
    ParameterSpec("ground.y_min", -3.0, "grid extent in the base frame (m)", True),
    ParameterSpec("ground.y_max", 3.0, "grid extent in the base frame (m)", True),
    ParameterSpec(
        "ground.max_range",
        6.0,
        "farthest ground point used (m, from the camera's foot): cells beyond are -1, free points are clipped to "
        "it; 0 = no limit",
        True,
        float_range=(0.0, 1000.0),
    ),
    ParameterSpec(
        "ground.costs",
        ["road=0", "sidewalk=0", "terrain=50", "sky=-1"],
        "cost of classes in the grid, CLASS=COST (0 free .. 100 lethal, -1 unknown); classes not listed cost "
        "ground.default_cost",
        True,
    ),
    ParameterSpec(
        "ground.default_cost", 100, "cost of the classes ground.costs does not list", True, integer_range=(-1, 100)
    ),
    ParameterSpec(
        "ground.obstacle_cost",
        100,
        "classes costing this or more are obstacles: they end a free run and give obstacle_points",
        True,
        integer_range=(1, 100),
    ),
    ParameterSpec("ground.use_distortion", True, "apply camera_info's distortion (false for rectified images)", True),
    ParameterSpec(
        "ground.camera_translation",
        Parameter.Type.DOUBLE_ARRAY,
        "the camera's optical frame in the base frame, x y z (m), one triple per camera of the ring, as "
        "static_transform_publisher takes it; empty = the pose from tf2",
        True,
    ),
    ParameterSpec(
        "ground.camera_rotation",
        Parameter.Type.DOUBLE_ARRAY,
        "the optical frame's rotation in the base frame, quaternion x y z w (REP-103 optical axes), one per camera; "
        "empty = from tf2",
        True,
    ),
    ParameterSpec(
        "ground.tf_timeout",
        0.05,
        "seconds the worker waits for the camera's transform at the image's stamp",
        True,
        float_range=(0.0, 10.0),
    ),
)


def parameter_specs() -> list[ParameterSpec]:
    """Every parameter the node declares, engine options first."""
    return [*engine_parameters(), *NODE_PARAMETERS]


SPECS = {spec.name: spec for spec in parameter_specs()}


def parameter_description(name: str) -> str:
    """The description of the node parameter `name` (the launch file's arguments reuse it)."""
    return SPECS[name].description


def check_choices(values: Mapping[str, Any]) -> None:
    """Refuse a value outside its parameter's choices (a descriptor only shows them; rclpy does not check)."""
    for name, value in values.items():
        choices = SPECS[name].choices
        if choices and value not in choices:
            raise ConfigError(f"parameter {name!r} must be one of {', '.join(choices)}; got {value!r}")


def engine_config(values: Mapping[str, Any]) -> InferenceConfig:
    """The InferenceConfig of the engine parameters' values (InferenceConfig's checks give the reason)."""
    return InferenceConfig(**{name: values[name] for name in ENGINE_NAMES})


@dataclass(frozen=True)
class OutputSettings:
    """The runtime-changeable output parameters, swapped as a whole when they change."""

    mask_classes: tuple[int, ...]
    color: bool
    overlay: bool
    confidence: bool
    camera_info: bool
    overlay_alpha: float


def output_settings(values: Mapping[str, Any], classes: ClassSet) -> OutputSettings:
    """The output parameters' values checked against the checkpoint's classes."""
    try:
        mask_ids = mask_class_ids(classes, values["mask_classes"])
    except ValueError as exc:
        raise ConfigError(f"mask_classes: {exc}") from None
    return OutputSettings(
        mask_ids,
        values["publish_color"],
        values["publish_overlay"],
        values["publish_confidence"],
        values["publish_camera_info"],
        float(values["overlay_alpha"]),
    )


_TOPIC_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def camera_names(values: Mapping[str, Any]) -> tuple[str, ...]:
    """The `cameras` parameter checked: names usable as topic namespaces, each once; () = the single `image` input."""
    names = tuple(values["cameras"])
    for name in names:
        if not all(_TOPIC_TOKEN.fullmatch(token) for token in name.split("/")):
            raise ConfigError(
                f"cameras: {name!r} is not a relative topic name (tokens of letters, digits and _, each starting "
                "with a letter, separated by /), e.g. front or front/left"
            )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"cameras: {', '.join(repeated)} listed more than once")
    return names


EMPTY_ARRAYS = (Parameter.Type.STRING_ARRAY, Parameter.Type.DOUBLE_ARRAY)


def with_defaults(values: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter values as rclpy returns them, with an unset array read as [] (its documented default)."""
    return {
        name: [] if value is None and SPECS[name].default in EMPTY_ARRAYS else value for name, value in values.items()
    }


@dataclass(frozen=True)
class GroundSettings:
    """The ground.* parameters checked against the checkpoint's classes and the cameras."""

    base_frame: str
    grid: GridSpec
    costs: CostTable
    max_range: float
    use_distortion: bool
    tf_timeout: float
    poses: tuple[CameraPose, ...] | None  # from ground.camera_*, one per camera; None: from tf2


def ground_settings(values: Mapping[str, Any], classes: ClassSet, cameras: int) -> GroundSettings | None:
    """None unless ground.enabled; ConfigError naming the parameter when a value cannot work."""
    if not values["ground.enabled"]:
        return None
    if not values["use_camera_info"]:
        raise ConfigError("ground.enabled needs the camera model: set use_camera_info true (and publish camera_info)")
    if not values["ground.base_frame"]:
        raise ConfigError("ground.base_frame is empty: name the frame whose z = 0 is the ground, e.g. base_footprint")
    grid = GridSpec(*(float(values[f"ground.{name}"]) for name in ("resolution", "x_min", "x_max", "y_min", "y_max")))
    costs = CostTable.from_entries(
        classes, list(values["ground.costs"]), values["ground.default_cost"], values["ground.obstacle_cost"]
    )
    poses = _parameter_poses(values["ground.camera_translation"], values["ground.camera_rotation"], cameras)
    if poses is None and importlib.util.find_spec("tf2_ros") is None:
        raise ConfigError(
            "ground.enabled: the camera pose comes from tf2 (ground.camera_translation is empty) but tf2_ros is not "
            "installed: install ROS 2's tf2_ros (apt: ros-<distro>-tf2-ros), or give the pose as parameters"
        )
    return GroundSettings(
        values["ground.base_frame"],
        grid,
        costs,
        float(values["ground.max_range"]),
        values["ground.use_distortion"],
        float(values["ground.tf_timeout"]),
        poses,
    )


def _parameter_poses(translation: list[float], rotation: list[float], cameras: int) -> tuple[CameraPose, ...] | None:
    if not translation and not rotation:
        return None
    if len(translation) != 3 * cameras or len(rotation) != 4 * cameras:
        raise ConfigError(
            f"ground.camera_translation has {len(translation)} values and ground.camera_rotation {len(rotation)}: "
            f"expected x y z and qx qy qz qw for each of the {cameras} camera(s), in the order of `cameras`"
        )
    return tuple(
        CameraPose.from_quaternion(translation[3 * i : 3 * i + 3], rotation[4 * i : 4 * i + 4]) for i in range(cameras)
    )
