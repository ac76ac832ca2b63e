"""segnode replay: counts, stamps, realtime drops, accuracy, outputs, errors, Ctrl-C."""

from __future__ import annotations

from collections.abc import Sequence
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import hostile_frames
import numpy as np
import pytest

from segnode.cli import main
from segnode.config import EngineConfig
from segnode.data.labels import CAMVID
from segnode.errors import ReplayError
from segnode.pipeline import imaging
from segnode.pipeline.assemble import LoadedModel
from segnode.pipeline.config import NodeConfig
from segnode.pipeline.scheduler import ManualClock
from segnode.replay.bag_writer import BagWriter, make_compressed, make_header, make_image
from segnode.replay.bags import open_bag
from segnode.replay.options import ReplayOptions
from segnode.replay.replay import replay
from segnode.replay.timeline import ReplayClock

PERIOD_NS = 33_333_333  # 30 Hz
T0 = 1_700_000_000 * 10**9
H, W = 32, 48
CONFIG = NodeConfig(
    engine=EngineConfig(backend='eager', device='cpu', precision='fp32', parity_gate=False)
)
NO_MODEL: Any = None  # the fake segmenter stands in for it
LOADED = LoadedModel(model=NO_MODEL, table=CAMVID, sha256='', description='fake', trained=False)


def frame(value: int) -> np.ndarray:
    return np.full((H, W, 3), value, np.uint8)


def write_bag(
    path: Path,
    n: int,
    *,
    cameras: Sequence[str] = ('front',),
    compressed: Sequence[str] = (),
    labels: np.ndarray | None = None,
    storage: str = 'mcap',
) -> Path:
    """``n`` frames per camera at 30 Hz; frame k has value k (mask class k % 3)."""
    with BagWriter(path, storage) as bag:
        for k in range(n):
            t = T0 + k * PERIOD_NS
            for cam in cameras:
                header = make_header(t, cam)
                if cam in compressed:
                    fmt, data = imaging.encode_compressed(frame(k), 'rgb8', 'png')
                    bag.write(
                        f'/{cam}/image_raw/compressed', t, make_compressed(fmt, data, header)
                    )
                else:
                    bag.write(f'/{cam}/image_raw', t, make_image(frame(k), 'rgb8', header))
                if labels is not None:
                    bag.write(f'/{cam}/labels', t, make_image(labels, 'mono8', header))
    return path


class Fake:
    """A model of known cost on a ManualClock: mask = frame value % 3 everywhere."""

    def __init__(self, clock: ManualClock | None, cost_ns: int, interrupt_at: int = 0) -> None:
        self.clock, self.cost_ns, self.interrupt_at, self.calls = clock, cost_ns, interrupt_at, 0

    def __call__(self, n: int, h: int, w: int) -> Fake:
        return self

    def segment_batch(self, frames: Sequence[np.ndarray], encoding: str | None = None) -> Any:
        self.calls += 1
        if self.interrupt_at and self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        if self.clock is not None:
            self.clock.advance(self.cost_ns)
        return SimpleNamespace(
            masks=np.stack([np.full((H, W), f[0, 0, 0] % 3, np.uint8) for f in frames])
        )


def simulated(clock: ManualClock) -> ReplayClock:
    return ReplayClock(monotonic_ns=clock.monotonic_ns, sleep_until=clock.advance_to)


