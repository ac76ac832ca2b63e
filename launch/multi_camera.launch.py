"""Launch one segnode node serving three cameras (front, left, right) with one engine.

Example:
    ros2 launch segnode multi_camera.launch.py
    ros2 launch segnode multi_camera.launch.py params_file:=/path/to/my_cameras.yaml

The cameras and their topics come from the params file (default: config/multi_camera.yaml);
outputs appear under /<namespace>/segnode/<camera>/{labels,color,metrics}. ``autostart`` and
``use_sim_time`` override the params file only when given (``use_sim_time:=true`` for a bag
replayed with --clock).
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction

from segnode.ros.launch_args import declare_overrides, segnode_node


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments and the one node that serves every camera."""
    share = get_package_share_directory('segnode')
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                'params_file',
                default_value=os.path.join(share, 'config', 'multi_camera.yaml'),
                description='Params file naming the cameras (camera_names, cameras.<name>.*).',
            ),
            DeclareLaunchArgument(
                'namespace', default_value='', description='Namespace of the node.'
            ),
            *declare_overrides(),
            OpaqueFunction(function=segnode_node),
        ]
    )
