"""End-to-end CPU training: 2 iterations, exact resume, the train/eval/equalize commands."""

from __future__ import annotations

import json
from pathlib import Path
import shutil

from conftest import tiny_overrides
import pytest
import torch

from segnode.cli import main
from segnode.errors import ConfigError
from segnode.model.backbone import DeepStemResNet18
from segnode.model.checkpoint import build_from_checkpoint, read_checkpoint
from segnode.train.config import load_train_config
from segnode.train.loop import train
from segnode.train.state import load_state

CONFIGS = Path(__file__).resolve().parents[2] / 'config' / 'train'


def test_two_iterations_on_a_cityscapes_layout(cityscapes_tree: Path, tmp_path: Path) -> None:
    result = train(load_train_config(None, tiny_overrides(cityscapes_tree, tmp_path)))
    assert result.iterations == 2 and result.checkpoint == tmp_path / 'model_final.pt'
    model, meta = build_from_checkpoint(tmp_path / 'model_final.pt')
    assert meta['dataset'] == 'cityscapes' and len(meta['classes']['names']) == 19
    assert meta['equalizers']['state'] == 'measured'
    assert meta['equalizers']['data']['batch_size_per_gpu'] == 2
    assert 0.0 <= meta['metrics']['val_miou'] <= 1.0
    lines = (tmp_path / 'train_metrics.csv').read_text().splitlines()
    assert lines[0].startswith('step,ce,ohem,boundary,attention,empty_edges,loss')
    assert len(lines) == 3 and (tmp_path / 'model_best.pt').is_file()
    assert load_state(tmp_path / 'state' / 'iter_0000002.pt')['iteration'] == 2


def test_baseline_without_equalizers(cityscapes_tree: Path, tmp_path: Path) -> None:
    cfg = load_train_config(
        None,
        tiny_overrides(cityscapes_tree, tmp_path, equalizers='false', max_iters=1, val_every=-1),
    )
    train(cfg)
    _, meta = read_checkpoint(tmp_path / 'model_final.pt')
    assert meta['equalizers']['state'] == 'none' and meta['model']['equalizers'] is False


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)[0]


@pytest.mark.parametrize('lost_run_folder', [False, True], ids=['run-folder', 'state-copy'])
def test_killed_and_resumed_run_ends_with_identical_weights(
    cityscapes_tree: Path, tmp_path: Path, lost_run_folder: bool
) -> None:
    # 6 images, batch 2: 3 iterations per epoch, so the resumed part crosses an epoch.
    common = {
        'max_iters': 5,
        'checkpoint_every': 2,
        'train_limit': 6,
        'val_every': -1,
        'keep_last': 1,
    }
    whole = tmp_path / 'whole'
    train(load_train_config(None, tiny_overrides(cityscapes_tree, whole, **common)))
    part, copy = tmp_path / 'part', tmp_path / 'elsewhere'
    common['state_copy'] = str(copy)
    killed = train(
        load_train_config(None, tiny_overrides(cityscapes_tree, part, stop_at=3, **common))
    )
    assert killed.checkpoint is None and killed.iterations == 3
    assert [p.name for p in (part / 'state').iterdir()] == ['iter_0000002.pt']  # keep_last 1
    assert [p.name for p in (copy / 'state').iterdir()] == ['iter_0000002.pt']
    if lost_run_folder:
        shutil.rmtree(part)
    resumed = train(
        load_train_config(None, tiny_overrides(cityscapes_tree, part, resume='auto', **common))
    )
    assert resumed.iterations == 5
    assert [p.name for p in (copy / 'state').iterdir()] == ['iter_0000005.pt']  # the last state
    a, b = _weights(whole / 'model_final.pt'), _weights(part / 'model_final.pt')
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f'resumed weights differ: {different[:5]}'


def test_state_copy_must_not_be_the_run_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='state_copy must be another folder than out_dir'):
        load_train_config(None, [f'out_dir={tmp_path}', f'state_copy={tmp_path}/.'])


def test_resume_refuses_another_recipe(cityscapes_tree: Path, tmp_path: Path) -> None:
    common = {'max_iters': 1, 'val_every': -1}
    train(load_train_config(None, tiny_overrides(cityscapes_tree, tmp_path, **common)))
    cfg = load_train_config(
        None, tiny_overrides(cityscapes_tree, tmp_path, resume='auto', lr=0.1, **common)
    )
    with pytest.raises(ConfigError, match=r'written with other settings: lr=0.005 \(now 0.1\)'):
        train(cfg)