def run(bag: Path, cost_ns: int = 10_000_000, **options: Any) -> Any:
    clock = ManualClock()
    fake = Fake(clock, cost_ns, options.pop('interrupt_at', 0))
    opts = ReplayOptions(progress=False, **options)
    return replay(bag, CONFIG, opts, loaded=LOADED, clock=simulated(clock), segmenter=fake)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_max_mode_processes_every_frame_of_two_cameras(tmp_path: Path, storage: str) -> None:
    bag = write_bag(
        tmp_path / 'in', 5, cameras=('front', 'rear'), compressed=('rear',), storage=storage
    )
    result = run(bag, out_bag=str(tmp_path / 'out'), color=True)
    assert [(c.camera, c.topic, c.frames, c.processed, c.dropped) for c in result.cameras] == [
        ('front', '/front/image_raw', 5, 5, 0),
        ('rear', '/rear/image_raw/compressed', 5, 5, 0),
    ]
    with open_bag(tmp_path / 'out') as out:
        counts = {t: i.count for t, i in out.info.topics.items()}
        assert counts == {
            '/front/image_raw': 5, '/rear/image_raw/compressed': 5,
            '/segnode/front/labels': 5, '/segnode/front/color': 5, '/segnode/front/metrics': 5,
            '/segnode/rear/labels': 5, '/segnode/rear/color': 5, '/segnode/rear/metrics': 5,
        }  # fmt: skip
        labels = list(out.messages(['/segnode/front/labels']))
        stamps = [imaging.stamp_ns(m.msg.header) for m in labels]
        assert stamps == [T0 + k * PERIOD_NS for k in range(5)]  # input stamps, not replay time
        masks = [imaging.image_to_array(m.msg) for m in labels]
        assert [int(m[0, 0]) for m in masks] == [k % 3 for k in range(5)]
        metrics = next(out.messages(['/segnode/rear/metrics'])).msg
        keys = {kv.key for kv in metrics.status[0].values}
        assert {'total_ms', 'infer_ms', 'queue_wait_ms', 'dropped_total'} <= keys


def test_realtime_drops_like_the_vehicle(tmp_path: Path) -> None:
    # 90 frames at 30 Hz against a 50 ms model: frames 2, 5, ..., 86 are replaced (see
    # test_service for the derivation): 61 processed, 29 dropped.
    bag = write_bag(tmp_path / 'in', 90)
    result = run(bag, cost_ns=50_000_000, rate='realtime')
    cam = result.cameras[0]
    assert (cam.frames, cam.processed, cam.dropped) == (90, 61, 29)
    assert max(cam.stages['total_ms']) <= 50.0 + 33.334
    assert cam.stages['infer_ms'] == [pytest.approx(50.0)] * 61


def test_realtime_speed_scales_the_timeline(tmp_path: Path) -> None:
    # At half speed frames arrive every 66.7 ms: a 50 ms model keeps up.
    result = run(write_bag(tmp_path / 'in', 30), cost_ns=50_000_000, rate='realtime', speed=0.5)
    assert (result.cameras[0].processed, result.cameras[0].dropped) == (30, 0)


