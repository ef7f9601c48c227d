"""launch/segment.launch.py and config/segment.yaml agree with the node and with the installed layout.

The launch file is read here (ast) for what it declares; test_launch_cli.py runs it with `ros2 launch`.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import yaml
from rclpy.parameter import Parameter
from support import REPO

from fast_scnn_ros.names import CAMERA_INFO_TOPIC, IMAGE_TOPIC, NODE_NAME
from fast_scnn_ros.params import parameter_specs

LAUNCH_FILE = REPO / "launch/segment.launch.py"
PREFIX = Path(sys.prefix)
SPECS = {spec.name: spec for spec in parameter_specs()}
ARGUMENTS = {"checkpoint", "image_topic", "camera_info_topic", "params_file", "device", "width", "height"}
ARGUMENTS |= {"input_compressed", "cameras", "lifecycle", "fastdds_profile"}


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == name
    ]


def keyword(call: ast.Call, name: str) -> ast.expr:
    [value] = [k.value for k in call.keywords if k.arg == name]
    return value


def launch_configuration_name(node: ast.expr) -> str:
    [call] = calls(node, "LaunchConfiguration")
    return ast.literal_eval(call.args[0])


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text())


@pytest.fixture(scope="module")
def declared(tree: ast.Module) -> dict[str, ast.expr]:
    """Launch argument name -> its default_value expression."""
    arguments = calls(tree, "DeclareLaunchArgument")
    return {ast.literal_eval(call.args[0]): keyword(call, "default_value") for call in arguments}


def test_launch_arguments_are_declared_and_every_use_refers_to_one(tree: ast.Module, declared: dict) -> None:
    assert set(declared) == ARGUMENTS
    literal = [c.args[0] for c in calls(tree, "LaunchConfiguration") if isinstance(c.args[0], ast.Constant)]
    used = {ast.literal_eval(arg) for arg in literal} | set(typed_table(tree)) | set(typed_table(tree, "SWITCHES"))
    assert used == set(declared)
    assert ast.literal_eval(declared["image_topic"]) == "/camera/image_raw"


def typed_table(tree: ast.Module, name: str = "OVERRIDES") -> dict[str, str]:
    """A typed table of the launch file: OVERRIDES (launch argument = node parameter) or SWITCHES (the launch's
    own), argument name -> value type name."""
    [assign] = [n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == name]
    return {ast.literal_eval(k): ast.unparse(v) for k, v in zip(assign.value.keys, assign.value.values, strict=True)}


def node_arguments(tree: ast.Module) -> dict[str, ast.expr]:
    """The arguments both node actions (plain and lifecycle) share: the dict literal that holds `parameters`."""
    dicts = [node for node in ast.walk(tree) if isinstance(node, ast.Dict)]
    [arguments] = [d for d in dicts if "parameters" in [getattr(key, "value", None) for key in d.keys]]
    return {ast.literal_eval(k): v for k, v in zip(arguments.keys, arguments.values, strict=True)}


def test_parameter_overrides_are_node_parameters_of_the_right_type(tree: ast.Module, declared: dict) -> None:
    params_file, overrides = node_arguments(tree)["parameters"].elts
    assert launch_configuration_name(params_file) == "params_file"
    assert isinstance(overrides, ast.Call) and overrides.func.id == "parameter_overrides"  # after the file: wins
    python_types = {str: "str", int: "int", bool: "bool", float: "float", Parameter.Type: "list[str]"}
    table = typed_table(tree)
    assert set(table) == {"checkpoint", "device", "width", "height", "input_compressed", "cameras"}
    for name, type_name in table.items():
        assert name in SPECS, f"launch overrides {name!r}, which the node does not declare"
        assert type_name == python_types[type(SPECS[name].default)], name
        # an override left empty keeps the params file's value instead of replacing it
        assert ast.literal_eval(declared[name]) == "", name


def launch_module(monkeypatch: pytest.MonkeyPatch):
    """The launch file imported for real, as `ros2 launch` does."""
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(PREFIX))
    spec = importlib.util.spec_from_file_location("segment_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def launch_context(**arguments: str):
    """A launch context with these launch arguments (as typed on the command line); the overrides not given."""
    from launch import LaunchContext

    context = LaunchContext()
    overrides = ("checkpoint", "device", "width", "height", "input_compressed", "cameras")
    context.launch_configurations.update({**dict.fromkeys(overrides, ""), **arguments})
    return context


def remappings(monkeypatch: pytest.MonkeyPatch, cameras: str, **topics: str) -> list[tuple[str, str]]:
    """What the launch file remaps for these launch arguments (as typed on the command line)."""
    return launch_module(monkeypatch).camera_remappings(launch_context(cameras=cameras, **topics))


@pytest.mark.parametrize(
    ("lifecycle", "action", "executable"),
    [("false", "Node", "segmentation_node"), ("true", "LifecycleNode", "segmentation_lifecycle_node")],
)
def test_the_lifecycle_argument_picks_the_plain_or_the_managed_node(
    ros2, monkeypatch: pytest.MonkeyPatch, lifecycle: str, action: str, executable: str
) -> None:
    """Both are launch_ros actions for an installed executable of this package (named /fast_scnn: the `ros2 launch`
    tests reach it by that name)."""
    context = launch_context(
        lifecycle=lifecycle,
        params_file=str(REPO / "config/segment.yaml"),
        image_topic="/camera/image_raw",
        camera_info_topic="/camera/camera_info",
        fastdds_profile="",
    )
    node, _ = launch_module(monkeypatch).segmentation_node(context)
    assert type(node).__name__ == action and type(node).__module__.startswith("launch_ros.actions")
    assert (node.node_package, node.node_executable) == ("fast_scnn_ros", executable)
    assert os.access(PREFIX / "lib/fast_scnn_ros" / executable, os.X_OK)
    assert (PREFIX / "share/ament_index/resource_index/packages/fast_scnn_ros").is_file()
    context.launch_configurations["lifecycle"] = "maybe"
    with pytest.raises(ValueError, match="launch argument lifecycle:=maybe: expected true or false"):
        launch_module(monkeypatch).segmentation_node(context)


def test_remapped_topics_are_the_nodes_inputs(ros2, monkeypatch: pytest.MonkeyPatch) -> None:
    topics = {"image_topic": "/front/image_raw", "camera_info_topic": "/front/camera_info"}
    assert remappings(monkeypatch, "", **topics) == [
        (IMAGE_TOPIC, "/front/image_raw"),
        (CAMERA_INFO_TOPIC, "/front/camera_info"),
    ]


def test_a_camera_ring_remaps_each_cameras_inputs_by_the_topic_patterns(ros2, monkeypatch: pytest.MonkeyPatch) -> None:
    patterns = {"image_topic": "/{camera}/color/image_raw", "camera_info_topic": "/{camera}/color/camera_info"}
    assert remappings(monkeypatch, "[front, rear]", **patterns) == [
        (f"front/{IMAGE_TOPIC}", "/front/color/image_raw"),
        (f"front/{CAMERA_INFO_TOPIC}", "/front/color/camera_info"),
        (f"rear/{IMAGE_TOPIC}", "/rear/color/image_raw"),
        (f"rear/{CAMERA_INFO_TOPIC}", "/rear/color/camera_info"),
    ]
    defaults = {"image_topic": "/camera/image_raw", "camera_info_topic": "/camera/camera_info"}
    with pytest.raises(ValueError, match=r"image_topic:=/camera/image_raw: with cameras, write \{camera\}"):
        remappings(monkeypatch, "[front]", **defaults)


def flatten(values: dict, prefix: str = "") -> dict:
    """Nested parameter YAML as rcl reads it: {a: {b: 1}} -> {"a.b": 1}."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_params_yaml_documents_every_parameter_with_its_default() -> None:
    config = yaml.safe_load((REPO / "config/segment.yaml").read_text())
    values = flatten(config[NODE_NAME]["ros__parameters"])  # ground: {enabled: ...} -> ground.enabled, as rcl reads it
    assert set(values) == set(SPECS)
    for name, spec in SPECS.items():
        empty = spec.default in (Parameter.Type.STRING_ARRAY, Parameter.Type.DOUBLE_ARRAY)
        expected = [] if empty else spec.default
        assert values[name] == expected and type(values[name]) is type(expected), name
    text = (REPO / "config/segment.yaml").read_text().splitlines()
    keys = {n.rpartition(".")[2] for n in SPECS} | {n.partition(".")[0] for n in SPECS}  # and groups (ground:)
    for name in SPECS:  # a comment above each parameter or above the group it belongs to (width, height)
        key = name.rpartition(".")[2]
        line = next(i for i, t in enumerate(text) if t.strip().startswith(f"{key}:")) - 1
        while text[line].strip().split(":")[0] in keys:
            line -= 1
        assert text[line].strip().startswith("#"), name


