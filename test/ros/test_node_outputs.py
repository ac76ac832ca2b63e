"""Confidence and compressed labels from ``segnode_node`` as a process, over DDS.

A subscriber in this process gets ``~/camera/labels``, ``~/camera/confidence`` and
``~/camera/labels/compressed`` for the same stamps; the PNG decodes to the labels exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

try:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import CompressedImage, Image

    from segnode.pipeline.imaging import image_to_array
    from segnode.ros import convert
except ImportError as err:  # a skip, never a collection error (conftest.py says why)
    MISSING = f'{err.name} is not installed (ROS 2: `make ros-test` installs its wheels)'
else:
    MISSING = ''

pytestmark = [pytest.mark.ros, pytest.mark.skipif(bool(MISSING), reason=MISSING)]
START_S = 180.0  # torch import, model load and the first engine on a slow, busy machine
EAGER = ['-p', 'engine.device:=cpu', '-p', 'engine.parity_gate:=false',
         '-p', 'engine.backend:=eager', '-p', 'engine.precision:=fp32']  # fmt: skip


def _stamp(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 10**9 + int(msg.header.stamp.nanosec)


def test_labels_confidence_and_compressed_labels_for_the_same_stamps(
    ros: None, namespace: str, node_process: Callable[..., Any]
) -> None:
    node = Node('peer', namespace=namespace)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    got: dict[str, dict[int, Any]] = {'labels': {}, 'confidence': {}, 'compressed': {}}
    qos = convert.qos_profile('DEFAULT', 10)
    for kind, msg_type, topic in (
        ('labels', Image, 'segnode/camera/labels'),
        ('confidence', Image, 'segnode/camera/confidence'),
        ('compressed', CompressedImage, 'segnode/camera/labels/compressed'),
    ):
        node.create_subscription(
            msg_type, topic, lambda m, k=kind: got[k].__setitem__(_stamp(m), m), qos
        )
    camera = node.create_publisher(Image, 'camera/image_raw', convert.qos_profile('DEFAULT', 1))
    proc = node_process('-r', f'__ns:={namespace}', *EAGER, '-p', 'engine.confidence:=true')
    rng = np.random.default_rng(0)
    sent = [0]

    def publish() -> None:
        sent[0] += 1
        header = SimpleNamespace(stamp=SimpleNamespace(sec=42, nanosec=sent[0]), frame_id='cam')
        frame = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
        camera.publish(convert.image_msg(frame, 'rgb8', header))

    def complete() -> list[int]:
        return sorted(set(got['labels']) & set(got['confidence']) & set(got['compressed']))

    deadline = rclpy.clock.Clock().now().nanoseconds + START_S * 1e9
    try:
        while len(complete()) < 3 and rclpy.clock.Clock().now().nanoseconds < deadline:
            assert proc.proc.poll() is None, f'segnode_node exited early:\n{proc.output()}'
            publish()
            executor.spin_once(timeout_sec=0.3)
        stamps = complete()
        assert len(stamps) >= 3, (
            f'{ {k: len(v) for k, v in got.items()} } after {sent[0]} frames\n{proc.output()}'
        )
        for stamp in stamps:
            labels, conf, png = (got[k][stamp] for k in ('labels', 'confidence', 'compressed'))
            mask = image_to_array(labels)
            assert png.format == 'mono8; png compressed '
            assert png.header.frame_id == conf.header.frame_id == 'cam'
            decoded = cv2.imdecode(np.frombuffer(bytes(png.data), np.uint8), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(decoded, mask)
            assert (conf.encoding, conf.height, conf.width) == ('mono8', 64, 96)
            assert int(image_to_array(conf).min()) >= round(255 / 11)  # at least 1/K
        code, _ = proc.interrupt(timeout=15.0)
        assert code == 0, proc.output()
    finally:
        executor.shutdown()
        node.destroy_node()
