"""The node's parameter schema and the checks of parameter values, without a ROS graph."""

from __future__ import annotations

import argparse
import dataclasses

import pytest
from rclpy.parameter import Parameter
from support import CLASSES

from fast_scnn_core.cli.engine_args import ENGINE_OPTIONS, add_engine_arguments
from fast_scnn_core.errors import ConfigError
from fast_scnn_core.infer.segmenter import InferenceConfig, option_choices, option_help, option_range
from fast_scnn_ros.params import (
    SPECS,
    UNCONFIGURED_ONLY,
    camera_names,
    check_choices,
    engine_config,
    engine_parameters,
    ground_settings,
    output_settings,
    parameter_description,
    with_defaults,
)


def test_every_engine_option_is_a_parameter_described_and_bounded_by_its_field() -> None:
    """One text per option (InferenceConfig's metadata) in the descriptor; integer ranges from the same place."""
    specs = {spec.name: spec for spec in engine_parameters()}
    assert list(specs) == [field.name for field in dataclasses.fields(InferenceConfig)]
    for name, spec in specs.items():
        descriptor = spec.descriptor()
        assert descriptor.description == option_help(name)
        assert spec.choices == option_choices(name)
        if type(spec.default) is int:
            [bounds] = descriptor.integer_range
            assert (bounds.from_value, bounds.to_value) == option_range(name)
    assert specs["threads"].integer_range == (0, 1024)
    assert specs["width"].integer_range == specs["height"].integer_range == (0, 16384)


def test_cli_flags_and_launch_arguments_use_the_same_text() -> None:
    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    helps = {action.dest: action.help for action in parser._actions}
    for name in ENGINE_OPTIONS:
        assert helps[name] == option_help(name) == parameter_description(name)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"width": 20}, "width 20 is out of range: expected 32..16384, or 0"),
        ({"threads": 2000}, "threads 2000 is out of range"),
        ({"width": 4096, "height": 4096, "max_pixels": 1024}, "exceeds max_pixels"),
        ({"backend": "tensorflow"}, "backend 'tensorflow': expected one of"),
    ],
)
def test_engine_values_are_checked_by_inference_config(changes: dict, reason: str) -> None:
    values = {spec.name: spec.default for spec in engine_parameters()} | changes
    with pytest.raises(ConfigError, match=reason):
        engine_config(values)


def test_threads_zero_is_the_library_default() -> None:
    values = {spec.name: spec.default for spec in engine_parameters()}
    assert engine_config(values | {"threads": 0}).threads == 0


def test_choices_and_mask_classes_are_checked_with_the_valid_values_named() -> None:
    with pytest.raises(ConfigError, match=r"qos_reliability.*best_effort, reliable"):
        check_choices({"qos_reliability": "reliabl"})
    values = with_defaults({name: SPECS[name].default for name in SPECS}) | {"mask_classes": ["sky", "traffic_light"]}
    assert output_settings(values, CLASSES).mask_classes == (2, 1)
    with pytest.raises(ConfigError, match="mask_classes: unknown mask class 'car'"):
        output_settings(values | {"mask_classes": ["car"]}, CLASSES)


def test_unset_string_arrays_read_as_empty() -> None:
    assert with_defaults({"cameras": None, "mask_classes": None, "width": 0}) == {
        "cameras": [],
        "mask_classes": [],
        "width": 0,
    }


@pytest.mark.parametrize("names", [[], ["front"], ["front", "rear", "left", "right"], ["robot1/front", "cam_2"]])
def test_camera_names_that_are_relative_topic_names_are_accepted(names: list[str]) -> None:
    assert camera_names({"cameras": names}) == tuple(names)


@pytest.mark.parametrize(
    ("names", "reason"),
    [
        (["2front"], "'2front' is not a relative topic name"),
        (["front-left"], "'front-left' is not"),
        (["/front"], "'/front' is not"),
        ([""], "'' is not"),
        (["front", "rear", "front"], "front listed more than once"),
    ],
)
def test_camera_names_that_are_not_topic_names_are_refused(names: list[str], reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        camera_names({"cameras": names})


def test_a_lifecycle_nodes_startup_parameters_are_writable_and_say_when() -> None:
    """Read-only in the plain node; in the managed node rclpy lets them through and the node refuses them while
    configured (test_lifecycle.py), so the descriptor says when they can be set. Runtime ones are unchanged."""
    for spec in SPECS.values():
        plain, managed = spec.descriptor(), spec.descriptor(managed=True)
        assert plain.read_only == spec.read_only and not managed.read_only, spec.name
        assert (UNCONFIGURED_ONLY in managed.additional_constraints) == spec.read_only, spec.name
        assert UNCONFIGURED_ONLY not in plain.additional_constraints
    assert SPECS["qos_reliability"].descriptor(managed=True).additional_constraints == (
        f"one of: best_effort, reliable; {UNCONFIGURED_ONLY}"
    )


def defaults() -> dict:
    """Every parameter's value as rclpy gives it before anything is set (an array declared by type: None)."""
    return with_defaults(
        {name: None if isinstance(spec.default, Parameter.Type) else spec.default for name, spec in SPECS.items()}
    )


def ground_values(**changes: object) -> dict:
    values = defaults()
    return (
        values
        | {"ground.enabled": True, "ground.costs": ["road=0", "sky=-1"]}
        | {f"ground.{k}": v for k, v in changes.items()}
    )


def test_ground_settings_follow_the_parameters() -> None:
    assert ground_settings(defaults(), CLASSES, 1) is None
    settings = ground_settings(
        ground_values(camera_translation=[0.0, 0.0, 1.0], camera_rotation=[0, 0, 0, 1.0]), CLASSES, 1
    )
    assert (settings.grid.width, settings.grid.height, settings.base_frame) == (120, 120, "base_footprint")
    assert settings.costs.table[:3].tolist() == [0, 100, -1] and settings.poses[0].translation.tolist() == [0, 0, 1]
    assert ground_settings(ground_values(), CLASSES, 2).poses is None  # from tf2


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {"camera_translation": [0.0, 0.0, 1.0], "camera_rotation": []},
            "expected x y z and qx qy qz qw for each of the 2",
        ),
        ({"costs": ["car=0"]}, "names no class of this checkpoint"),
        ({"resolution": 0.001}, "over the limit of 1,000,000 cells"),
        ({"x_max": 6.03}, "not a multiple of ground.resolution"),
        ({"base_frame": ""}, "ground.base_frame is empty"),
        ({"camera_translation": [0.0] * 6, "camera_rotation": [0.0] * 8}, "not a quaternion"),
    ],
)
def test_ground_parameters_that_cannot_work_are_refused_with_the_reason(changes: dict, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        ground_settings(ground_values(**changes), CLASSES, 2)


def test_ground_needs_camera_info() -> None:
    with pytest.raises(ConfigError, match="use_camera_info true"):
        ground_settings(ground_values() | {"use_camera_info": False}, CLASSES, 1)
