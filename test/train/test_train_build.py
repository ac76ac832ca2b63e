"""The optimiser's schedule (poly with a warm-up) and starting a run from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from segnode.errors import CheckpointError, ConfigError
from segnode.model.checkpoint import save_checkpoint
from segnode.model.equalizer_stats import measure_equalizers
from segnode.model.mfaranet import build_mfaranet
from segnode.train.build import build_optimizer, build_training_model, poly_schedule
from segnode.train.config import TrainConfig
from segnode.train.state import load_state, save_state


def _lrs(warmup: int, steps: int) -> list[float]:
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    schedule = poly_schedule(optimizer, 10, 1.0, warmup)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        schedule.step()
    return lrs


def test_poly_without_warm_up_is_unchanged() -> None:
    assert _lrs(0, 3) == pytest.approx([1.0, 0.9, 0.8])


def test_warm_up_ramps_linearly_into_the_poly_curve() -> None:
    # factor = (1 - i/10) * (i + 1)/4 for i < 4, then the plain poly
    expected = [1.0 * 1 / 4, 0.9 * 2 / 4, 0.8 * 3 / 4, 0.7 * 4 / 4, 0.6, 0.5]
    assert _lrs(4, 6) == pytest.approx(expected)


def _checkpoint(path: Path, num_classes: int, measure: bool) -> None:
    torch.manual_seed(1)
    model = build_mfaranet(num_classes=num_classes, boundary_heads=True)
    if measure:
        measure_equalizers(model, [torch.randn(2, 3, 64, 64)])
    names = [f'c{i}' for i in range(num_classes)]
    save_checkpoint(model, path, class_names=names, palette=[(0, 0, 0)] * num_classes, dataset='x')


def test_init_loads_every_tensor_and_keeps_measured_equalizers(tmp_path: Path) -> None:
    path = tmp_path / 'phase1.pt'
    _checkpoint(path, 11, measure=True)
    model = build_training_model(TrainConfig(init=str(path)), 11)
    saved = torch.load(path, weights_only=True)['state_dict']
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in saved.items())
    assert model.equalizer_provenance['state'] == 'measured'


def test_init_for_other_classes_keeps_the_fresh_classifiers(tmp_path: Path) -> None:
    path = tmp_path / 'camvid.pt'
    _checkpoint(path, 11, measure=True)
    model = build_training_model(TrainConfig(init=str(path)), 5)
    saved = torch.load(path, weights_only=True)['state_dict']
    own = model.state_dict()
    kept = [k for k, v in saved.items() if v.shape == own[k].shape]
    fresh = [k for k in own if k not in kept]
    assert kept and fresh and all(own[k].shape != saved[k].shape for k in fresh if k in saved)
    assert all(torch.equal(own[k], saved[k]) for k in kept if 'backbone' in k)


def test_unmeasured_init_leaves_the_equalizers_to_measure(tmp_path: Path) -> None:
    path = tmp_path / 'raw.pt'
    _checkpoint(path, 11, measure=False)
    model = build_training_model(TrainConfig(init=str(path)), 11)
    assert model.equalizer_provenance['state'] == 'unmeasured'


def test_pretrained_and_init_are_exclusive() -> None:
    with pytest.raises(ConfigError, match='not both'):
        TrainConfig(pretrained='a.pth', init='b.pt')


def test_one_rate_for_every_group_when_head_lr_mult_is_1() -> None:
    model = build_mfaranet(num_classes=3)
    optimizer = build_optimizer(model, TrainConfig(lr=0.02, head_lr_mult=1.0))
    assert {g['lr'] for g in optimizer.param_groups} == {0.02}


def test_init_from_a_training_state_takes_its_weights_and_equalizers(tmp_path: Path) -> None:
    torch.manual_seed(2)
    source = build_mfaranet(num_classes=11, boundary_heads=True)
    measure_equalizers(source, [torch.randn(2, 3, 64, 64)])
    extra = {'equalizers': dict(source.equalizer_provenance), 'optimizer': {}}
    path = save_state(tmp_path, 90, {'model': source.state_dict(), **extra}, keep_last=1)
    model = build_training_model(TrainConfig(init=str(path)), 11)
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in source.state_dict().items())
    assert model.equalizer_provenance['state'] == 'measured'


def test_a_training_state_written_before_the_rename_reads_under_the_new_names(
    tmp_path: Path,
) -> None:
    old = {'equalizers': {'state': 'calibrated'}, 'config': {'calibration_images': 64, 'lr': 0.1}}
    path = save_state(tmp_path, 7, {'model': {}, **old}, keep_last=1)
    state = load_state(path)
    assert state['equalizers'] == {'state': 'measured'}
    assert state['config'] == {'equalizer_images': 64, 'lr': 0.1}


def test_init_from_a_file_that_is_neither_names_the_checkpoint_problem(tmp_path: Path) -> None:
    path = tmp_path / 'other.pt'
    torch.save({'something': torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match='is not a segnode checkpoint'):
        build_training_model(TrainConfig(init=str(path)), 11)


def test_bf16_autocast_on_a_cpu_without_native_bf16_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from segnode import cpu
    from segnode.train.build import emulated_amp

    monkeypatch.setattr(cpu, 'flags', lambda: {'avx2', 'fma'})
    assert 'torch emulates bf16 here' in emulated_amp('bf16', torch.device('cpu'))
    assert emulated_amp('none', torch.device('cpu')) == ''
    monkeypatch.setattr(cpu, 'flags', lambda: {'avx512_bf16'})
    assert emulated_amp('bf16', torch.device('cpu')) == ''
