"""QoS presets on the wire: a best-effort (SENSOR_DATA) subscriber hears a reliable camera."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

try:
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from segnode.ros import convert
except ImportError as err:  # a skip, never a collection error (conftest.py says why)
    MISSING = f'{err.name} is not installed (ROS 2: `make ros-test` installs its wheels)'
else:
    MISSING = ''

pytestmark = [pytest.mark.ros, pytest.mark.skipif(bool(MISSING), reason=MISSING)]


@pytest.mark.parametrize('publisher_preset', ['DEFAULT', 'SENSOR_DATA'])
def test_best_effort_subscriber_hears_any_camera(
    ros: None, namespace: str, publisher_preset: str, spin_until: Callable[..., bool]
) -> None:
    node = Node('qos_test', namespace=namespace)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    received: list[Any] = []
    node.create_subscription(
        Image,
        'camera/image_raw',
        received.append,
        convert.qos_profile('SENSOR_DATA', 1),
    )
    publisher = node.create_publisher(
        Image, 'camera/image_raw', convert.qos_profile(publisher_preset, 1)
    )
    header = SimpleNamespace(stamp=SimpleNamespace(sec=1, nanosec=2), frame_id='camera')
    msg = convert.image_msg(np.zeros((4, 6, 3), np.uint8), 'rgb8', header)
    try:
        assert spin_until(
            executor, lambda: bool(received), timeout=10.0, every=lambda: publisher.publish(msg)
        )
        assert received[0].header == msg.header
    finally:
        executor.shutdown()
        node.destroy_node()


def test_reliable_subscriber_does_not_hear_a_best_effort_camera(
    ros: None, namespace: str, spin_until: Callable[..., bool]
) -> None:
    """The mismatch docs/node.md warns about: why the node subscribes best-effort."""
    node = Node('qos_mismatch', namespace=namespace)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    received: list[Any] = []
    node.create_subscription(
        Image, 'camera/image_raw', received.append, convert.qos_profile('DEFAULT', 1)
    )
    publisher = node.create_publisher(
        Image, 'camera/image_raw', convert.qos_profile('SENSOR_DATA', 1)
    )
    try:
        spin_until(
            executor,
            lambda: bool(received),
            timeout=2.0,
            every=lambda: publisher.publish(Image()),
        )
        assert received == []
    finally:
        executor.shutdown()
        node.destroy_node()
