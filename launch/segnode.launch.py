"""Launch one segnode node with a params file.

Examples:
    ros2 launch segnode segnode.launch.py
    ros2 launch segnode segnode.launch.py params_file:=/path/to/params.yaml namespace:=vehicle
    ros2 launch segnode segnode.launch.py camera_topic:=/front/image_raw

``camera_topic`` remaps the default camera's input (``camera/image_raw``); with other camera
names, set ``cameras.<name>.topic`` in the params file or add remaps. ``autostart:=false`` leaves
the lifecycle node unconfigured for ``ros2 lifecycle set /segnode configure`` (or a lifecycle
manager).
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
    arguments = [
        DeclareLaunchArgument(
            'params_file',
            default_value=default_params,
            description='ROS 2 params file (/**: ros__parameters: ...) of the node.',
        ),
        DeclareLaunchArgument('namespace', default_value='', description='Namespace of the node.'),
        DeclareLaunchArgument(
            'autostart',
            default_value='true',
            description='Configure and activate the lifecycle node at start-up.',
        ),
        DeclareLaunchArgument(
            'camera_topic',
            default_value='camera/image_raw',
            description='Input topic of the default camera (remaps camera/image_raw).',
        ),
        DeclareLaunchArgument(
            'use_sim_time',
            default_value='false',
            description='Use /clock (bag replay with --clock, simulators).',
        ),
    ]
    node = Node(
        package='segnode',
        executable='segnode_node',
        name='segnode',
        namespace=LaunchConfiguration('namespace'),
        parameters=[
            LaunchConfiguration('params_file'),
            {
                # Typed parameters, not the strings 'true' / 'false'.
                'autostart': ParameterValue(LaunchConfiguration('autostart'), value_type=bool),
                'use_sim_time': ParameterValue(
                    LaunchConfiguration('use_sim_time'), value_type=bool
                ),
            },
        ],
        remappings=[('camera/image_raw', LaunchConfiguration('camera_topic'))],
        output='screen',
    )
    return LaunchDescription([*arguments, node])
