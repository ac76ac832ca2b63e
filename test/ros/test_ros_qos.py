"""QoS presets on the wire: a best-effort (SENSOR_DATA) subscriber hears a reliable camera."""

from __future__ import annotations

from collections.abc import Callable
import importlib
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from segnode.pipeline.imaging import array_to_fields

# ROS modules are imported after the skip, without import statements (ament_flake8's import
# order check would flag imports that follow code).
pytest.importorskip(
    'rclpy', reason='rclpy is not installed (needs a ROS 2 Humble or Jazzy install)'
)
pytestmark = pytest.mark.ros
rclpy_executors = importlib.import_module('rclpy.executors')
rclpy_node = importlib.import_module('rclpy.node')
sensor_msgs = importlib.import_module('sensor_msgs.msg')
convert = importlib.import_module('segnode.ros.convert')


@pytest.mark.parametrize('publisher_preset', ['DEFAULT', 'SENSOR_DATA'])
def test_best_effort_subscriber_hears_any_camera(
    ros: None, namespace: str, publisher_preset: str, spin_until: Callable[..., bool]
) -> None:
    node = rclpy_node.Node('qos_test', namespace=namespace)
    executor = rclpy_executors.SingleThreadedExecutor()
    executor.add_node(node)
    received: list[Any] = []
    node.create_subscription(
        sensor_msgs.Image,
        'camera/image_raw',
        received.append,
        convert.qos_profile('SENSOR_DATA', 1),
    )
    publisher = node.create_publisher(
        sensor_msgs.Image, 'camera/image_raw', convert.qos_profile(publisher_preset, 1)
    )
    header = SimpleNamespace(stamp=SimpleNamespace(sec=1, nanosec=2), frame_id='camera')
    msg = convert.image_msg(array_to_fields(np.zeros((4, 6, 3), np.uint8), 'rgb8'), header)
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
    node = rclpy_node.Node('qos_mismatch', namespace=namespace)
    executor = rclpy_executors.SingleThreadedExecutor()
    executor.add_node(node)
    received: list[Any] = []
    node.create_subscription(
        sensor_msgs.Image, 'camera/image_raw', received.append, convert.qos_profile('DEFAULT', 1)
    )
    publisher = node.create_publisher(
        sensor_msgs.Image, 'camera/image_raw', convert.qos_profile('SENSOR_DATA', 1)
    )
    try:
        spin_until(
            executor,
            lambda: bool(received),
            timeout=2.0,
            every=lambda: publisher.publish(sensor_msgs.Image()),
        )
        assert received == []
    finally:
        executor.shutdown()
        node.destroy_node()
