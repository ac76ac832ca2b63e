"""Shared helpers of the ROS adapter tests, which run against a real rclpy.

`make ros-test` runs them against the pinned ROS 2 Jazzy wheels (.venv-ros) or, in a sourced
ROS shell, the distribution's rclpy. Where a ROS module is missing each test module skips with
the module's name: no module here imports ROS at collection time without catching ImportError,
because Humble's launch_testing plugin ends all collection on any exception but SyntaxError.

Every run is isolated: a ROS_DOMAIN_ID of its own and discovery on localhost only, set before
any test calls ``rclpy.init`` and inherited by the nodes started as processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import os
from pathlib import Path
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any
import uuid

import pytest

EVERY_S = 1 / 30  # how often spin_until's ``every`` runs: a 30 Hz camera
# A tiny CPU setup: eager engine, no parity gate, the bundled CamVid model.
CPU_PARAMS: dict[str, Any] = {
    'engine.backend': 'eager',
    'engine.device': 'cpu',
    'engine.precision': 'fp32',
    'engine.parity_gate': False,
    'autostart': False,
}


def _isolate() -> None:
    """One DDS domain per test run, discovery on this machine only (both distributions)."""
    os.environ['ROS_DOMAIN_ID'] = str(random.Random(os.getpid()).randrange(1, 101))
    if os.environ.get('ROS_DISTRO') == 'humble':
        os.environ['ROS_LOCALHOST_ONLY'] = '1'
    else:  # Jazzy and later; ROS_LOCALHOST_ONLY is deprecated there
        os.environ.pop('ROS_LOCALHOST_ONLY', None)
        os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'


_isolate()


@pytest.fixture(scope='module')
def ros() -> Iterator[None]:
    """``rclpy.init()`` for the module, ``rclpy.try_shutdown()`` after it."""
    rclpy = pytest.importorskip('rclpy', reason='rclpy is not installed (needs ROS 2)')
    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture
def namespace() -> str:
    """A namespace of its own per test, so tests never hear each other."""
    return f'/segnode_test_{uuid.uuid4().hex[:8]}'


def _spin_until(
    executor: Any,
    done: Callable[[], bool],
    timeout: float = 120.0,
    every: Callable[[], None] | None = None,
) -> bool:
    deadline = time.monotonic() + timeout
    next_call = 0.0
    while not done() and time.monotonic() < deadline:
        if every is not None and time.monotonic() >= next_call:
            # At a camera's rate: a tight publish loop in the node's own process would starve
            # its background engine build of the GIL.
            every()
            next_call = time.monotonic() + EVERY_S
        executor.spin_once(timeout_sec=0.05)
    return done()


@pytest.fixture
def spin_until() -> Callable[..., bool]:
    """A function that spins an executor until a condition holds or a timeout passes.

    Called as ``spin_until(executor, done, timeout=120, every=None)``; ``every()`` runs between
    spins, at most 30 times a second (e.g. publish again until discovery has matched).
    Returns ``done()``.
    """
    return _spin_until


@pytest.fixture
def cpu_params() -> dict[str, Any]:
    """Parameter overrides of a tiny CPU setup."""
    return dict(CPU_PARAMS)


class NodeProcess:
    """``segnode_node`` as its own process (as ``ros2 run`` starts it), output to a file."""

    def __init__(self, args: list[str], log: Path) -> None:
        script = shutil.which('segnode_node', path=str(Path(sys.executable).parent))
        command = [script] if script else [sys.executable, '-m', 'segnode.ros.node']
        self.log = log
        self._out = log.open('wb')
        # SIGINT back to its default in the child: a shell that started this run in the
        # background ignores it, and Python would then never see Ctrl-C.
        self.proc = subprocess.Popen(
            [*command, *args],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def output(self) -> str:
        """Everything the node printed so far."""
        self._out.flush()
        return self.log.read_text(errors='replace')

    def interrupt(self, timeout: float) -> tuple[int | None, float]:
        """SIGINT, as Ctrl-C sends it; the exit status (None: still running) and seconds."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - start

    def wait(self, timeout: float) -> int | None:
        """The exit status, or None while it still runs after ``timeout`` seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """End it for good (test teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()


@pytest.fixture
def node_process() -> Iterator[Callable[..., NodeProcess]]:
    """A factory of segnode_node processes (ROS arguments, params YAML text); killed after."""
    procs: list[NodeProcess] = []
    folder = Path(tempfile.mkdtemp(prefix='segnode_node_'))

    def start(*ros_args: str, params: str | None = None) -> NodeProcess:
        args = ['--ros-args', *ros_args]
        if params is not None:
            path = folder / f'params{len(procs)}.yaml'
            path.write_text(params)
            args += ['--params-file', str(path)]
        procs.append(NodeProcess(args, folder / f'node{len(procs)}.log'))
        return procs[-1]

    yield start
    for proc in procs:
        proc.kill()
    shutil.rmtree(folder, ignore_errors=True)
