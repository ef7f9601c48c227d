"""README.md stays true: its parameter, topic and launch-argument tables match the code, and its
test command is the one CI runs."""

from __future__ import annotations

import ast
import dataclasses
import re

import pytest
from rclpy.parameter import Parameter
from support import REPO

from fast_scnn_ros import names
from fast_scnn_ros.params import parameter_specs

README = (REPO / "README.md").read_text()


def table(name: str) -> list[list[str]]:
    """Cells of the Markdown table between <!-- name:begin --> and <!-- name:end --> (header dropped)."""
    match = re.search(rf"<!-- {name}:begin -->\n(.*?)<!-- {name}:end -->", README, re.S)
    assert match, f"README.md has no {name} table"
    rows = [line.strip().strip("|").split("|") for line in match.group(1).strip().splitlines()]
    return [[cell.strip() for cell in row] for row in rows[2:]]


def ros_type(default: object) -> str:
    if default is Parameter.Type.DOUBLE_ARRAY:
        return "double[]"
    if default is Parameter.Type.STRING_ARRAY or isinstance(default, list):
        return "string[]"
    return {bool: "bool", int: "int", float: "double", str: "string"}[type(default)]


def ros_default(default: object) -> str:
    if default in (Parameter.Type.STRING_ARRAY, Parameter.Type.DOUBLE_ARRAY):
        return "`[]`"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    return '`""`' if default == "" else f"`{default}`"


def test_parameter_table_matches_the_node() -> None:
    documented = {row[0].strip("`"): row[1:4] for row in table("parameters")}
    specs = {spec.name: spec for spec in parameter_specs()}
    assert list(documented) == list(specs), "README parameter table: names or order differ from the node"
    for name, spec in specs.items():
        expected = [ros_type(spec.default), ros_default(spec.default), "no" if spec.read_only else "yes"]
        assert documented[name] == expected, name


def test_topic_table_matches_the_node() -> None:
    documented = [row[0].strip("`") for row in table("topics")]
    outputs = [
        names.LABELS_TOPIC,
        f"{names.MASKS_TOPIC}/<class>",
        names.COLOR_TOPIC,
        names.OVERLAY_TOPIC,
        names.CONFIDENCE_TOPIC,
        names.CAMERA_INFO_OUT_TOPIC,
        names.CLASS_INFO_TOPIC,
        names.LABEL_INFO_TOPIC,
        names.GROUND_GRID_TOPIC,
        names.OBSTACLE_POINTS_TOPIC,
        names.FREE_POINTS_TOPIC,
    ]
    expected = [
        names.IMAGE_TOPIC,
        f"{names.IMAGE_TOPIC}/compressed",
        names.CAMERA_INFO_TOPIC,
        *[f"/{topic}" for topic in outputs],  # relative names, resolved in the root namespace
        names.DIAGNOSTICS_TOPIC,
    ]
    assert documented == expected


def launch_arguments() -> dict[str, tuple[str, ast.expr]]:
    """The launch file's arguments in order: name -> (ROS type name, default_value expression).

    Arguments in its OVERRIDES and SWITCHES tables are typed as it converts them (and as the node parameter
    they override); the others are topic names and file paths (strings).
    """
    tree = ast.parse((REPO / "launch/segment.launch.py").read_text())
    tables = [n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id in ("OVERRIDES", "SWITCHES")]
    types = {ast.literal_eval(k): ast.unparse(v) for t in tables for k, v in zip(t.keys, t.values, strict=True)}
    arguments = {}
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "DeclareLaunchArgument":
            name = ast.literal_eval(call.args[0])
            default = next(k.value for k in call.keywords if k.arg == "default_value")
            python_type = types.get(name, "str")
            arguments[name] = ({"str": "string", "list[str]": "string[]"}.get(python_type, python_type), default)
    return arguments


def test_launch_argument_table_matches_the_launch_file() -> None:
    arguments = launch_arguments()
    rows = table("launch-arguments")
    assert [row[0].strip("`") for row in rows] == list(arguments), "README launch arguments: names or order differ"
    for name, type_name, default, _ in rows:
        expected_type, default_value = arguments[name.strip("`")]
        assert type_name == expected_type, name
        if not isinstance(default_value, ast.Constant):  # computed from the installed share directory
            assert "installed" in default, name
        elif default_value.value == "":  # not given: the params file's value stays
            assert default == "(params file)", name
        else:
            assert default == f"`{default_value.value}`", name


def test_launch_commands_in_the_docs_use_declared_arguments() -> None:
    arguments = launch_arguments()
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = re.sub(r"\\\n\s*", "", doc.read_text())  # join continued lines
        for command in re.findall(r"ros2 launch fast_scnn_ros segment\.launch\.py[^\n`]*", text):
            used = set(re.findall(r"(\w+):=", command))
            assert used <= set(arguments), f"{doc.name}: {command!r} uses undeclared {used - set(arguments)}"


@pytest.mark.parametrize("command", ["make test", "make demo"])
def test_readme_commands_exist(command: str) -> None:
    assert f"\n{command}" in README
    target = command.split()[1]
    assert re.search(rf"^{target}:", (REPO / "Makefile").read_text(), re.M)


def test_make_test_fast_leaves_out_every_tier_but_the_unit_tests() -> None:
    """The README's fast tier: its Makefile target deselects each marker pyproject.toml registers, so a new tier
    is left out of `make test-fast` (or the marker is not a tier, and this test says so)."""
    assert "`make test-fast`" in README
    markers = re.search(r"^markers = \[\n(.*?)^\]", (REPO / "pyproject.toml").read_text(), re.M | re.S).group(1)
    tiers = re.findall(r'^\s*"(\w+):', markers, re.M)
    assert tiers
    target = re.search(r"^test-fast:.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.M).group(1)
    assert f'-m "{" and ".join(f"not {tier}" for tier in tiers)}"' in target


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci/run").read_text()
    assert re.search(r"^make test$", ci, re.M)


def test_parameter_table_states_the_engine_options_ranges() -> None:
    """The bounds come from InferenceConfig's field metadata (one place); the README shows them."""
    from fast_scnn_core.infer.segmenter import InferenceConfig

    meanings = {row[0].strip("`"): row[4] for row in table("parameters")}
    for field in dataclasses.fields(InferenceConfig):
        if "range" in field.metadata:
            lo, hi = field.metadata["range"]
            assert f"{lo}..{hi}" in meanings[field.name], field.name


def test_input_limits_paragraph_matches_the_code() -> None:
    from fast_scnn_core.limits import MAX_SIDE

    assert f"sides must be 1..{MAX_SIDE} pixels" in " ".join(README.split())


def test_the_ground_snippet_is_parameters_the_node_accepts_for_a_cityscapes_model() -> None:
    import yaml

    from fast_scnn_core.labels import CITYSCAPES
    from fast_scnn_ros.params import SPECS, ground_settings, with_defaults

    section = README.split("### Ground grid and clouds for Nav2")[1].split("\n### ")[0]
    [block] = re.findall(r"```yaml\n(.*?)```", section, re.S)
    ground = yaml.safe_load(block)["fast_scnn"]["ros__parameters"]["ground"]
    values = with_defaults(
        {name: None if isinstance(spec.default, Parameter.Type) else spec.default for name, spec in SPECS.items()}
    )
    values |= {f"ground.{key}": value for key, value in ground.items()}
    settings = ground_settings(values, CITYSCAPES, 1)
    costs = settings.costs.table
    assert costs[CITYSCAPES.index("road")] == 0 and costs[CITYSCAPES.index("car")] == 100 and settings.poses is None
