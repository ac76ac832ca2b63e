"""Message glue (segnode.ros.convert) with real rclpy messages: round trips and QoS presets."""

from __future__ import annotations

import array
from dataclasses import fields
from types import SimpleNamespace

import numpy as np
import pytest

from segnode.pipeline.imaging import image_to_array
from segnode.pipeline.service import FrameMetrics

try:
    from rclpy import qos
    from std_msgs.msg import Header

    from segnode.ros import convert
except ImportError as err:  # a skip, never a collection error (conftest.py says why)
    MISSING = f'{err.name} is not installed (ROS 2: `make ros-test` installs its wheels)'
else:
    MISSING = ''

pytestmark = [pytest.mark.ros, pytest.mark.skipif(bool(MISSING), reason=MISSING)]


def header(sec: int = 1_700_000_000, nanosec: int = 123_456_789, frame_id: str = 'cam') -> object:
    return SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nanosec), frame_id=frame_id)


@pytest.mark.parametrize(
    ('shape', 'encoding'), [((7, 5), 'mono8'), ((64, 96), 'mono8'), ((3, 5, 3), 'rgb8')]
)
def test_image_msg_round_trip(shape: tuple[int, ...], encoding: str) -> None:
    array_in = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    msg = convert.image_msg(array_in, encoding, header())
    assert isinstance(msg.data, array.array) and msg.data.typecode == 'B'
    assert (msg.height, msg.width, msg.encoding) == (shape[0], shape[1], encoding)
    assert msg.step == shape[1] * (3 if encoding == 'rgb8' else 1)
    np.testing.assert_array_equal(image_to_array(msg), array_in)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert msg.header.frame_id == 'cam'


def test_image_msg_copies_an_rclpy_header() -> None:
    source = Header(frame_id='front_optical')
    source.stamp.sec, source.stamp.nanosec = 42, 7
    msg = convert.image_msg(np.zeros((2, 3), np.uint8), 'mono8', source)
    assert msg.header == source
    assert msg.header is not source


def test_metrics_msg() -> None:
    values = {f.name: 0 if f.name.endswith('_total') else 1.5 for f in fields(FrameMetrics)}
    metrics = FrameMetrics(**{**values, 'dropped_total': 3})
    msg = convert.metrics_msg(header(frame_id='left'), 'left', metrics, 'segnode')
    assert msg.header.frame_id == 'left' and msg.header.stamp.nanosec == 123_456_789
    (status,) = msg.status
    assert status.name == 'segnode: left'
    pairs = {kv.key: kv.value for kv in status.values}
    assert list(pairs) == [f.name for f in fields(FrameMetrics)]
    assert pairs['total_ms'] == '1.500'
    assert pairs['dropped_total'] == '3'


def test_label_info_msg() -> None:
    if convert.LabelInfo is None:
        pytest.skip('vision_msgs is not installed (no wheel; the node then has no ~/label_info)')
    msg = convert.label_info_msg(['road', 'car'])
    ids = [(c.class_id, c.class_name) for c in msg.class_map]
    assert ids == [(0, 'road'), (1, 'car'), (255, 'unlabeled')]
    assert msg.threshold == pytest.approx(0.0)
    assert [c.class_id for c in convert.label_info_msg(['a'], unlabeled_id=None).class_map] == [0]


@pytest.mark.parametrize(
    ('preset', 'reliability'),
    [
        ('SENSOR_DATA', 'BEST_EFFORT'),
        ('DEFAULT', 'RELIABLE'),
        ('SYSTEM_DEFAULT', 'SYSTEM_DEFAULT'),
    ],
)
def test_qos_profile(preset: str, reliability: str) -> None:
    profile = convert.qos_profile(preset, 1)
    assert profile.reliability == getattr(qos.ReliabilityPolicy, reliability)
    assert profile.history == qos.HistoryPolicy.KEEP_LAST
    assert profile.depth == 1  # rclpy's qos_profile_sensor_data keeps 5


def test_latched_qos() -> None:
    profile = convert.latched_qos()
    assert profile.durability == qos.DurabilityPolicy.TRANSIENT_LOCAL
    assert (profile.reliability, profile.depth) == (qos.ReliabilityPolicy.RELIABLE, 1)