def test_cli_train_eval_and_equalize(
    cityscapes_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / 'run'
    assert main(['train', *tiny_overrides(cityscapes_tree, run, max_iters=1, val_every=-1)]) == 0
    assert 'trained 1 iterations' in capsys.readouterr().out
    report = tmp_path / 'eval.json'
    args = [
        'eval',
        '--checkpoint',
        str(run / 'model_final.pt'),
        '--dataset',
        'cityscapes',
        '--data-root',
        str(cityscapes_tree),
        '--split',
        'val',
        '--json',
        str(report),
        '--scales',
        '0.75',
        '1.0',
        '--flip',
        '--window',
        '32',
        '64',
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert 'mIoU' in out and 'road' in out
    result = json.loads(report.read_text())
    assert set(result['per_class_iou']) >= {'road', 'bicycle'} and result['images'] == 2
    assert result['miou'] is None or 0.0 <= result['miou'] <= 1.0
    assert result['train_split'] == 'train' and result['seen_in_training'] == 0
    assert 'note:' not in out
    assert (tmp_path / 'eval_confusion.png').stat().st_size > 1000
    trained_on = [*args[:8], 'train', '--json', str(tmp_path / 'eval-train.json')]
    assert main(trained_on) == 0  # the images it trained on: the score says so
    seen = json.loads((tmp_path / 'eval-train.json').read_text())['seen_in_training']
    assert seen > 0
    note = f'note: {seen} of these {seen} images are in the split the checkpoint was trained on'
    assert f'{note} (cityscapes train)' in capsys.readouterr().out
    measured = tmp_path / 'measured.pt'
    equalize = [
        'equalize',
        '--checkpoint',
        str(run / 'model_final.pt'),
        '--out',
        str(measured),
        *tiny_overrides(cityscapes_tree, run),
    ]
    assert main(equalize) == 0
    assert 'measured 18 equalizers on' in capsys.readouterr().out
    assert read_checkpoint(measured)[1]['equalizers']['state'] == 'measured'


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(['train', '--config', str(CONFIGS / 'camvid.yaml'), f'data_root={tmp_path}/x'])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith('segnode: error: CamVid root not found') and err.count('\n') == 1
    assert main(['train', 'crop=[8,8]']) == 2
    assert 'crop must be [H, W]' in capsys.readouterr().err


@pytest.mark.data
def test_camvid_two_iterations_with_workers(camvid_root: Path, tmp_path: Path) -> None:
    overrides = [
        *tiny_overrides(camvid_root, tmp_path),
        'dataset=camvid',
        'workers=1',
        'train_limit=8',
        'equalizer_images=4',
    ]
    cfg = load_train_config(CONFIGS / 'camvid.yaml', overrides)
    result = train(cfg)
    assert result.iterations == 2 and result.best_miou is not None
    _, meta = read_checkpoint(tmp_path / 'model_final.pt')
    assert meta['dataset'] == 'camvid' and meta['classes']['names'][0] == 'sky'


def test_bf16_channels_last_clipping_and_imagenet_file(
    cityscapes_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / 'resnet18-deep.pth'
    torch.save({'state_dict': DeepStemResNet18().state_dict()}, weights)
    extra = {
        'amp': 'bf16',
        'channels_last': 'true',
        'grad_clip': 1.0,
        'max_iters': 1,
        'val_every': -1,
        'pretrained': str(weights),
        'log_every': 1,
    }
    result = train(load_train_config(None, tiny_overrides(cityscapes_tree, tmp_path, **extra)))
    assert result.iterations == 1
    row = (tmp_path / 'train_metrics.csv').read_text().splitlines()
    assert 'grad_norm' in row[0]
    (tmp_path / 'bad.pth').write_bytes(b'not a checkpoint')
    bad = tiny_overrides(cityscapes_tree, tmp_path / 'bad', pretrained=tmp_path / 'bad.pth')
    assert main(['train', *bad]) == 2
    assert 'cannot read ImageNet weights' in capsys.readouterr().err
