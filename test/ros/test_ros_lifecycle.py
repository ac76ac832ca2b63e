"""The lifecycle node in-process: transitions, a bad config, an image in and a mask out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
import importlib
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from segnode.pipeline.imaging import array_to_fields, image_to_array

# ROS modules are imported after the skip, without import statements (ament_flake8's import
# order check would flag imports that follow code).
pytest.importorskip(
    'rclpy', reason='rclpy is not installed (needs a ROS 2 Humble or Jazzy install)'
)
pytestmark = pytest.mark.ros
rclpy_executors = importlib.import_module('rclpy.executors')
rclpy_lifecycle = importlib.import_module('rclpy.lifecycle')
rclpy_node = importlib.import_module('rclpy.node')
rclpy_parameter = importlib.import_module('rclpy.parameter')
diagnostic_msgs = importlib.import_module('diagnostic_msgs.msg')
sensor_msgs = importlib.import_module('sensor_msgs.msg')
std_srvs = importlib.import_module('std_srvs.srv')
vision_msgs = importlib.import_module('vision_msgs.msg')
convert = importlib.import_module('segnode.ros.convert')
SegNode = importlib.import_module('segnode.ros.node').SegNode

TransitionCallbackReturn = rclpy_lifecycle.TransitionCallbackReturn
SUCCESS = TransitionCallbackReturn.SUCCESS
H, W = 64, 96


@pytest.fixture
def make_node(
    ros: None, namespace: str, cpu_params: dict[str, Any]
) -> Iterator[Callable[..., SegNode]]:
    """A factory of SegNodes of the tiny CPU setup (keyword overrides), destroyed after."""
    nodes: list[SegNode] = []

    def make(**overrides: Any) -> SegNode:
        values = {**cpu_params, **overrides}
        overrides_list = [
            rclpy_parameter.Parameter(name, value=value) for name, value in values.items()
        ]
        nodes.append(SegNode(namespace=namespace, parameter_overrides=overrides_list))
        return nodes[-1]

    yield make
    for node in nodes:
        node.destroy_node()


@pytest.fixture
def segnode(make_node: Callable[..., SegNode]) -> SegNode:
    return make_node()


def test_transitions(segnode: SegNode) -> None:
    assert segnode.autostart is False
    for _ in range(2):  # a second round: parameters are declared once, engines rebuilt
        assert segnode.trigger_configure() == SUCCESS
        assert segnode.trigger_activate() == SUCCESS
        assert segnode.trigger_deactivate() == SUCCESS
        assert segnode.trigger_cleanup() == SUCCESS
    assert segnode.describe_parameter('engine.backend').read_only
    assert segnode.get_parameter('engine.backend').value == 'eager'
    assert segnode.trigger_shutdown() == SUCCESS


def test_bad_config_fails_configure(make_node: Callable[..., SegNode]) -> None:
    node = make_node(**{'engine.backend': 'bogus'})
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    node = make_node(**{'camera_names': ['front', 'front']})
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE


def test_image_in_mask_out(
    segnode: SegNode, namespace: str, spin_until: Callable[..., bool]
) -> None:
    assert segnode.trigger_configure() == SUCCESS
    assert segnode.trigger_activate() == SUCCESS
    tester = rclpy_node.Node('tester', namespace=namespace)
    executor = rclpy_executors.SingleThreadedExecutor()
    executor.add_node(segnode)
    executor.add_node(tester)
    got: dict[str, list[Any]] = {'labels': [], 'metrics': [], 'info': []}
    reliable = convert.qos_profile('DEFAULT', 10)
    tester.create_subscription(
        sensor_msgs.Image, 'segnode/camera/labels', got['labels'].append, reliable
    )
    tester.create_subscription(
        diagnostic_msgs.DiagnosticArray, 'segnode/camera/metrics', got['metrics'].append, reliable
    )
    tester.create_subscription(
        vision_msgs.LabelInfo, 'segnode/label_info', got['info'].append, convert.latched_qos()
    )
    camera = tester.create_publisher(
        sensor_msgs.Image, 'camera/image_raw', convert.qos_profile('DEFAULT', 1)
    )
    stamp = SimpleNamespace(sec=1234, nanosec=5678)
    frame = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    msg = convert.image_msg(
        array_to_fields(frame, 'rgb8'), SimpleNamespace(stamp=stamp, frame_id='camera_optical')
    )
    try:
        done = spin_until(
            executor,
            lambda: bool(got['labels'] and got['metrics'] and got['info']),
            every=lambda: camera.publish(msg),
        )
        assert done, {key: len(value) for key, value in got.items()}
        labels = got['labels'][0]
        assert (labels.encoding, labels.height, labels.width) == ('mono8', H, W)
        assert labels.header == msg.header
        assert image_to_array(labels).max() < 11
        assert got['metrics'][0].header == msg.header
        assert [c.class_name for c in got['info'][0].class_map][-1] == 'unlabeled'

        client = tester.create_client(std_srvs.SetBool, 'segnode/enable')
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(std_srvs.SetBool.Request(data=False))
        assert spin_until(executor, future.done, timeout=10.0)
        assert future.result().success
        assert segnode._service.enabled is False
    finally:
        executor.shutdown()
        tester.destroy_node()