def test_accuracy_against_a_hand_computed_case(tmp_path: Path) -> None:
    # Truth: left half class 0, right half class 1. Frame k predicts k % 3 everywhere.
    truth = np.zeros((H, W), np.uint8)
    truth[:, W // 2 :] = 1
    truth[0, 0] = 255  # ignored
    bag = write_bag(tmp_path / 'in', 3, labels=truth)
    result = run(bag)
    # Frames 0, 1, 2 predict 0, 1, 2. Confusion rows truth, columns prediction: the n0 scored
    # class-0 pixels are predicted 0 in frame 0, 1 in frame 1, 2 in frame 2; the n1 class-1
    # pixels likewise.
    n0, n1 = H * (W // 2) - 1, H * (W - W // 2)
    c = result.confusion
    assert c[0, :3].tolist() == [n0] * 3 and c[1, :3].tolist() == [n1] * 3
    assert int(c.sum()) == 3 * (n0 + n1) and result.cameras[0].scored == 3
    from segnode.replay.report import summarize

    doc = summarize(result)
    iou0 = n0 / (3 * n0 + (n0 + n1) - n0)  # TP / (truth 0 + predicted 0 - TP)
    iou1 = n1 / (3 * n1 + (n0 + n1) - n1)
    assert doc['per_class_iou']['sky'] == pytest.approx(iou0)
    assert doc['per_class_iou']['building'] == pytest.approx(iou1)
    assert doc['miou'] == pytest.approx((iou0 + iou1 + 0.0) / 3)  # class 2: predicted, never true
    assert doc['pixel_accuracy'] == pytest.approx((n0 + n1) / (3 * (n0 + n1)))


def test_consumer_accuracy_scores_dropped_frames_with_the_last_mask(tmp_path: Path) -> None:
    truth = np.ones((H, W), np.uint8)
    bag = write_bag(tmp_path / 'in', 6, labels=truth)
    result = run(bag, cost_ns=50_000_000, rate='realtime')
    cam = result.cameras[0]
    # Arrivals at 0, 33, 67, 100, 133, 167 ms; the worker finishes at 50, 100, 150, 200, 250.
    # Frame 2 waits from 67 ms and is replaced by frame 3 at 100 ms, after frame 1's mask
    # was published; frame 5 waits alone and is processed last.
    assert (cam.processed, cam.dropped) == (5, 1)
    # Frames 0, 1, 3, 4, 5 predict 0, 1, 0, 1, 2; the dropped frame 2 is scored with frame 1's
    # mask (class 1: correct) in the consumer view only.
    n = H * W  # pixels a frame
    assert result.confusion[1, :3].tolist() == [2 * n, 2 * n, n]
    assert result.consumer_confusion[1, :3].tolist() == [2 * n, 3 * n, n]
    from segnode.replay.report import summarize

    doc = summarize(result)
    assert doc['pixel_accuracy'] == pytest.approx(2 / 5)
    assert doc['consumer_miou'] is not None


def test_labels_of_the_wrong_size_are_counted_unscored_and_the_replay_goes_on(
    tmp_path: Path,
) -> None:
    bag = write_bag(tmp_path / 'in', 3, labels=np.zeros((H + 1, W), np.uint8))
    result = run(bag, out_bag=str(tmp_path / 'out'))
    (cam,) = result.cameras
    assert (cam.processed, cam.scored, cam.unscored) == (3, 0, 3)
    (note,) = [n for n in result.notes if 'wrong size' in n]
    assert f'{W}x{H + 1}, the frame {W}x{H}' in note
    with open_bag(tmp_path / 'out') as out:
        assert out.info.topics['/segnode/front/labels'].count == 3


def test_label_pngs_matched_by_stamp_and_by_order(tmp_path: Path) -> None:

    bag = write_bag(tmp_path / 'in', 3)
    by_stamp, by_order = tmp_path / 'stamp', tmp_path / 'order'
    by_stamp.mkdir()
    by_order.mkdir()
    for k in range(3):
        label = np.full((H, W), k % 3, np.uint8)  # exactly the prediction
        cv2.imwrite(str(by_stamp / f'{T0 + k * PERIOD_NS}.png'), label)
        cv2.imwrite(str(by_order / f'f{k:02d}.png'), label)
    for folder, match in ((by_stamp, 'stamp'), (by_order, 'order')):
        result = run(bag, labels_dir=str(folder), label_match=match)
        assert result.cameras[0].scored == 3
        assert int(np.trace(result.confusion)) == int(result.confusion.sum()) == 3 * H * W
    with pytest.raises(ReplayError, match='file names like <stamp_ns>.png'):
        run(bag, labels_dir=str(by_order))


def test_interrupt_keeps_a_valid_partial_bag(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / 'in', 6)
    # Ctrl-C in the engine's 4th call: the warm-up and 2 frames are done.
    result = run(bag, out_bag=str(tmp_path / 'out'), interrupt_at=4)
    assert result.interrupted and result.cameras[0].processed == 2
    with open_bag(tmp_path / 'out') as out:
        assert out.info.topics['/segnode/front/labels'].count == 2
        assert out.info.topics['/front/image_raw'].count == 3


def test_interrupt_before_any_frame_leaves_no_bag(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / 'in', 3)
    result = run(bag, out_bag=str(tmp_path / 'out'), interrupt_at=1)  # in the warm-up
    assert result.interrupted and not (tmp_path / 'out').exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in']
    assert any('stopped before any frame' in note for note in result.notes)


def test_cli_replay_writes_reports_and_errors_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = np.zeros((64, 96), np.uint8)
    with BagWriter(tmp_path / 'in', 'sqlite3') as bag:
        for k in range(2):
            header = make_header(T0 + k * PERIOD_NS, 'cam')
            image = np.random.default_rng(k).integers(0, 256, (64, 96, 3), dtype=np.uint8)
            bag.write('/cam/image_raw', T0, make_image(image, 'rgb8', header))
            bag.write('/cam/labels', T0, make_image(truth, 'mono8', header))
    rep, doc_path = tmp_path / 'rep', tmp_path / 'r.json'
    args = ['replay', str(tmp_path / 'in'), '--backend', 'eager', '--precision', 'fp32',
            '--device', 'cpu', '--json', str(doc_path), '--report', str(rep),
            '--no-progress']  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert 'camera cam: 2 frames, 2 processed, 0 dropped' in out and 'mIoU' in out
    doc = json.loads((tmp_path / 'r.json').read_text())
    assert {'frames', 'processed', 'dropped', 'miou', 'cameras'} <= set(doc)
    assert doc['cameras']['cam']['stages']['total_ms']['count'] == 2
    assert (tmp_path / 'rep' / 'report.md').is_file() and (
        tmp_path / 'rep' / 'confusion.png'
    ).is_file()
    empty = tmp_path / 'empty'
    with BagWriter(empty) as bag:
        bag.write('/tf', T0, make_header(T0))
    assert main(['replay', str(empty), '--no-progress']) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith('segnode: error: ')
        and 'no sensor_msgs/Image' in err
        and err.count('\n') == 1
    )


@pytest.mark.slow
@pytest.mark.data
def test_camvid_val_replay(tmp_path: Path, camvid_root: Path) -> None:
    """All 101 CamVid val frames through bag-from-images and a max-rate replay."""
    bag = tmp_path / 'camvid_val'
    assert main(['bag-from-images', str(camvid_root / 'val'), '--out', str(bag),
                 '--labels', str(camvid_root / 'valannot'), '--rate', '30']) == 0  # fmt: skip
    json_path = tmp_path / 'val.json'
    assert main(['replay', str(bag), '--backend', 'eager', '--precision', 'fp32', '--device',
                 'cpu', '--classes', 'camvid', '--json', str(json_path), '--report',
                 str(tmp_path / 'rep'), '--no-progress']) == 0  # fmt: skip
    doc = json.loads(json_path.read_text())
    assert (doc['frames'], doc['processed'], doc['dropped']) == (101, 101, 0)
    assert doc['cameras']['camera']['scored'] == 101
    assert doc['miou'] is not None and 0.0 <= doc['miou'] <= 1.0
    # The report's own overhead measure: the share of wall time spent outside the engine.
    assert doc['replay_overhead'] < 0.5


@pytest.mark.parametrize('version', [4, 5])
def test_humble_style_bag_replays(tmp_path: Path, version: int) -> None:
    from test_bags import to_humble  # the rewrite into Humble's metadata and db schema

    bag = write_bag(tmp_path / 'in', 4, cameras=('front', 'rear'), storage='sqlite3')
    to_humble(bag, version)
    result = run(bag)
    assert [(c.camera, c.frames, c.processed) for c in result.cameras] == [
        ('front', 4, 4),
        ('rear', 4, 4),
    ]


def test_bad_frames_are_skipped_and_a_camera_of_only_bad_frames_is_an_error(
    tmp_path: Path,
) -> None:
    with BagWriter(tmp_path / 'in') as bag:
        for k, encoding in enumerate(['rgb8', 'yuv422', 'rgb8']):
            msg = make_image(frame(k), 'rgb8', make_header(T0 + k * PERIOD_NS))
            msg.encoding = encoding
            bag.write('/front/image_raw', T0 + k * PERIOD_NS, msg)
    result = run(tmp_path / 'in')
    cam = result.cameras[0]
    assert (cam.frames, cam.processed, cam.bad) == (3, 2, 1)
    assert any("encoding 'yuv422'" in n for n in result.notes)
    with BagWriter(tmp_path / 'huge') as bag:  # a 10 MB encoding: a short note, not 10 MB
        for k, encoding in enumerate(['rgb8', 'y\n' * 5_000_000]):
            msg = make_image(frame(k), 'rgb8', make_header(T0 + k * PERIOD_NS))
            msg.encoding = encoding
            bag.write('/front/image_raw', T0 + k * PERIOD_NS, msg)
    result = run(tmp_path / 'huge')
    (note,) = [n for n in result.notes if 'bad frame skipped' in n]
    assert note.startswith("camera front: bad frame skipped: unsupported image encoding 'y?y?y?")
    assert len(note) < 400 and result.cameras[0].bad == 1
    with BagWriter(tmp_path / 'yuv') as bag:
        msg = make_image(frame(0), 'rgb8', make_header(T0))
        msg.encoding = 'yuv422'
        bag.write('/front/image_raw', T0, msg)
    with pytest.raises(ReplayError, match=r'no frame of camera front .*yuv422'):
        run(tmp_path / 'yuv')


def test_an_image_topic_without_messages_is_an_error(tmp_path: Path) -> None:
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import get_typestore, Stores

    path = tmp_path / 'empty'
    writer = Writer(path, version=9)
    with writer:
        writer.add_connection(
            '/front/image_raw', 'sensor_msgs/msg/Image', typestore=get_typestore(Stores.ROS2_JAZZY)
        )
    with pytest.raises(ReplayError, match='image topic /front/image_raw has no messages'):
        run(path)


def test_a_message_cut_short_in_a_db3_is_one_bad_frame(tmp_path: Path) -> None:
    import sqlite3

    bag = write_bag(tmp_path / 'in', 5, storage='sqlite3')
    (db,) = bag.glob('*.db3')
    with sqlite3.connect(db) as conn:
        (target,) = conn.execute('SELECT id FROM messages ORDER BY timestamp LIMIT 1 OFFSET 2')
        conn.execute(
            'UPDATE messages SET data = substr(data, 1, length(data) / 2) WHERE id = ?', target
        )
    result = run(bag)
    cam = result.cameras[0]
    assert (cam.frames, cam.processed, cam.bad) == (5, 4, 1)
    assert any('cannot be read' in note for note in result.notes), result.notes


def test_segnode_outputs_are_neither_cameras_nor_ground_truth(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / 'in', 3)
    run(bag, out_bag=str(tmp_path / 'out'), color=True)
    again = run(tmp_path / 'out')  # its /segnode/front/{labels,color} are the model's own
    assert [c.topic for c in again.cameras] == ['/front/image_raw']
    assert again.confusion is None and not again.truth
    assert any('/segnode/front/labels is segnode output' in n for n in again.notes)


def test_the_ground_truth_pairing_is_recorded(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / 'in', 2, labels=np.zeros((H, W), np.uint8))
    result = run(bag)
    assert result.truth == {'/front/image_raw': '/front/labels'}


def test_label_ids_no_class_has_are_counted_in_the_notes(tmp_path: Path) -> None:
    label = np.zeros((H, W), np.uint8)
    label[:2] = 200  # 2 rows: neither a CamVid class nor 255
    label[2:4] = 255
    result = run(write_bag(tmp_path / 'in', 2, labels=label))
    note = f'{2 * 2 * W} ground-truth pixels hold label ids outside 0..10 (and not 255)'
    assert any(note in n for n in result.notes), result.notes
    assert int(result.confusion.sum()) == 2 * (H - 4) * W


def test_params_cameras_choose_the_topics_as_the_node_subscribes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bag = write_bag(tmp_path / 'in', 2, cameras=('front', 'rear'))
    params = tmp_path / 'params.yaml'
    params.write_text(
        '/**:\n  ros__parameters:\n    camera_names: [rear]\n'
        '    cameras.rear.topic: rear/image_raw\n'  # relative: the root namespace
    )
    json_path = tmp_path / 'r.json'
    args = ['replay', str(bag), '--params', str(params), '--backend', 'eager', '--precision',
            'fp32', '--device', 'cpu', '--report', str(tmp_path / 'rep'),
            '--no-progress']  # fmt: skip
    assert main([*args, '--json', str(json_path)]) == 0
    assert list(json.loads(json_path.read_text())['cameras']) == ['rear']
    params.write_text('/**:\n  ros__parameters:\n    cameras.camera.topic: /side/image_raw\n')
    assert main(args) == 2
    assert "has no image topic '/side/image_raw'" in capsys.readouterr().err


def test_warm_up_skips_bad_first_frames_and_uses_the_next_good_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue 24 frames: none is decoded, each is one bad frame with its reason."""
    hostile = [
        hostile_frames.jpeg_claiming(65000, 65000, nbytes=723),
        hostile_frames.jpeg_claiming(4096, 4096, nbytes=723),
        hostile_frames.random_bytes(700),
    ]
    with BagWriter(tmp_path / 'in') as bag:
        for k, raw in enumerate(hostile):
            t, data = T0 + k * PERIOD_NS, np.frombuffer(raw, np.uint8)
            bag.write(
                '/front/image_raw/compressed', t, make_compressed('jpeg', data, make_header(t))
            )
        for k in (3, 4):  # PNGs labelled jpeg: decoded by their bytes
            data = imaging.encode_compressed(frame(k), 'rgb8', 'png')[1]
            t = T0 + k * PERIOD_NS
            bag.write(
                '/front/image_raw/compressed', t, make_compressed('jpeg', data, make_header(t))
            )
    built: list[tuple[int, int, int]] = []

    class Recording(Fake):
        """The fake model, recording every engine the service builds."""

        def __call__(self, n: int, h: int, w: int) -> Fake:
            built.append((n, h, w))
            return self

    decoded = hostile_frames.record_decodes(monkeypatch)
    clock = ManualClock()
    fake = Recording(clock, 10_000_000)
    opts = ReplayOptions(progress=False)
    result = replay(
        tmp_path / 'in', CONFIG, opts, loaded=LOADED, clock=simulated(clock), segmenter=fake
    )
    (cam,) = result.cameras
    assert (cam.bad, cam.processed) == (3, 2)
    assert built == [(1, H, W)]  # built in the warm-up on frame 3, never at 4096x4096
    assert fake.calls == 3  # the warm-up's call and the two good frames
    assert decoded == [(H, W, 3)] * 3  # the warm-up's and the two good frames: nothing else
    notes = [n for n in result.notes if 'bad frame skipped' in n]
    assert notes == [
        'camera front: bad frame skipped: frame declares 65000x65000, over max_frame_side 4096 '
        '(raise max_frame_side to accept it)',
        'camera front: bad frame skipped: jpeg of 723 bytes declares 4096x4096: a complete jpeg '
        'of that size needs at least 16384 bytes',
        "camera front: bad frame skipped: CompressedImage is not an image (format 'jpeg'): bytes "
        f'start {hostile[2][:8].hex(" ")} ... (neither JPEG nor PNG)',
    ]


def test_realtime_replay_cuts_a_gap_in_log_time_with_a_note(tmp_path: Path) -> None:
    hour = 3600 * 10**9
    stamps = [T0, T0 + PERIOD_NS, T0 + hour, T0 + hour + PERIOD_NS]
    with BagWriter(tmp_path / 'in') as bag:
        for k, t in enumerate(stamps):
            bag.write('/front/image_raw', t, make_image(frame(k), 'rgb8', make_header(t)))
    clock = ManualClock()
    opts = ReplayOptions(progress=False, rate='realtime')
    result = replay(
        tmp_path / 'in', CONFIG, opts, loaded=LOADED, clock=simulated(clock),
        segmenter=Fake(clock, 1_000_000),
    )  # fmt: skip
    assert result.cameras[0].processed == 4
    (note,) = [n for n in result.notes if 'log time jumps' in n]
    assert 'jumps 3600.0 s' in note and 'waited 2 s of it' in note
    assert clock.monotonic_ns() < 10 * 10**9  # not an hour


def test_a_damaged_mcap_chunk_costs_its_frames_and_the_replay_finishes(tmp_path: Path) -> None:
    with BagWriter(tmp_path / 'in', 'mcap') as bag:
        for k in range(12):
            image = np.full((256, 512, 3), 40 + k, np.uint8)
            t = T0 + k * PERIOD_NS
            bag.write('/front/image_raw', t, make_image(image, 'rgb8', make_header(t)))
    (mcap,) = (tmp_path / 'in').glob('*.mcap')
    data = bytearray(mcap.read_bytes())
    data[data.find(bytes([45]) * 64)] ^= 0xFF  # a pixel of frame 5, inside some chunk
    mcap.write_bytes(bytes(data))
    result = run(tmp_path / 'in')
    (cam,) = result.cameras
    assert 1 <= cam.bad < 12 and cam.processed == 12 - cam.bad
    assert any('damaged MCAP chunk' in note for note in result.notes)


def test_damaged_bags_end_in_one_line_at_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    many = tmp_path / 'many'
    with BagWriter(many) as bag:
        for k in range(65):
            bag.write(f'/cam{k}/image_raw', T0, make_image(frame(0), 'rgb8', make_header(T0)))
    cut = write_bag(tmp_path / 'cut', 3, storage='mcap')
    (mcap,) = cut.glob('*.mcap')
    mcap.write_bytes(mcap.read_bytes()[:-100])
    for bag, says in ((many, 'has 65 image topics, at most 64'), (cut, 'cut off')):
        assert main(['replay', str(bag), '--no-progress', '--out', str(tmp_path / 'o')]) == 2
        err = capsys.readouterr().err
        assert err.startswith('segnode: error: ') and err.count('\n') == 1 and says in err, err
        assert 'Traceback' not in err and not (tmp_path / 'o').exists()
