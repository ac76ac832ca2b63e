"""LatestSlots and the clocks: one frame per camera, round robin, blocking takes."""

from __future__ import annotations

import threading

import pytest

from segnode.pipeline.scheduler import LatestSlots, ManualClock, Pending, SystemClock


def pending(camera: str, stamp: int) -> Pending:
    return Pending(camera, msg=None, stamp_ns=stamp, received_ns=stamp, received_wall_ns=stamp)


def test_newest_frame_replaces_the_waiting_one() -> None:
    slots = LatestSlots(['a'])
    assert slots.put(pending('a', 1)) is None
    replaced = slots.put(pending('a', 2))
    assert replaced is not None and replaced.stamp_ns == 1
    assert slots.waiting() == 1
    assert [p.stamp_ns for p in slots.take()] == [2]
    assert slots.take() == [] and slots.waiting() == 0


def test_round_robin_and_take_every() -> None:
    slots = LatestSlots(['a', 'b', 'c'])
    for cam in 'abc':
        slots.put(pending(cam, 0))
    assert [slots.take()[0].camera for _ in range(3)] == ['a', 'b', 'c']
    slots.put(pending('c', 1))
    slots.put(pending('a', 1))
    assert slots.take()[0].camera == 'a'  # the turn after c is a
    slots.put(pending('b', 2))
    assert sorted(p.camera for p in slots.take(every=True)) == ['b', 'c']


def test_unknown_camera() -> None:
    with pytest.raises(KeyError, match="unknown camera 'x'"):
        LatestSlots(['a']).put(pending('x', 0))


def test_blocking_take_wakes_on_put_and_on_close() -> None:
    slots = LatestSlots(['a'])
    got: list[list[Pending]] = []
    worker = threading.Thread(target=lambda: got.append(slots.take(timeout=None)))
    worker.start()
    slots.put(pending('a', 7))
    worker.join(5)
    assert [p.stamp_ns for p in got[0]] == [7]
    worker = threading.Thread(target=lambda: got.append(slots.take(timeout=None)))
    worker.start()
    slots.close()
    worker.join(5)
    assert not worker.is_alive() and got[1] == []
    slots.reopen()
    slots.put(pending('a', 8))
    assert slots.clear() == 1 and slots.waiting() == 0


def test_take_times_out() -> None:
    assert LatestSlots(['a']).take(timeout=0.01) == []


def test_clocks() -> None:
    clock = ManualClock(5)
    clock.advance(10)
    clock.advance_to(12)  # already past: no-op
    assert clock.monotonic_ns() == clock.now_ns() == 15
    with pytest.raises(ValueError, match='backwards'):
        clock.advance(-1)
    system = SystemClock()
    a = system.monotonic_ns()
    assert system.monotonic_ns() >= a and system.now_ns() > 1_600_000_000 * 10**9
