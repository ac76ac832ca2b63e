"""The segnode command line: info, convert-official, demo and error handling."""

from __future__ import annotations

from dataclasses import replace
import json
from pathlib import Path
import subprocess
import sys

import cv2
import numpy as np
import pytest
from reference import official_mfaranet as ref

from segnode.cli import main
from segnode.pipeline.assemble import load_labelled_model
from segnode.replay import demo


@pytest.fixture(scope='module')
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp('cli')
    ref.make_official_checkpoint(folder / 'official.pth', num_classes=19, seed=5)
    assert main(['convert-official', str(folder / 'official.pth'), str(folder / 'seg.pt')]) == 0
    return folder / 'seg.pt'


def test_info_reports_architecture_equalizers_and_cost(
    converted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(['info', str(converted), '--json']) == 0
    info = json.loads(capsys.readouterr().out)
    assert info['parameters'] == 12_996_748
    assert info['macs'] == {'size': [1024, 2048], 'gmac': pytest.approx(218.148, abs=1e-3)}
    assert info['equalizers']['state'] == 'identity' and info['equalizers']['count'] == 18
    assert info['equalizers']['residual_multiplies_after_fold'] == 0
    assert info['dataset'] == 'cityscapes' and info['classes'][0] == 'road'


def test_info_text(converted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['info', str(converted), '--size', '512', '1024']) == 0
    out = capsys.readouterr().out
    assert 'parameters    12,996,748' in out and '54.537 G at 512x1024' in out


def test_convert_rejects_wrong_dataset(
    converted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = converted.parent / 'official.pth'
    code = main(
        ['convert-official', str(src), str(converted.parent / 'x.pt'), '--dataset', 'camvid']
    )
    assert code == 2
    assert 'camvid has 11 classes, the checkpoint has 19' in capsys.readouterr().err
    assert not (converted.parent / 'x.pt').exists()


def test_user_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, '-m', 'segnode', 'info', str(tmp_path / 'missing.pt')],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == f'segnode: error: checkpoint not found: {tmp_path}/missing.pt'


def test_demo_records_and_replays_a_drive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv('SEGNODE_CAMVID_ROOT', raising=False)  # the synthetic drive
    args = ['demo', '--size', '64', '96', '--frames', '6', '--rate', '50', '--out', str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert 'model: checkpoint ' in out and 'camvid_mfaranet.pt' in out  # the bundled model
    assert 'RANDOM' not in out and 'camera camera: 6 frames' in out and 'mIoU' in out
    assert f'report: {tmp_path}/report/report.md' in out
    report = json.loads((tmp_path / 'report' / 'report.json').read_text())
    assert report['mode'] == 'realtime' and report['frames'] == 6
    assert report['processed'] + report['dropped'] == 6
    assert (tmp_path / 'synthetic_drive' / 'metadata.yaml').is_file()
    assert 'not CamVid' in out  # the synthetic default says what its numbers mean


def test_demo_drives_through_a_folder_of_images_with_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, labels = tmp_path / 'images', tmp_path / 'labels'
    images.mkdir()
    labels.mkdir()
    for k in range(5):
        cv2.imwrite(str(images / f'f{k}.png'), np.full((64, 96, 3), 30 * k, np.uint8))
        cv2.imwrite(str(labels / f'f{k}.png'), np.full((64, 96), k % 3, np.uint8))
    out = tmp_path / 'out'
    (out / 'report' / 'overlays').mkdir(parents=True)
    (out / 'report' / 'overlays' / 'stale.png').write_bytes(b'old')  # a previous run's file
    args = ['demo', '--images', str(images), '--labels', str(labels), '--frames', '4']
    assert main([*args, '--rate', '50', '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    assert f'4 frames from {images}' in printed and f'labels from {labels}' in printed
    report = json.loads((out / 'report' / 'report.json').read_text())
    assert report['frames'] == 4 and report['miou'] is not None
    assert not (out / 'report' / 'overlays' / 'stale.png').exists()


@pytest.mark.parametrize(('split', 'warned'), [('trainval', True), ('train', False)])
def test_demo_on_camvid_val_says_when_the_model_was_trained_on_those_frames(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    split: str,
    warned: bool,
) -> None:
    root = tmp_path / 'camvid'
    for folder, stem in (
        ('train', '0001TP_00000'),
        *(('val', f'0016E5_{k:05d}') for k in range(3)),
    ):
        (root / f'{folder}annot').mkdir(parents=True, exist_ok=True)
        (root / folder).mkdir(exist_ok=True)
        cv2.imwrite(str(root / folder / f'{stem}.png'), np.full((64, 96, 3), 40, np.uint8))
        cv2.imwrite(str(root / f'{folder}annot' / f'{stem}.png'), np.zeros((64, 96), np.uint8))
    monkeypatch.setenv('SEGNODE_CAMVID_ROOT', str(root))
    bundled = load_labelled_model()
    recipe = {'dataset': 'camvid', 'train_split': split}
    monkeypatch.setattr(demo, 'load_labelled_model', lambda _: replace(bundled, recipe=recipe))
    assert main(['demo', '--frames', '3', '--rate', '50', '--out', str(tmp_path / 'out')]) == 0
    printed = capsys.readouterr().out
    assert f'3 frames from {root / "val"}' in printed
    note = "note: 3 of these 3 frames are in the model's training split (camvid trainval)"
    assert (note in printed) is warned


def test_demo_labels_need_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['demo', '--labels', str(tmp_path), '--out', str(tmp_path / 'o')]) == 2
    assert '--labels needs --images' in capsys.readouterr().err


def test_os_and_value_errors_are_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / 'images'
    images.mkdir()
    cv2.imwrite(str(images / 'a.png'), np.zeros((40, 40, 3), np.uint8))
    (tmp_path / 'file').write_text('x')  # a file where the output's folder goes
    code = main(['bag-from-images', str(images), '--out', str(tmp_path / 'file' / 'bag')])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith('segnode: error: ') and err.count('\n') == 1
    assert 'file' in err and 'Traceback' not in err