def launch_defaults(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Launch argument -> its default as `ros2 launch` evaluates it (the launch file imported for real)."""
    from launch.utilities import perform_substitutions

    from launch import LaunchContext

    arguments = launch_module(monkeypatch).generate_launch_description().get_launch_arguments()
    return {argument.name: perform_substitutions(LaunchContext(), argument.default_value) for argument in arguments}


def test_launch_description_declares_the_arguments(ros2, monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(launch_defaults(monkeypatch)) == ARGUMENTS


def test_default_params_file_and_fastdds_profile_are_installed_config(ros2, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE", raising=False)
    defaults = launch_defaults(monkeypatch)
    for argument, name in (("params_file", "segment.yaml"), ("fastdds_profile", "fastdds_large_images.xml")):
        installed = PREFIX / "share/fast_scnn_ros/config" / name
        assert defaults[argument] == str(installed)
        assert installed.read_text() == (REPO / "config" / name).read_text(), f"{installed} is stale: make venv"


def test_fastdds_profile_defaults_to_the_one_the_environment_names(ros2, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user who exported FASTDDS_DEFAULT_PROFILES_FILE keeps that profile for the node too."""
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", "/etc/robot/fastdds.xml")
    assert launch_defaults(monkeypatch)["fastdds_profile"] == "/etc/robot/fastdds.xml"
