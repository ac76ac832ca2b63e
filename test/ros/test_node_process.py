"""``segnode_node`` as a process, as ``ros2 run`` and ``ros2 launch`` start it.

A subscriber in this process gets its masks over DDS on loopback; Ctrl-C (SIGINT) during
inference and during a background engine build ends it with exit 0 in seconds and no error
line; ``autostart: false`` leaves it to the lifecycle services; a bad parameter is named.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any
import uuid

import numpy as np
import pytest

try:
    from diagnostic_msgs.msg import DiagnosticArray
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from segnode.ros import convert
except ImportError as err:  # a skip, never a collection error (conftest.py says why)
    MISSING = f'{err.name} is not installed (ROS 2: `make ros-test` installs its wheels)'
else:
    MISSING = ''

pytestmark = [pytest.mark.ros, pytest.mark.skipif(bool(MISSING), reason=MISSING)]
ERROR_MARKERS = ('[ERROR]', '[FATAL]', 'Traceback', 'terminate called', 'Segmentation fault')
START_S = 180.0  # torch import, model load and the first engine on a slow, busy CI machine
EXIT_S = 15.0  # Ctrl-C to exit, the "in seconds"
CPU = ['-p', 'engine.device:=cpu', '-p', 'engine.parity_gate:=false']
EAGER = [*CPU, '-p', 'engine.backend:=eager', '-p', 'engine.precision:=fp32']


class Peer:
    """This test's side: a camera publisher and subscribers in the node's namespace."""

    def __init__(self, namespace: str) -> None:
        self.node = Node('peer', namespace=namespace)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.labels: list[Any] = []
        self.diagnostics: list[Any] = []
        qos = convert.qos_profile('DEFAULT', 10)
        self.node.create_subscription(Image, 'segnode/camera/labels', self.labels.append, qos)
        self.node.create_subscription(
            DiagnosticArray, '/diagnostics', self.diagnostics.append, qos
        )
        self.camera = self.node.create_publisher(
            Image, 'camera/image_raw', convert.qos_profile('DEFAULT', 1)
        )

    def publish(self, shape: tuple[int, int] = (64, 96)) -> None:
        frame = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
        header = SimpleNamespace(stamp=SimpleNamespace(sec=42, nanosec=7), frame_id='cam')
        self.camera.publish(convert.image_msg(frame, 'rgb8', header))

    def spin_until(
        self, done: Callable[[], bool], timeout: float, proc: Any, every: Any = None
    ) -> bool:
        """Spin until ``done()``; fails at once with the node's output if it exited."""
        deadline = rclpy.clock.Clock().now().nanoseconds + timeout * 1e9
        while not done() and rclpy.clock.Clock().now().nanoseconds < deadline:
            assert proc.proc.poll() is None, f'segnode_node exited early:\n{proc.output()}'
            if every is not None:
                every()
            self.executor.spin_once(timeout_sec=0.2)
        return done()

    def call(self, srv_type: Any, name: str, request: Any, proc: Any) -> Any:
        client = self.node.create_client(srv_type, name)
        assert self.spin_until(client.service_is_ready, START_S, proc), name
        future = client.call_async(request)
        assert self.spin_until(future.done, 60.0, proc), name
        return future.result()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture
def namespace() -> str:
    return f'/segnode_proc_{uuid.uuid4().hex[:8]}'


@pytest.fixture
def peer(ros: None, namespace: str) -> Iterator[Peer]:
    p = Peer(namespace)
    yield p
    p.close()


def assert_clean_exit(proc: Any) -> None:
    code, seconds = proc.interrupt(timeout=EXIT_S)
    output = proc.output()
    assert code == 0, f'exit {code} after {seconds:.1f} s of SIGINT:\n{output}'
    errors = [line for line in output.splitlines() if any(m in line for m in ERROR_MARKERS)]
    assert not errors, output


def test_serves_masks_and_ctrl_c_during_inference_exits_0(
    peer: Peer, namespace: str, node_process: Callable[..., Any]
) -> None:
    proc = node_process('-r', f'__ns:={namespace}', *EAGER)
    assert peer.spin_until(lambda: bool(peer.labels), START_S, proc, every=peer.publish)
    mask = peer.labels[0]
    assert (mask.encoding, mask.height, mask.width) == ('mono8', 64, 96)
    assert (mask.header.stamp.sec, mask.header.stamp.nanosec, mask.header.frame_id) == (
        42,
        7,
        'cam',
    )
    # Larger frames keep the worker inside the model when Ctrl-C comes (CamVid's size: a
    # 2 MB best-effort sample, as 720x960 is, is lost whole when one fragment is dropped).
    seen = len(peer.labels)
    big = (360, 480)
    assert peer.spin_until(
        lambda: len(peer.labels) > seen, 120.0, proc, every=lambda: peer.publish(big)
    )
    peer.publish(big)
    peer.executor.spin_once(timeout_sec=0.3)
    assert_clean_exit(proc)


def test_ctrl_c_during_a_background_engine_build_exits_0(
    peer: Peer, namespace: str, node_process: Callable[..., Any]
) -> None:
    # torch-compile takes a minute or more to build on a CPU: long enough to interrupt it.
    args = [*CPU, '-p', 'engine.backend:=torch-compile', '-p', 'engine.precision:=fp32']
    proc = node_process('-r', f'__ns:={namespace}', *args)

    def building() -> bool:
        for array in peer.diagnostics:
            for status in array.status:
                values = {kv.key: kv.value for kv in status.values}
                if status.name.endswith('camera camera') and int(values['dropped_building']):
                    return True
        return False

    assert peer.spin_until(building, START_S, proc, every=peer.publish), proc.output()
    assert peer.labels == []  # still building
    assert_clean_exit(proc)


def test_autostart_false_waits_for_the_lifecycle_services(
    peer: Peer, namespace: str, node_process: Callable[..., Any]
) -> None:
    proc = node_process('-r', f'__ns:={namespace}', *EAGER, '-p', 'autostart:=false')
    state = peer.call(GetState, 'segnode/get_state', GetState.Request(), proc)
    assert state.current_state.label == 'unconfigured'
    for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
        request = ChangeState.Request(transition=Transition(id=transition))
        assert peer.call(ChangeState, 'segnode/change_state', request, proc).success
    state = peer.call(GetState, 'segnode/get_state', GetState.Request(), proc)
    assert state.current_state.label == 'active'
    assert peer.spin_until(lambda: bool(peer.labels), START_S, proc, every=peer.publish)
    assert_clean_exit(proc)


def test_a_bad_parameter_is_refused_with_its_name(
    namespace: str, node_process: Callable[..., Any]
) -> None:
    proc = node_process('-r', f'__ns:={namespace}', *EAGER, '-p', 'input_depth:=0')
    code = proc.wait(START_S)
    output = proc.output()
    assert code == 1, output
    assert 'input_depth' in output and 'configure failed' in output
    assert 'Traceback' not in output
