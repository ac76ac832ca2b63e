"""Shared helpers of the ROS adapter tests (they skip where rclpy is missing)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
import time
from typing import Any
import uuid

import pytest

# A tiny CPU setup: eager engine, no parity gate, the bundled CamVid model.
CPU_PARAMS: dict[str, Any] = {
    'engine.backend': 'eager',
    'engine.device': 'cpu',
    'engine.precision': 'fp32',
    'engine.parity_gate': False,
    'autostart': False,
}


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
    timeout: float = 60.0,
    every: Callable[[], None] | None = None,
) -> bool:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        if every is not None:
            every()
        executor.spin_once(timeout_sec=0.1)
    return done()


@pytest.fixture
def spin_until() -> Callable[..., bool]:
    """A function that spins an executor until a condition holds or a timeout passes.

    Called as ``spin_until(executor, done, timeout=60, every=None)``; ``every()`` runs between
    spins (e.g. publish again until discovery has matched). Returns ``done()``.
    """
    return _spin_until


@pytest.fixture
def cpu_params() -> dict[str, Any]:
    """Parameter overrides of a tiny CPU setup."""
    return dict(CPU_PARAMS)
