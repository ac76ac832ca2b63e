"""segnode replay --confidence: confidence images in the output bag, next to the labels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from test_replay import CONFIG, frame, H, LOADED, PERIOD_NS, T0, W, write_bag

from segnode.cli import main
from segnode.pipeline import imaging
from segnode.replay.bag_writer import BagWriter, make_header, make_image
from segnode.replay.bags import open_bag
from segnode.replay.options import ReplayOptions
from segnode.replay.replay import replay


class _Confident:
    """mask = frame value % 3, confidence = 200 + frame value, as an engine with it gives."""

    def __init__(self) -> None:
        self.built: list[Any] = []

    def __call__(self, n: int, h: int, w: int) -> _Confident:
        return self

    def segment_batch(self, frames: Sequence[np.ndarray], encoding: str | None = None) -> Any:
        return SimpleNamespace(
            masks=np.stack([np.full((H, W), f[0, 0, 0] % 3, np.uint8) for f in frames]),
            confidences=np.stack([np.full((H, W), 200 + f[0, 0, 0], np.uint8) for f in frames]),
        )


def _run(bag: Path, **options: Any) -> Any:
    opts = ReplayOptions(progress=False, **options)
    return replay(bag, CONFIG, opts, loaded=LOADED, segmenter=_Confident())


def test_confidence_is_written_with_the_labels_stamps(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / 'in', 4)
    _run(bag, out_bag=str(tmp_path / 'out'), confidence=True)
    with open_bag(tmp_path / 'out') as out:
        counts = {t: i.count for t, i in out.info.topics.items()}
        assert counts['/segnode/front/confidence'] == counts['/segnode/front/labels'] == 4
        labels = list(out.messages(['/segnode/front/labels']))
        conf = list(out.messages(['/segnode/front/confidence']))
        stamps = [imaging.stamp_ns(m.msg.header) for m in conf]
        assert stamps == [imaging.stamp_ns(m.msg.header) for m in labels]
        assert stamps == [T0 + k * PERIOD_NS for k in range(4)]
        assert {m.msg.encoding for m in conf} == {'mono8'}
        assert [int(imaging.image_to_array(m.msg)[0, 0]) for m in conf] == [200, 201, 202, 203]
    again = _run(tmp_path / 'out')  # its confidence images are segnode's, not a camera
    assert [c.topic for c in again.cameras] == ['/front/image_raw']
    assert any('/segnode/front/confidence is segnode output' in n for n in again.notes)


def test_without_the_option_no_confidence_is_written(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / 'in', 2)
    _run(bag, out_bag=str(tmp_path / 'out'))
    with open_bag(tmp_path / 'out') as out:
        assert '/segnode/front/confidence' not in out.info.topics


def test_cli_replay_confidence_builds_the_engine_with_it(tmp_path: Path) -> None:
    with BagWriter(tmp_path / 'in') as bag:
        for k in range(2):
            header = make_header(T0 + k * PERIOD_NS, 'cam')
            bag.write('/cam/image_raw', T0 + k * PERIOD_NS, make_image(frame(40 * k), 'rgb8',
                                                                       header))  # fmt: skip
    out = tmp_path / 'out'
    args = ['replay', str(tmp_path / 'in'), '--backend', 'eager', '--precision', 'fp32',
            '--device', 'cpu', '--out', str(out), '--confidence', '--report',
            str(tmp_path / 'rep'), '--no-progress']  # fmt: skip
    assert main(args) == 0
    with open_bag(out) as bag:
        conf = [imaging.image_to_array(m.msg) for m in bag.messages(['/segnode/cam/confidence'])]
    assert len(conf) == 2 and all(c.shape == (H, W) and c.dtype == np.uint8 for c in conf)
    assert min(int(c.min()) for c in conf) >= round(255 / 11)  # at least 1/K of 11 classes
