"""Placeholder launch file; the node issue writes the real one (see DESIGN.md)."""

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([])
