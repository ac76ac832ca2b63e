"""The lifecycle node in-process on a real rclpy: transitions, QoS, masks, metrics, diagnostics.

Each test starts a SegNode of the tiny CPU setup (eager, bundled model) in a namespace of its
own and talks to it from a second node over DDS on loopback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import cv2
import hostile_frames
import numpy as np
import pytest

from segnode.pipeline.imaging import image_to_array

try:
    from diagnostic_msgs.msg import DiagnosticArray
    from rcl_interfaces.msg import Log
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image
    from std_srvs.srv import SetBool

    from segnode.ros import convert
    from segnode.ros.node import SegNode
except ImportError as err:  # a skip, never a collection error (conftest.py says why)
    MISSING = f'{err.name} is not installed (ROS 2: `make ros-test` installs its wheels)'
else:
    MISSING = ''

pytestmark = [pytest.mark.ros, pytest.mark.skipif(bool(MISSING), reason=MISSING)]
H, W = 64, 96


@pytest.fixture
def make_node(
    ros: None, namespace: str, cpu_params: dict[str, Any]
) -> Iterator[Callable[..., SegNode]]:
    """A factory of SegNodes of the tiny CPU setup (keyword overrides), destroyed after."""
    nodes: list[SegNode] = []

    def make(**overrides: Any) -> SegNode:
        values = {**cpu_params, **overrides}
        params = [Parameter(name, value=value) for name, value in values.items()]
        nodes.append(SegNode(namespace=namespace, parameter_overrides=params))
        return nodes[-1]

    yield make
    for node in nodes:
        node.destroy_node()


@pytest.fixture
def segnode(make_node: Callable[..., SegNode]) -> SegNode:
    return make_node()


class Peer:
    """A second node beside the SegNode: camera publishers and subscribers of its outputs."""

    def __init__(self, segnode: SegNode, namespace: str) -> None:
        self.node = Node('tester', namespace=namespace)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(segnode)
        self.executor.add_node(self.node)
        self.got: dict[str, list[Any]] = {}

    def listen(self, name: str, msg_type: Any, topic: str, qos: Any = None) -> list[Any]:
        self.got[name] = []
        qos = qos or convert.qos_profile('DEFAULT', 10)
        self.node.create_subscription(msg_type, topic, self.got[name].append, qos)
        return self.got[name]

    def camera(self, topic: str = 'camera/image_raw', msg_type: Any = None) -> Any:
        return self.node.create_publisher(
            msg_type or Image, topic, convert.qos_profile('DEFAULT', 1)
        )

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture
def peer(segnode: SegNode, namespace: str) -> Iterator[Peer]:
    p = Peer(segnode, namespace)
    yield p
    p.close()


def image(sec: int = 1234, nanosec: int = 5678, seed: int = 0, shape: tuple[int, int] = (H, W)):
    frame = np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)
    header = SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nanosec), frame_id='cam')
    return convert.image_msg(frame, 'rgb8', header)


def start(node: SegNode) -> None:
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS


def test_every_transition_twice(segnode: SegNode) -> None:
    assert segnode.autostart is False
    for _ in range(2):  # a second round: parameters are declared once, engines rebuilt
        start(segnode)
        assert segnode._service.running
        assert segnode.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert not segnode._service.running
        assert segnode.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert segnode._service is None
    assert segnode.describe_parameter('engine.backend').read_only
    assert segnode.get_parameter('engine.backend').value == 'eager'
    assert segnode.trigger_shutdown() == TransitionCallbackReturn.SUCCESS


def test_autostart_configures_and_activates(make_node: Callable[..., SegNode]) -> None:
    node = make_node(autostart=True)
    assert node.autostart is True
    assert node.configure_and_activate()
    assert node._state_machine.current_state[1] == 'active'


def test_bad_config_fails_configure(make_node: Callable[..., SegNode]) -> None:
    node = make_node(**{'engine.backend': 'bogus'})
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    node = make_node(**{'camera_names': ['front', 'front']})
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE


def test_qos_best_effort_depth_one_in_reliable_out(
    make_node: Callable[..., SegNode], namespace: str, spin_until: Callable[..., bool]
) -> None:
    node = make_node()
    start(node)
    (sub,) = node._subs
    assert sub.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    assert sub.qos_profile.depth == 1
    labels = node._pubs['camera'].labels
    assert labels.qos_profile.reliability == ReliabilityPolicy.RELIABLE
    assert labels.qos_profile.depth == 1
    assert node._label_pub is None or (
        node._label_pub.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
    )
    # ... as another node sees them over DDS
    tester = Node('qos_probe', namespace=namespace)
    executor = SingleThreadedExecutor()
    executor.add_node(tester)
    try:
        topic = f'{namespace}/segnode/camera/labels'
        assert spin_until(executor, lambda: bool(tester.get_publishers_info_by_topic(topic)))
        (info,) = tester.get_publishers_info_by_topic(topic)
        assert info.qos_profile.reliability == ReliabilityPolicy.RELIABLE
    finally:
        executor.shutdown()
        tester.destroy_node()


def test_qos_parameters(make_node: Callable[..., SegNode]) -> None:
    node = make_node(input_qos='DEFAULT', input_depth=3, output_qos='SENSOR_DATA', output_depth=2)
    start(node)
    (sub,) = node._subs
    assert (sub.qos_profile.reliability, sub.qos_profile.depth) == (
        ReliabilityPolicy.RELIABLE,
        3,
    )
    labels = node._pubs['camera'].labels
    assert (labels.qos_profile.reliability, labels.qos_profile.depth) == (
        ReliabilityPolicy.BEST_EFFORT,
        2,
    )


def test_one_mask_per_processed_frame_with_the_input_header(
    segnode: SegNode, peer: Peer, spin_until: Callable[..., bool]
) -> None:
    start(segnode)
    labels = peer.listen('labels', Image, 'segnode/camera/labels')
    metrics = peer.listen('metrics', DiagnosticArray, 'segnode/camera/metrics')
    camera = peer.camera()
    assert spin_until(peer.executor, lambda: bool(labels), every=lambda: camera.publish(image()))
    spin_until(peer.executor, lambda: False, timeout=1.0)  # the last of those frames, if any
    for sec in range(2000, 2004):  # one at a time: each processed before the next is sent
        camera.publish(image(sec=sec, seed=sec))
        assert spin_until(peer.executor, lambda: labels[-1].header.stamp.sec == sec, timeout=30)
    assert spin_until(peer.executor, lambda: len(metrics) >= len(labels), timeout=10.0)
    processed = segnode._service.stats()['camera'].processed
    assert len(labels) == processed
    assert [m.header.stamp.sec for m in labels[-4:]] == [2000, 2001, 2002, 2003]
    for mask in labels:
        assert (mask.encoding, mask.height, mask.width, mask.step) == ('mono8', H, W, W)
        assert mask.header.frame_id == 'cam'
        assert image_to_array(mask).max() < 11
    assert [m.header.stamp.sec for m in metrics[-4:]] == [2000, 2001, 2002, 2003]
    values = {kv.key: kv.value for kv in metrics[-1].status[0].values}
    assert float(values['total_ms']) > 0
    assert int(values['processed_total']) == processed
    assert metrics[-1].status[0].name == 'segnode: camera'


def test_compressed_input(
    make_node: Callable[..., SegNode], namespace: str, spin_until: Callable[..., bool]
) -> None:
    node = make_node(**{'cameras.camera.transport': 'compressed'})
    start(node)
    peer = Peer(node, namespace)
    try:
        labels = peer.listen('labels', Image, 'segnode/camera/labels')
        camera = peer.camera('camera/image_raw/compressed', CompressedImage)
        frame = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
        for fmt, ext in (('png', '.png'), ('jpeg', '.jpg')):
            msg = CompressedImage(format=fmt, data=cv2.imencode(ext, frame)[1].tobytes())
            msg.header.stamp.sec = 7 if fmt == 'png' else 8
            assert spin_until(
                peer.executor,
                lambda: bool(labels) and labels[-1].header.stamp == msg.header.stamp,
                every=lambda: camera.publish(msg),
            )
            assert (labels[-1].height, labels[-1].width) == (H, W)
        assert {m.header.stamp.sec for m in labels} == {7, 8}
    finally:
        peer.close()


def test_compressed_frames_are_judged_by_their_bytes(
    make_node: Callable[..., SegNode], namespace: str, spin_until: Callable[..., bool]
) -> None:
    """Issue 24: a PNG labelled jpeg is segmented; lying and random bytes are bad frames."""
    node = make_node(**{'cameras.camera.transport': 'compressed'})
    start(node)
    peer = Peer(node, namespace)
    try:
        labels = peer.listen('labels', Image, 'segnode/camera/labels')
        camera = peer.camera('camera/image_raw/compressed', CompressedImage)
        stats, engines = node._service.stats, len(node._service.segmenters())
        for data in (
            hostile_frames.jpeg_claiming(4096, 4096, nbytes=723),
            hostile_frames.jpeg_claiming(65000, 65000, nbytes=723),
            hostile_frames.random_bytes(700),
        ):
            before, bad = stats()['camera'].bad, CompressedImage(format='jpeg', data=data)
            assert spin_until(
                peer.executor,
                lambda n=before: stats()['camera'].bad > n,
                every=lambda m=bad: camera.publish(m),
            )
        assert labels == [] and len(node._service.segmenters()) == engines  # none built for them
        frame = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
        msg = CompressedImage(format='jpeg', data=cv2.imencode('.png', frame)[1].tobytes())
        msg.header.stamp.sec = 9
        assert spin_until(
            peer.executor,
            lambda: bool(labels) and labels[-1].header.stamp.sec == 9,
            every=lambda: camera.publish(msg),
        )
        assert (labels[-1].height, labels[-1].width) == (H, W)
        assert node._service.running and not node._service.failure
    finally:
        peer.close()


def test_two_cameras_served_by_one_engine(
    make_node: Callable[..., SegNode], namespace: str, spin_until: Callable[..., bool]
) -> None:
    node = make_node(camera_names=['front', 'rear'])
    start(node)
    peer = Peer(node, namespace)
    try:
        got = {cam: peer.listen(cam, Image, f'segnode/{cam}/labels') for cam in ('front', 'rear')}
        cams = {cam: peer.camera(f'{cam}/image_raw') for cam in ('front', 'rear')}

        def publish() -> None:
            for cam, pub in cams.items():
                pub.publish(image(sec=1 if cam == 'front' else 2))

        assert spin_until(peer.executor, lambda: all(got.values()), every=publish)
        assert {m.header.stamp.sec for m in got['front']} == {1}
        assert {m.header.stamp.sec for m in got['rear']} == {2}
        assert len(node._service.segmenters()) == 1
    finally:
        peer.close()


def test_diagnostics_and_label_info(
    make_node: Callable[..., SegNode], namespace: str, spin_until: Callable[..., bool]
) -> None:
    node = make_node(diagnostics_period_s=0.2)
    start(node)
    peer = Peer(node, namespace)
    try:
        labels = peer.listen('labels', Image, 'segnode/camera/labels')
        diagnostics = peer.listen('diagnostics', DiagnosticArray, '/diagnostics')
        camera = peer.camera()
        assert spin_until(
            peer.executor, lambda: bool(labels), every=lambda: camera.publish(image())
        )
        seen = len(diagnostics)
        assert spin_until(peer.executor, lambda: len(diagnostics) > seen + 1, timeout=10.0)
        statuses = {s.name: s for s in diagnostics[-1].status}
        assert set(statuses) == {'segnode: engine', 'segnode: camera camera'}
        cam = statuses['segnode: camera camera']
        values = {kv.key: kv.value for kv in cam.values}
        assert int(values['processed']) >= 1 and values['bad'] == '0'
        assert {'rate_hz', 'latency_p50_ms', 'latency_p95_ms', 'dropped'} <= set(values)
        assert cam.hardware_id == 'none'
        engine = {kv.key: kv.value for kv in statuses['segnode: engine'].values}
        assert engine, statuses['segnode: engine']
        if node._label_pub is None:
            return  # vision_msgs is not installed (test_label_info_is_optional)
        info = peer.listen('info', convert.LabelInfo, 'segnode/label_info', convert.latched_qos())
        assert spin_until(peer.executor, lambda: bool(info), timeout=10.0)  # latched: late is fine
        assert [c.class_name for c in info[0].class_map][-1] == 'unlabeled'
    finally:
        peer.close()


def test_label_info_is_optional(
    segnode: SegNode, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(convert, 'LabelInfo', None)  # as where vision_msgs is not installed
    start(segnode)
    assert segnode._label_pub is None
    topics = [t for t, _ in segnode.get_publisher_names_and_types_by_node('segnode', namespace)]
    assert f'{namespace}/segnode/camera/labels' in topics
    assert not any(topic.endswith('/label_info') for topic in topics)


def test_enable_pauses_and_resumes(
    segnode: SegNode, peer: Peer, spin_until: Callable[..., bool]
) -> None:
    start(segnode)
    labels = peer.listen('labels', Image, 'segnode/camera/labels')
    camera = peer.camera()
    assert spin_until(peer.executor, lambda: bool(labels), every=lambda: camera.publish(image()))
    client = peer.node.create_client(SetBool, 'segnode/enable')
    assert client.wait_for_service(timeout_sec=10.0)

    def call(data: bool) -> Any:
        future = client.call_async(SetBool.Request(data=data))
        assert spin_until(peer.executor, future.done, timeout=10.0)
        return future.result()

    assert call(False).success and segnode._service.enabled is False
    spin_until(peer.executor, lambda: False, timeout=0.5)  # a frame in flight may finish
    before = len(labels)
    spin_until(peer.executor, lambda: False, timeout=1.5, every=lambda: camera.publish(image()))
    assert len(labels) == before
    assert call(True).success and segnode._service.enabled is True
    assert spin_until(
        peer.executor, lambda: len(labels) > before, every=lambda: camera.publish(image())
    )


def test_hostile_frame_is_counted_and_the_node_stays_up(
    segnode: SegNode, peer: Peer, spin_until: Callable[..., bool]
) -> None:
    start(segnode)
    labels = peer.listen('labels', Image, 'segnode/camera/labels')
    rosout = peer.listen('rosout', Log, '/rosout')
    camera = peer.camera()
    bad = Image(height=60000, width=60000, encoding='rgb8', step=180000, data=b'\x00' * 64)
    stats = segnode._service.stats
    assert spin_until(
        peer.executor, lambda: stats()['camera'].bad >= 1, every=lambda: camera.publish(bad)
    )
    assert labels == []
    assert spin_until(peer.executor, lambda: bool(labels), every=lambda: camera.publish(image()))
    assert segnode._service.running and not segnode._service.failure
    # The warning reaches /rosout (Humble's child loggers would not), once per warn period.
    warnings = [log.msg for log in rosout if 'frame dropped' in log.msg]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith('camera: frame dropped: ')


def test_bad_frame_warnings_are_throttled_per_camera(make_node: Callable[..., SegNode]) -> None:
    node = make_node(camera_names=['front', 'rear'], warn_period_s=60.0)
    start(node)
    said: list[str] = []
    node.get_logger = lambda: SimpleNamespace(warning=said.append)  # type: ignore[method-assign]
    for camera in ('front', 'front', 'rear', 'front', 'rear'):
        node._on_bad_frame(camera, 'bad bytes')
    assert said == ['front: frame dropped: bad bytes', 'rear: frame dropped: bad bytes']
