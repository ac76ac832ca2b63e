"""Launch one segnode node with a params file.

Examples:
    ros2 launch segnode segnode.launch.py
    ros2 launch segnode segnode.launch.py params_file:=/path/to/params.yaml namespace:=vehicle
    ros2 launch segnode segnode.launch.py camera_topic:=/front/image_raw

``camera_topic`` remaps the default camera's input (``camera/image_raw``); with other camera
names, set ``cameras.<name>.topic`` in the params file or add remaps. ``autostart:=false`` leaves
the lifecycle node unconfigured for ``ros2 lifecycle set /segnode configure`` (or a lifecycle
manager). ``autostart`` and ``use_sim_time`` override the params file only when given: a value
in the params file wins over the launch file's default.
"""

from __future__ import annotations

import os
from typing import Any

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from segnode.ros.launch_args import declare_overrides, segnode_node


def _node(context: LaunchContext) -> list[Any]:
    """The node, with autostart / use_sim_time only where given (else the params file wins)."""
    return segnode_node(
        context, remappings=[('camera/image_raw', LaunchConfiguration('camera_topic'))]
    )


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments and the segnode node."""
    default_params = os.path.join(get_package_share_directory('segnode'), 'config', 'segnode.yaml')
    arguments = [
        DeclareLaunchArgument(
            'params_file',
            default_value=default_params,
            description='ROS 2 params file (/**: ros__parameters: ...) of the node.',
        ),
        DeclareLaunchArgument('namespace', default_value='', description='Namespace of the node.'),
        DeclareLaunchArgument(
            'camera_topic',
            default_value='camera/image_raw',
            description='Input topic of the default camera (remaps camera/image_raw).',
        ),
        *declare_overrides(),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_node)])
