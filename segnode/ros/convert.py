"""The rclpy glue: core results -> ROS 2 messages, QoS presets -> profiles, ROS time.

Plain functions of their arguments (the node calls them on the worker thread) and a clock.
Image data goes into the message as one ``array.array('B')`` filled with ``frombytes`` from the
array's buffer and handed to the constructor, so rosidl never checks it element by element
(docs/node.md, "ROS conventions"; vision_opencv#443, rosidl_python#156).
"""

from __future__ import annotations

import array
from collections.abc import Sequence
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from segnode.metrics import IGNORE_ID
from segnode.pipeline.compressed import PNG_FORMAT
from segnode.pipeline.diagnostics import Summary
from segnode.pipeline.imaging import array_to_fields
from segnode.pipeline.service import FrameMetrics

try:  # optional: no wheel of it exists, and the node runs without it (no ~/label_info)
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError:
    LabelInfo = VisionClass = None

__all__ = [
    'RosClock',
    'compressed_labels_msg',
    'copy_header',
    'image_msg',
    'label_info_msg',
    'latched_qos',
    'metrics_msg',
    'qos_profile',
    'status_msg',
]

_RELIABILITY = {
    'SENSOR_DATA': ReliabilityPolicy.BEST_EFFORT,
    'DEFAULT': ReliabilityPolicy.RELIABLE,
    'SYSTEM_DEFAULT': ReliabilityPolicy.SYSTEM_DEFAULT,
}
_DURABILITY = {
    'SENSOR_DATA': DurabilityPolicy.VOLATILE,
    'DEFAULT': DurabilityPolicy.VOLATILE,
    'SYSTEM_DEFAULT': DurabilityPolicy.SYSTEM_DEFAULT,
}


class RosClock:
    """The service's clock: perf_counter for durations, ROS time (sim time aware) for stamps.

    Args:
        clock: The node's clock (``node.get_clock()``), which follows ``/clock`` under
            ``use_sim_time``.
    """

    def __init__(self, clock: Any) -> None:
        self._clock = clock

    def monotonic_ns(self) -> int:
        """Nanoseconds from the performance counter."""
        return time.perf_counter_ns()

    def now_ns(self) -> int:
        """ROS time in nanoseconds."""
        return int(self._clock.now().nanoseconds)


def qos_profile(preset: str, depth: int) -> QoSProfile:
    """KEEP_LAST ``depth`` with the reliability and durability of a preset.

    ``SENSOR_DATA`` is best-effort/volatile, ``DEFAULT`` reliable/volatile, ``SYSTEM_DEFAULT``
    leaves both to the RMW. The depth is always explicit (rclpy's own
    ``qos_profile_sensor_data`` keeps 5).

    Raises:
        KeyError: An unknown preset (NodeConfig validates presets before this is called).
    """
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=int(depth),
        reliability=_RELIABILITY[preset],
        durability=_DURABILITY[preset],
    )


def latched_qos() -> QoSProfile:
    """Reliable, transient-local, depth 1: late subscribers get the last message (label info)."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


def copy_header(header: Any) -> Header:
    """A new ``std_msgs/Header`` with the stamp and frame_id of any header-like object."""
    out = Header()
    out.stamp.sec = int(header.stamp.sec)
    out.stamp.nanosec = int(header.stamp.nanosec)
    out.frame_id = str(header.frame_id)
    return out


def image_msg(image: np.ndarray, encoding: str, header: Any) -> Image:
    """A ``sensor_msgs/Image`` of ``image`` laid out as ``encoding``, stamped with ``header``.

    The layout is :func:`segnode.pipeline.imaging.array_to_fields`'s; the pixel bytes are copied
    once, buffer to buffer, into an ``array.array('B')``.
    """
    fields = array_to_fields(image, encoding)
    data = array.array('B')
    data.frombytes(memoryview(fields.data))
    return Image(
        header=copy_header(header),
        height=fields.height,
        width=fields.width,
        encoding=fields.encoding,
        is_bigendian=fields.is_bigendian,
        step=fields.step,
        data=data,
    )


def compressed_labels_msg(png: bytes, header: Any) -> CompressedImage:
    """A ``sensor_msgs/CompressedImage`` of a PNG mono8 mask, as image_transport writes it."""
    data = array.array('B')
    data.frombytes(png)
    return CompressedImage(header=copy_header(header), format=PNG_FORMAT, data=data)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f'{value:.3f}'
    return str(value)


def metrics_msg(
    header: Any, camera: str, metrics: FrameMetrics, node_name: str
) -> DiagnosticArray:
    """One frame's timings as a ``DiagnosticArray`` stamped with the input header.

    One ``DiagnosticStatus`` named ``<node>: <camera>``; its values are the
    :class:`~segnode.pipeline.service.FrameMetrics` fields in order (milliseconds with three
    decimals, counts as integers).
    """
    values = [KeyValue(key=key, value=_text(value)) for key, value in metrics.as_dict().items()]
    status = DiagnosticStatus(
        level=DiagnosticStatus.OK,
        name=f'{node_name}: {camera}',
        message='frame metrics',
        hardware_id=camera,
        values=values,
    )
    return DiagnosticArray(header=copy_header(header), status=[status])


def label_info_msg(
    names: Sequence[str], threshold: float = 0.0, unlabeled_id: int | None = IGNORE_ID
) -> Any:
    """``vision_msgs/LabelInfo``: class ids 0..K-1 with their names, plus the unlabeled id.

    The header is left for the caller to stamp. ``threshold`` is 0 (an argmax mask has none).
    Only called where vision_msgs is installed (``LabelInfo`` is not None).
    """
    classes = [VisionClass(class_id=i, class_name=str(name)) for i, name in enumerate(names)]
    if unlabeled_id is not None and unlabeled_id >= len(classes):
        classes.append(VisionClass(class_id=unlabeled_id, class_name='unlabeled'))
    return LabelInfo(class_map=classes, threshold=float(threshold))


def status_msg(name: str, summary: Summary, hardware_id: str = 'none') -> DiagnosticStatus:
    """A ``DiagnosticStatus`` (OK, WARN or ERROR) of a ``pipeline.diagnostics.Summary``.

    Values keep the summary's order; ``hardware_id`` is ``none`` as the node has always set it.
    """
    level = (
        DiagnosticStatus.ERROR
        if summary.error
        else DiagnosticStatus.OK
        if summary.ok
        else DiagnosticStatus.WARN
    )
    values = [KeyValue(key=key, value=str(value)) for key, value in summary.values.items()]
    return DiagnosticStatus(
        level=level, name=name, message=summary.message, hardware_id=hardware_id, values=values
    )
