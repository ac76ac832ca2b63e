"""Launch arguments that override the params file only when they are given.

``ros2 launch segnode segnode.launch.py autostart:=false`` must win over the params file, and
``autostart: false`` in the params file must win over the launch file's default. Parameters
listed after the params file override it, so each of these arguments defaults to ``''`` (not
given) and is passed to the node only when set on the command line (or by an including
launch file). Used by launch/*.launch.py; imports nothing of ROS but ``launch`` (in the
functions that need it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ['OVERRIDES', 'declare_overrides', 'given_overrides', 'segnode_node']

# name -> what it does; every one is a bool parameter of the node
OVERRIDES = {
    'autostart': 'Configure and activate the lifecycle node at start-up',
    'use_sim_time': 'Use /clock (bag replay with --clock, simulators)',
}


def given_overrides(values: Mapping[str, str]) -> dict[str, bool]:
    """The override arguments set in ``values`` (launch configurations), as typed parameters.

    Raises:
        ValueError: A value other than true or false (any case).
    """
    given: dict[str, bool] = {}
    for name in OVERRIDES:
        text = str(values.get(name, '')).strip().lower()
        if not text:
            continue
        if text not in ('true', 'false'):
            raise ValueError(f'{name}:= must be true or false, got {values[name]!r}')
        given[name] = text == 'true'
    return given


def declare_overrides() -> list[Any]:
    """``DeclareLaunchArgument`` of each override, empty (the params file decides) by default."""
    from launch.actions import DeclareLaunchArgument

    return [
        DeclareLaunchArgument(
            name,
            default_value='',
            description=f'{what} (true or false; default: the params file, else the node).',
        )
        for name, what in OVERRIDES.items()
    ]


def segnode_node(context: Any, **node_options: Any) -> list[Any]:
    """The segnode node of a launch file, for ``OpaqueFunction``.

    Its parameters are the params file, then only the overrides given on the command line, so
    that a value in the params file wins over an argument left out.

    Args:
        context: The ``LaunchContext``; its ``params_file`` and ``namespace`` are used.
        node_options: More ``launch_ros.actions.Node`` arguments (e.g. ``remappings``).
    """
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    overrides = given_overrides(context.launch_configurations)
    return [
        Node(
            package='segnode',
            executable='segnode_node',
            name='segnode',
            namespace=LaunchConfiguration('namespace'),
            parameters=[LaunchConfiguration('params_file'), *([overrides] if overrides else [])],
            output='screen',
            **node_options,
        )
    ]
