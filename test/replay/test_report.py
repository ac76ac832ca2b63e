"""Replay report: summary numbers by hand, JSON/Markdown/PNG files, atomic writing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from segnode.replay.report import headline, summarize, write_report
from segnode.replay.results import CameraResult, Overlay, ReplayResult, STAGES

NAMES = ('road', 'car', 'sky')
PALETTE = np.array([[128, 64, 128], [0, 0, 142], [70, 130, 180]], dtype=np.uint8)
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# Rows truth, columns prediction; sky is absent from both.
# road: TP 6, FN 2, FP 1 -> 6/9; car: TP 3, FN 1, FP 2 -> 3/6; mIoU (2/3 + 1/2) / 2 = 7/12.
CONFUSION = np.array([[6, 2, 0], [1, 3, 0], [0, 0, 0]], dtype=np.int64)
# road: TP 5, FN 3, FP 2 -> 5/10; car: TP 2, FN 2, FP 4 -> 2/8; sky: TP 0, FN 1 -> 0;
# mIoU (1/2 + 1/4 + 0) / 3 = 1/4; pixel accuracy 7/13.
CONSUMER = np.array([[5, 3, 0], [2, 2, 0], [0, 1, 0]], dtype=np.int64)
REQUIRED_KEYS = {
    'bag', 'mode', 'speed', 'engine', 'model', 'wall_s', 'engine_s', 'replay_overhead',
    'frames', 'processed', 'dropped', 'bad', 'miou', 'pixel_accuracy', 'per_class_iou',
    'confusion_matrix', 'consumer_miou', 'interrupted', 'notes', 'cameras',
}  # fmt: skip


def camera(name: str, total_ms: list[float], dropped: int = 0) -> CameraResult:
    """Frames processed at 10 Hz of bag time and 4 per second of wall time; total_ms timed."""
    cam = CameraResult(name, f'/{name}/image_raw', frames=len(total_ms) + dropped)
    cam.processed, cam.dropped, cam.scored = len(total_ms), dropped, len(total_ms)
    cam.stages['total_ms'] = list(total_ms)
    cam.stages['infer_ms'] = [0.5 * v for v in total_ms]
    cam.bag_time_s = [0.1 * i for i in range(len(total_ms))]
    cam.wall_time_s = [100.0 + 0.25 * i for i in range(len(total_ms))]
    return cam


def replay(**changes: Any) -> ReplayResult:
    """One camera 'front' (total_ms 11..1) with the hand-computed confusion matrix."""
    values: dict[str, Any] = {
        'bag': 'bags/run1',
        'mode': 'max',
        'speed': 1.0,
        'engine': 'eager cpu fp32',
        'model': 'random weights',
        'class_names': NAMES,
        'palette': PALETTE,
        'cameras': [camera('front', [float(v) for v in range(11, 0, -1)])],
        'wall_s': 10.0,
        'engine_s': 4.0,
        'confusion': CONFUSION,
    }
    values.update(changes)
    return ReplayResult(**values)


def overlays() -> list[Overlay]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    mask = rng.integers(0, 3, (24, 32), dtype=np.uint8)
    truth = mask.copy()
    truth[:4] = 255  # ignored pixels
    return [Overlay('front', 1, image, mask, truth), Overlay('rear/cam', 2, image, mask[::2, ::2])]


def strict_json(path: Path) -> dict[str, Any]:
    """Parse JSON, failing on NaN / Infinity (not valid JSON)."""

    def reject(name: str) -> None:
        raise AssertionError(f'{path.name} contains {name}')

    data: dict[str, Any] = json.loads(path.read_text(encoding='utf-8'), parse_constant=reject)
    return data


def test_accuracy_by_hand() -> None:
    doc = summarize(replay())
    assert doc['per_class_iou'] == {'road': 2 / 3, 'car': 1 / 2, 'sky': None}
    assert doc['miou'] == pytest.approx(7 / 12, rel=1e-12)
    assert doc['pixel_accuracy'] == 9 / 12
    assert doc['confusion_matrix'] == CONFUSION.tolist()
    assert doc['consumer_miou'] is None  # max mode
    assert doc['replay_overhead'] == pytest.approx(0.6)
    assert REQUIRED_KEYS <= set(doc)
    assert headline(replay()) == (
        'camera front: 11 frames, 11 processed, 0 dropped, 0 bad, 4.0 frames/s, '
        'p50 total 6.0 ms, p99 10.9 ms; mIoU 0.583 (pixel acc 0.750)'
    )
    paired = headline(replay(truth={'/front/image_raw': '/front/labels'}))
    assert paired.endswith('\nground truth /front/labels for /front/image_raw')


def test_effective_rate_is_wall_clock_in_max_mode_and_bag_time_in_realtime() -> None:
    cams = [camera('front', [1.0] * 5)]
    assert summarize(replay(cameras=cams))['cameras']['front']['effective_hz'] == 4.0
    realtime = summarize(replay(cameras=cams, mode='realtime'))
    assert realtime['cameras']['front']['effective_hz'] == pytest.approx(10.0)
    assert '10.0 Hz of masks' in headline(replay(cameras=cams, mode='realtime'))


def test_two_cameras_latency_percentiles() -> None:
    front = camera('front', [float(v) for v in range(1, 12)])
    rear = camera('rear', [4.0, 2.0], dropped=3)
    rear.bad = 1
    doc = summarize(replay(cameras=[front, rear], consumer_confusion=CONSUMER))
    assert (doc['frames'], doc['processed'], doc['dropped'], doc['bad']) == (16, 13, 3, 1)
    assert list(doc['cameras']) == ['front', 'rear']
    total = doc['cameras']['front']['stages']['total_ms']
    assert total == pytest.approx(
        {'count': 11, 'mean': 6.0, 'p50': 6.0, 'p90': 10.0, 'p99': 10.9, 'max': 11.0}
    )
    # linear interpolation between 2 and 4: p50 3, p90 2 + 0.9 * 2, p99 2 + 0.99 * 2
    rear_doc = doc['cameras']['rear']
    assert rear_doc['stages']['total_ms'] == pytest.approx(
        {'count': 2, 'mean': 3.0, 'p50': 3.0, 'p90': 3.8, 'p99': 3.98, 'max': 4.0}
    )
    assert rear_doc['stages']['infer_ms']['p50'] == pytest.approx(1.5)
    assert rear_doc['topic'] == '/rear/image_raw'
    assert (rear_doc['frames'], rear_doc['dropped'], rear_doc['bad']) == (5, 3, 1)
    assert doc['cameras']['front']['effective_hz'] == pytest.approx(4.0)  # max mode: wall
    assert rear_doc['effective_hz'] == pytest.approx(4.0)
    assert set(rear_doc['stages']) == set(STAGES)
    # stages never timed: count 0 and null statistics
    assert rear_doc['stages']['publish_ms'] == {
        'count': 0, 'mean': None, 'p50': None, 'p90': None, 'p99': None, 'max': None
    }  # fmt: skip
    lines = headline(replay(cameras=[front, rear])).split('\n')
    assert lines[0].startswith('camera front: 11 frames') and '; camera rear: 5 frames' in lines[0]
    assert 'p50 total 3.0 ms, p99 4.0 ms' in lines[0]
    assert lines[1] == 'mIoU 0.583 (pixel acc 0.750)'


def test_realtime_consumer_miou() -> None:
    doc = summarize(replay(mode='realtime', speed=2.0, consumer_confusion=CONSUMER))
    assert doc['consumer_miou'] == pytest.approx(1 / 4, rel=1e-12)
    assert doc['consumer_pixel_accuracy'] == pytest.approx(7 / 13, rel=1e-12)
    assert doc['miou'] == pytest.approx(7 / 12, rel=1e-12)
    assert (doc['mode'], doc['speed']) == ('realtime', 2.0)
    assert headline(replay(mode='realtime', consumer_confusion=CONSUMER)).endswith(
        'mIoU 0.583 (pixel acc 0.750), consumer mIoU 0.250'
    )


def test_no_ground_truth(tmp_path: Path) -> None:
    result = replay(confusion=None, interrupted=True, notes=['metadata fallback used'])
    doc = summarize(result)
    for key in ('miou', 'pixel_accuracy', 'per_class_iou', 'confusion_matrix', 'consumer_miou'):
        assert doc[key] is None, key
    assert 'mIoU' not in headline(result)
    assert headline(result).startswith('interrupted: camera front')
    written = write_report(result, tmp_path / 'out')
    assert set(written) == {'report.json', 'report.md', 'latency_hist.png', 'latency_timeline.png'}
    assert strict_json(written['report.json'])['per_class_iou'] is None
    markdown = written['report.md'].read_text(encoding='utf-8')
    assert 'No ground truth' in markdown and '- metadata fallback used' in markdown
    assert 'class_iou.png' not in markdown


def test_no_frames_and_no_wall_time(tmp_path: Path) -> None:
    empty = CameraResult('front', '/front/image_raw')
    result = replay(cameras=[empty], wall_s=0.0, confusion=np.zeros((3, 3), np.int64))
    doc = summarize(result)
    assert doc['replay_overhead'] is None and doc['miou'] is None
    assert doc['per_class_iou'] == {'road': None, 'car': None, 'sky': None}
    assert doc['cameras']['front']['effective_hz'] == 0.0
    assert headline(replay(cameras=[empty], confusion=None)) == (
        'camera front: 0 frames, 0 processed, 0 dropped, 0 bad, 0.0 frames/s, '
        'p50 total n/a, p99 n/a'
    )
    written = write_report(result, tmp_path)
    assert len(written) == 6 and strict_json(written['report.json']) == doc
    markdown = written['report.md'].read_text(encoding='utf-8')
    assert '| front | total_ms | 0 | n/a | n/a | n/a | n/a | n/a |' in markdown


def test_write_report_files(tmp_path: Path) -> None:
    front = camera('front', [float(v) for v in range(1, 12)])
    rear = camera('rear', [4.0, 2.0], dropped=3)
    result = replay(cameras=[front, rear], overlays=overlays())
    out = tmp_path / 'report'
    written = write_report(result, out)
    pngs = ['latency_hist.png', 'latency_timeline.png', 'class_iou.png', 'confusion.png']
    overlay_names = ['overlays/000_front.png', 'overlays/001_rear_cam.png']
    assert list(written) == ['report.json', *pngs, *overlay_names, 'report.md']
    assert all(path == out / name and path.is_file() for name, path in written.items())
    for name in pngs + overlay_names:
        data = written[name].read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 500, name
    # image | blend | truth with 4-pixel gaps; without truth two panels
    full = cv2.imread(str(written[overlay_names[0]]), cv2.IMREAD_COLOR)
    half = cv2.imread(str(written[overlay_names[1]]), cv2.IMREAD_COLOR)
    assert full is not None and half is not None
    assert full.shape == (24, 3 * 32 + 2 * 4, 3)
    assert (full[:4, -32:] == 0).all()  # ignored truth pixels are black
    assert half.shape == (24, 2 * 32 + 4, 3)
    doc = strict_json(written['report.json'])
    assert REQUIRED_KEYS <= set(doc)
    assert doc == summarize(result)
    markdown = written['report.md'].read_text(encoding='utf-8')
    assert (
        '| camera | topic | frames | processed | dropped | bad | scored | unscored | frames/s |'
        in (markdown)
    )
    assert '| front | `/front/image_raw` | 11 | 11 | 0 | 0 | 11 | 0 | 4.00 |' in markdown
    assert '| rear | total_ms | 2 | 3.0 | 3.0 | 3.8 | 4.0 | 4.0 |' in markdown
    assert '| sky | absent |' in markdown and 'mIoU **0.583**' in markdown
    for name in pngs + overlay_names:
        assert f']({name})' in markdown, name
    leftovers = [p.name for p in out.rglob('*') if p.name.startswith('.')]
    assert not leftovers


def test_atomic_writes_leave_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.figure import Figure

    out = tmp_path / 'out'
    write_report(replay(), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken_savefig(self: Figure, path: Any, *args: Any, **kwargs: Any) -> None:
        Path(path).write_bytes(PNG_SIGNATURE + b'half a plot')
        raise OSError('disk full')

    monkeypatch.setattr(Figure, 'savefig', broken_savefig)
    with pytest.raises(OSError, match='disk full'):
        write_report(replay(wall_s=20.0), out)
    # the earlier report's plots are untouched, no temporary file is left behind
    assert sorted(p.name for p in out.iterdir()) == sorted(before)
    assert (out / 'latency_hist.png').read_bytes() == before['latency_hist.png']
    fresh = tmp_path / 'fresh'
    with pytest.raises(OSError, match='disk full'):
        write_report(replay(), fresh)
    assert [p.name for p in fresh.iterdir()] == ['report.json']  # written before the plots
    monkeypatch.undo()

    def broken_write_text(self: Path, text: str, *args: Any, **kwargs: Any) -> int:
        with open(self, 'w', encoding='utf-8') as f:
            f.write(text[: len(text) // 2])
        raise OSError('interrupted')

    monkeypatch.setattr(Path, 'write_text', broken_write_text)
    with pytest.raises(OSError, match='interrupted'):
        write_report(replay(), tmp_path / 'json')
    assert list((tmp_path / 'json').iterdir()) == []


def test_a_reused_report_folder_holds_one_run(tmp_path: Path) -> None:
    (tmp_path / 'overlays').mkdir()
    (tmp_path / 'overlays' / '007_old.png').write_bytes(b'old run')
    (tmp_path / 'confusion.png').write_bytes(b'old run')
    (tmp_path / 'notes.txt').write_text('mine')
    written = write_report(replay(confusion=None), tmp_path)
    assert not (tmp_path / 'overlays' / '007_old.png').exists()
    assert not (tmp_path / 'confusion.png').exists()  # this run has no ground truth
    assert (tmp_path / 'notes.txt').read_text() == 'mine' and 'report.md' in written


@pytest.mark.parametrize(
    ('given', 'name'),
    [('bags/drive1', 'drive1'), ('bags/drive1/metadata.yaml', 'drive1'), ('x/run.mcap', 'run')],
)
def test_report_folders_are_named_after_the_bag(tmp_path: Path, given: str, name: str) -> None:
    from segnode.cli.replay import bag_name

    path = tmp_path / given
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix:
        path.write_text('')
    assert bag_name(str(path)) == name
