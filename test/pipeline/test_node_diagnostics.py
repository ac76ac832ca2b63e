"""What the node reports on /diagnostics (segnode.pipeline.diagnostics imports no rclpy)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from segnode.pipeline.diagnostics import camera_summary, engine_summary, RATE_WINDOW_S
from segnode.pipeline.service import CameraStats

S = 10**9


def stats(publish_s: list[float], totals: list[float], received: int, bad: int = 0) -> CameraStats:
    s = CameraStats(received=received, processed=len(publish_s), replaced=3, stale=1, bad=bad)
    s.recent_publish_ns.extend(int(t * S) for t in publish_s)
    s.recent_total_ms.extend(totals)
    return s


def test_rate_and_percentiles() -> None:
    # 11 publishes 0.1 s apart within the window: 10 Hz.
    s = stats([100 + 0.1 * i for i in range(11)], [float(v) for v in range(1, 101)], received=20)
    ok, message, values, _ = camera_summary(s, 101 * S, active=True)
    assert ok and message.startswith('10.0 Hz')
    assert values['rate_hz'] == '10.00'
    assert values['latency_p50_ms'] == '50.50' and values['latency_p95_ms'] == '95.05'
    assert (values['dropped'], values['dropped_replaced'], values['dropped_stale']) == (
        '4',
        '3',
        '1',
    )


def test_stalled_camera_is_a_warning() -> None:
    s = stats([100.0], [5.0], received=50, bad=49)
    now = int((100 + RATE_WINDOW_S + 1) * S)
    s.last_received_ns = now - S // 10  # frames still arriving
    ok, message, values, _ = camera_summary(s, now, active=True)
    assert not ok and message.startswith('stalled: frames arrive but no mask was published')
    assert '49 bad' in message and values['last_frame_age_s'] == '0.1'


def test_a_camera_waiting_for_its_engine_is_building_not_stalled() -> None:
    s = stats([], [], received=15)
    s.building = 14
    now = int((RATE_WINDOW_S + 1) * S)
    s.last_received_ns = now - S // 10
    ok, message, _, _ = camera_summary(s, now, active=True, building=True)
    assert ok and message.startswith('engine building for a new frame size')
    assert '(14 so far)' in message
    ok, message, _, _ = camera_summary(s, now, active=True, building=False)
    assert not ok and message.startswith('stalled')


def test_a_camera_whose_frames_stopped_is_idle_not_stalled() -> None:
    s = stats([100.0], [5.0], received=50)
    s.last_received_ns = 100 * S
    now = int((100 + RATE_WINDOW_S + 7) * S)
    ok, message, values, _ = camera_summary(s, now, active=True)
    assert not ok and message.startswith('idle: no frame received for 12 s')
    assert values['last_frame_age_s'] == '12.0'


@pytest.mark.parametrize(
    ('active', 'enabled', 'received', 'expected'),
    [(False, True, 5, 'inactive'), (True, False, 5, 'paused'), (True, True, 0, 'waiting')],
)
def test_idle_states_are_ok(active: bool, enabled: bool, received: int, expected: str) -> None:
    ok, message, _, _ = camera_summary(stats([], [], received), 0, active=active, enabled=enabled)
    assert ok and message.startswith(expected)


def test_engine_summary() -> None:
    engine = SimpleNamespace(batch=1, height=512, width=1024, dynamic=False, backend='eager',
                             precision='fp32', device='cpu')  # fmt: skip
    segmenters = [SimpleNamespace(engine=engine, report=None)]
    ok, message, values, _ = engine_summary(segmenters, 'm.pt', evicted=3)
    assert ok and message == 'eager fp32 on cpu'
    assert values == {
        'model': 'm.pt',
        'engines_evicted': '3',
        'engine 1x512x1024': 'eager fp32 on cpu',
    }
    assert 'no engine yet' in engine_summary([], 'm.pt').message


def test_a_stopped_worker_is_an_error() -> None:
    summary = camera_summary(
        CameraStats(received=3), 0, active=False, failure='MemoryError: out of memory'
    )
    assert summary.error and not summary.ok
    assert summary.message == 'worker stopped: MemoryError: out of memory'
