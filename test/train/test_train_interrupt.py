"""Ctrl-C during training saves the state and resumes exactly; a finished run is left alone."""

from __future__ import annotations

from pathlib import Path
import signal
from typing import Any

from conftest import tiny_overrides
import numpy as np
import pytest
import torch

from segnode.cli import main
from segnode.data.dataset import DatasetSpec, LutDecoder, SegmentationDataset
from segnode.data.labels import CAMVID
from segnode.model.checkpoint import read_checkpoint
from segnode.train.config import load_train_config
from segnode.train.loop import train, Trainer
from segnode.train.state import latest_state

COMMON = {'max_iters': 5, 'checkpoint_every': 100, 'train_limit': 6, 'val_every': -1}


@pytest.mark.usefixtures('default_sigint')
def test_ctrl_c_saves_the_step_it_finished_and_the_run_resumes_exactly(
    cityscapes_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = tmp_path / 'whole'
    train(load_train_config(None, tiny_overrides(cityscapes_tree, whole, **COMMON)))
    after_step = Trainer._after_step

    def press_ctrl_c_at_3(self: Trainer, *args: Any, **kwargs: Any) -> None:
        after_step(self, *args, **kwargs)
        if self.iteration == 3:
            signal.raise_signal(signal.SIGINT)

    part = tmp_path / 'part'
    monkeypatch.setattr(Trainer, '_after_step', press_ctrl_c_at_3)
    with pytest.raises(KeyboardInterrupt):
        train(load_train_config(None, tiny_overrides(cityscapes_tree, part, **COMMON)))
    assert latest_state(part) == part / 'state' / 'iter_0000003.pt'
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    monkeypatch.setattr(Trainer, '_after_step', after_step)
    cfg = load_train_config(None, tiny_overrides(cityscapes_tree, part, resume='auto', **COMMON))
    assert train(cfg).iterations == 5
    a, b = (read_checkpoint(d / 'model_final.pt')[0] for d in (whole, part))
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_a_finished_run_is_not_validated_again(
    cityscapes_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = tiny_overrides(cityscapes_tree, tmp_path, max_iters=1, resume='auto')
    assert main(['train', *args]) == 0
    vals = (tmp_path / 'metrics.jsonl').read_text().count('"val"')
    capsys.readouterr()
    assert main(['train', *args]) == 0
    out = capsys.readouterr().out
    assert 'none run now' in out and 'nan' not in out
    assert (tmp_path / 'metrics.jsonl').read_text().count('"val"') == vals


def test_label_ids_no_class_has_become_ignore_and_are_counted(tmp_path: Path) -> None:
    import cv2

    image, label = tmp_path / 'a.png', tmp_path / 'a_label.png'
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    ids = np.zeros((8, 8), np.uint8)
    ids[0, :3] = 200
    ids[1, :2] = 255
    cv2.imwrite(str(label), ids)
    spec = DatasetSpec('camvid', 'val', ((image, label),), LutDecoder(), CAMVID)
    sample = SegmentationDataset(spec, boundary=False)[0]
    assert int(sample['unknown_labels']) == 3
    assert int((sample['label'] == 255).sum()) == 5 and int(sample['label'].max()) == 255
