"""Launch one segnode node with a params file.

Example:
    ros2 launch segnode segnode.launch.py params_file:=/path/to/segnode.yaml namespace:=front
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments and the segnode node."""
    default_params = os.path.join(get_package_share_directory('segnode'), 'config', 'segnode.yaml')
    # A typed bool parameter, not the string 'true'.
    autostart = ParameterValue(LaunchConfiguration('autostart'), value_type=bool)
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                'params_file',
                default_value=default_params,
                description='ROS 2 params file (/**: ros__parameters: ...) for the node.',
            ),
            DeclareLaunchArgument(
                'namespace', default_value='', description='Namespace of the node.'
            ),
            DeclareLaunchArgument(
                'autostart',
                default_value='true',
                description='Configure and activate the lifecycle node on start.',
            ),
            Node(
                package='segnode',
                executable='segnode_node',
                name='segnode',
                namespace=LaunchConfiguration('namespace'),
                parameters=[
                    LaunchConfiguration('params_file'),
                    {'autostart': autostart},
                ],
                output='screen',
            ),
        ]
    )
