"""Proof of life (launch_testing): launch segnode_node, publish one image, get its mask back.

Runs where ROS 2 and the built package are available (``colcon build`` then ``colcon test``,
or ``launch_test test/ros/test_proof_of_life.py`` in a sourced workspace); skipped elsewhere.
The node runs the eager CPU engine with the bundled CamVid model, so the test needs
no GPU and checks the interface, not the segmentation quality.
"""

from __future__ import annotations

import os
import tempfile
import time
from types import SimpleNamespace
from typing import Any
import unittest

import numpy as np
import pytest

try:
    import launch
    from launch_ros.actions import Node
    import launch_testing
    import launch_testing.actions
    import launch_testing.asserts
    import rclpy
    from sensor_msgs.msg import Image

    from segnode.ros import convert
except ImportError as err:  # a skip, never a collection error (conftest.py says why)
    MISSING = f'{err.name} is not installed (launch_testing comes with a ROS 2 install, no wheel)'
else:
    MISSING = ''


def _not_installed() -> str:
    """Why the launch test cannot start the node: segnode is not in a sourced workspace."""
    from ament_index_python.packages import get_package_share_directory, PackageNotFoundError

    try:
        get_package_share_directory('segnode')
    except PackageNotFoundError:
        return 'segnode is not installed in a sourced workspace (colcon build, then source it)'
    return ''


MISSING = MISSING or _not_installed()

pytestmark = pytest.mark.ros
NAMESPACE = 'proof_of_life'
HEIGHT, WIDTH = 64, 96
TIMEOUT_S = 120.0  # model load and the first (eager) engine build on a slow CI machine
PARAMS = """\
/**:
  ros__parameters:
    engine:
      backend: eager
      device: cpu
      precision: fp32
      parity_gate: false
"""


if MISSING:

    @pytest.mark.skip(reason=MISSING)
    def test_proof_of_life() -> None:
        """Stands for the launch test where launch_testing is missing."""

else:

    @pytest.mark.launch_test
    @pytest.mark.ros  # launch_testing copies these markers, not the module's pytestmark
    def generate_test_description() -> tuple[Any, dict[str, Any]]:
        params = os.path.join(tempfile.mkdtemp(prefix='segnode_pol_'), 'params.yaml')
        with open(params, 'w', encoding='utf-8') as f:
            f.write(PARAMS)
        node = Node(
            package='segnode',
            executable='segnode_node',
            name='segnode',
            namespace=NAMESPACE,
            parameters=[params],
            output='screen',
        )
        description = launch.LaunchDescription([node, launch_testing.actions.ReadyToTest()])
        return description, {'segnode': node}

    class TestProofOfLife(unittest.TestCase):
        """While the node runs: an image in, its mask out."""

        @classmethod
        def setUpClass(cls) -> None:
            rclpy.init()

        @classmethod
        def tearDownClass(cls) -> None:
            rclpy.try_shutdown()

        def setUp(self) -> None:
            self.node = rclpy.create_node('proof_of_life_tester', namespace=NAMESPACE)

        def tearDown(self) -> None:
            self.node.destroy_node()

        def test_mask_has_the_input_stamp_frame_and_size(self) -> None:
            received: list[Any] = []
            self.node.create_subscription(
                Image,
                'segnode/camera/labels',
                received.append,
                convert.qos_profile('DEFAULT', 10),
            )
            camera = self.node.create_publisher(
                Image, 'camera/image_raw', convert.qos_profile('DEFAULT', 1)
            )
            header = SimpleNamespace(
                stamp=SimpleNamespace(sec=1_700_000_123, nanosec=456_000), frame_id='pol_camera'
            )
            frame = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
            msg = convert.image_msg(frame, 'rgb8', header)
            deadline = time.monotonic() + TIMEOUT_S
            while not received and time.monotonic() < deadline:
                camera.publish(msg)  # again until discovery has matched and the node is active
                rclpy.spin_once(self.node, timeout_sec=0.5)
            self.assertTrue(received, f'no mask on segnode/camera/labels within {TIMEOUT_S:.0f} s')
            mask = received[0]
            self.assertEqual(mask.encoding, 'mono8')
            self.assertEqual((mask.height, mask.width, mask.step), (HEIGHT, WIDTH, WIDTH))
            self.assertEqual(mask.header.stamp.sec, 1_700_000_123)
            self.assertEqual(mask.header.stamp.nanosec, 456_000)
            self.assertEqual(mask.header.frame_id, 'pol_camera')
            self.assertEqual(len(mask.data), HEIGHT * WIDTH)

    @launch_testing.post_shutdown_test()
    class TestShutdown(unittest.TestCase):
        """After the launch: the node exited cleanly."""

        def test_exit_code(self, proc_info: Any) -> None:
            launch_testing.asserts.assertExitCodes(proc_info)
