"""Measuring MFARANet's Scale Equalizer statistics: checks 3-4 of docs/model.md.

Measuring is described in docs/model.md, "Equalizer statistics"; the checks in "Verification
checklist".

The expensive measuring runs once per module (8 batches of 2 random-normal 64x64 images,
4 passes). Random-normal images stand in for the training pipeline: train-mode BatchNorm
normalises every batch, so the equalizer inputs are BN-ReLU statistics either way.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

from segnode.model.aggregation import EQUALIZER_DEPTHS
from segnode.model.equalizer_stats import equalizers_of, measure_equalizers
from segnode.model.mfaranet import build_mfaranet, MFARANet
from segnode.model.scale_equalizer import RunningMoments

SIZE = (64, 64)
BATCH = 2
STAT_BATCHES = 8
STAT_SEED = 1234
HELD_OUT_SEED = 4321
# Spatial size of every equalizer's input for a 64x64 image (strides 4, 8, 16, 32).
INPUT_HW = {
    'u1_c1': 16 * 16, 'u1_up': 16 * 16,
    'c2': 8 * 8, 'u2_up': 8 * 8, 'd2_down': 8 * 8, 'f2_u2': 8 * 8, 'f2_d2': 8 * 8,
    'c3': 4 * 4, 'u3_up': 4 * 4, 'd3_down': 4 * 4, 'f3_u3': 4 * 4, 'f3_d3': 4 * 4,
    'd4_c4': 2 * 2, 'd4_down': 2 * 2,
}  # fmt: skip
WIDTH = 128


def _names() -> list[str]:
    return [f'mfam.equalizers.{n}' for n in EQUALIZER_DEPTHS] + [
        f'equalizers.{i}' for i in range(4)
    ]


def _stat_batches() -> list[torch.Tensor]:
    """Like a loader with a fixed seed: same batches on every call, but it moves the global RNG."""
    torch.manual_seed(STAT_SEED)
    return [torch.randn(BATCH, 3, *SIZE) for _ in range(STAT_BATCHES)]


def _held_out_batches(count: int = 2) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(HELD_OUT_SEED)
    return [torch.randn(BATCH, 3, *SIZE, generator=gen) for _ in range(count)]


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _is_equalizer_buffer(key: str) -> bool:
    return key.startswith(('mfam.equalizers.', 'equalizers.'))


def _output_moments(
    model: nn.Module, batches: list[torch.Tensor], bn_train: bool = True
) -> dict[str, RunningMoments]:
    """Pooled float64 moments of every equalizer's OUTPUT, in the measuring mode.

    Measuring mode: BN in train mode (batch statistics), dropout off. Runs on a copy, so
    the BN running statistics of ``model`` are not touched.
    """
    model = copy.deepcopy(model)
    model.train(bn_train)
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.eval()
    moments = {name: RunningMoments.empty() for name in equalizers_of(model)}

    def hook(name: str) -> Any:
        def record(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            moments[name] = moments[name].merge(RunningMoments.of(output))

        return record

    for name, eq in equalizers_of(model).items():
        eq.register_forward_hook(hook(name))
    with torch.no_grad():
        for x in batches:
            model(x)
    return moments


@pytest.fixture(scope='module')
def measured() -> dict[str, Any]:
    torch.manual_seed(0)
    model = build_mfaranet(num_classes=11, width=WIDTH)
    model.eval()  # measuring must use train-mode BN anyway, and restore eval mode
    before = _snapshot(model)
    torch.manual_seed(99)
    rng_before = torch.get_rng_state()
    provenance = measure_equalizers(
        model,
        _stat_batches,
        description={'dataset': 'random normal', 'batch_size': BATCH, 'size': list(SIZE)},
    )
    rng_after = torch.get_rng_state()
    return {
        'model': model,
        'before': before,
        'after': _snapshot(model),
        'rng_before': rng_before,
        'rng_after': rng_after,
        'provenance': provenance,
    }


# --------------------------------------------------------------------------------------------
# Check 3: measuring leaves the model untouched
# --------------------------------------------------------------------------------------------


def test_measuring_changes_only_the_equalizer_constants(measured: dict[str, Any]) -> None:
    before, after = measured['before'], measured['after']
    assert set(before) == set(after)
    others = [k for k in before if not _is_equalizer_buffer(k)]
    assert sum(k.endswith('num_batches_tracked') for k in others) > 20
    assert sum(k.endswith(('running_mean', 'running_var')) for k in others) > 40
    for key in others:
        assert torch.equal(before[key], after[key]), key
    for key in before.keys() - set(others):
        assert not torch.equal(before[key], after[key]), key  # every constant was measured
    for name, param in measured['model'].named_parameters():
        assert torch.equal(param.detach(), before[name]), name


def test_measuring_restores_rng_and_eval_mode(measured: dict[str, Any]) -> None:
    assert torch.equal(measured['rng_before'], measured['rng_after'])
    state = torch.get_rng_state()
    _stat_batches()
    assert not torch.equal(torch.get_rng_state(), state)  # the batch source does move the RNG
    model = measured['model']
    assert not any(module.training for module in model.modules())


def test_measuring_restores_train_mode_and_is_reproducible() -> None:
    torch.manual_seed(0)
    model = build_mfaranet(num_classes=11, width=WIDTH)
    model.train()
    batches = [torch.randn(1, 3, *SIZE, generator=torch.Generator().manual_seed(5))]
    first = measure_equalizers(model, batches)
    assert all(module.training for module in model.modules())  # dropouts back in train mode too
    constants = {n: (eq.mean.clone(), eq.std.clone()) for n, eq in equalizers_of(model).items()}
    second = measure_equalizers(model, batches)  # resets to identity first, same result
    for name, eq in equalizers_of(model).items():
        assert torch.equal(eq.mean, constants[name][0]) and torch.equal(eq.std, constants[name][1])
    assert first['equalizers'] == second['equalizers']
    assert first['batches_per_pass'] == 1


# --------------------------------------------------------------------------------------------
# Check 4: the statistics are right
# --------------------------------------------------------------------------------------------


def test_provenance(measured: dict[str, Any]) -> None:
    provenance, model = measured['provenance'], measured['model']
    assert isinstance(model, MFARANet) and model.equalizer_provenance is provenance
    assert provenance['state'] == 'measured'
    assert 'measured_at' in provenance and provenance['levels'] == 4
    assert provenance['batches_per_pass'] == STAT_BATCHES
    assert provenance['data'] == {'dataset': 'random normal', 'batch_size': 2, 'size': [64, 64]}
    stats = provenance['equalizers']
    assert list(stats) == _names() == list(equalizers_of(model))
    assert len(stats) == 18
    images = STAT_BATCHES * BATCH
    for name, eq in equalizers_of(model).items():
        short = name.rsplit('.', 1)[-1]
        depth = EQUALIZER_DEPTHS.get(short, 3) if name.startswith('mfam.') else 3
        assert stats[name]['depth'] == eq.depth == depth, name
        assert stats[name]['mean'] == float(eq.mean) and stats[name]['std'] == float(eq.std)
        spatial = INPUT_HW[short] if name.startswith('mfam.') else 16 * 16
        assert stats[name]['count'] == images * WIDTH * spatial, name


def test_rerun_gives_zero_mean_unit_std(measured: dict[str, Any]) -> None:
    # Measured from eval mode: matching the train-mode-BN re-run proves BN ran in train mode.
    moments = _output_moments(measured['model'], _stat_batches())
    assert len(moments) == 18
    for name, m in moments.items():
        assert abs(float(m.mean)) <= 1e-4, name
        assert abs(float(m.std) - 1) <= 1e-4, name


def test_eval_mode_batchnorm_would_give_other_statistics(measured: dict[str, Any]) -> None:
    # Eval-mode BN at initialisation (running stats 0/1) sees meaningless scales: its re-run
    # is far from (0, 1), so the 1e-4 agreement above cannot come from eval-mode BN.
    moments = _output_moments(measured['model'], _stat_batches()[:1], bn_train=False)
    worst = max(max(abs(float(m.mean)), abs(float(m.std) - 1)) for m in moments.values())
    assert worst > 0.5


def test_held_out_batches_are_close_to_zero_mean_unit_std(measured: dict[str, Any]) -> None:
    # 8 batches of 2 (64x64) keep the held-out deviations at about 0.03; with fewer
    # images the tiny stride-32 maps (2x2) make the constants noticeably noisier.
    held_out = _held_out_batches()
    for x in held_out:
        assert not any(torch.equal(x, c) for c in _stat_batches())
    for name, m in _output_moments(measured['model'], held_out).items():
        assert abs(float(m.mean)) <= 0.05, name
        assert abs(float(m.std) - 1) <= 0.05, name


def test_soft_statistics_of_bn_relu_inputs(measured: dict[str, Any]) -> None:
    stats = measured['provenance']['equalizers']
    mean = {name.rsplit('.', 1)[-1]: s['mean'] for name, s in stats.items()}
    std = {name.rsplit('.', 1)[-1]: s['std'] for name, s in stats.items()}
    # Every input is a BN(train)-ReLU output (resized or warped): mean of ReLU(N(0,1)) = 0.399.
    for name, value in mean.items():
        assert 0.30 <= value <= 0.50, name
    # Un-resized BN-ReLU inputs: std of ReLU(N(0,1)) = 0.584.
    for name in ('c2', 'c3', 'u1_c1', 'd4_c4', 'f2_u2', 'f2_d2', 'f3_u3', 'f3_d3', '0'):
        assert std[name] == pytest.approx(0.584, abs=0.03), name
    # Resized (bilinear) and warped (grid_sample) inputs are smaller.
    for name in ('u3_up', 'u2_up', 'u1_up', 'd2_down', 'd3_down', 'd4_down', '1', '2', '3'):
        assert std[name] < std['c2'] - 0.05, name


# --------------------------------------------------------------------------------------------
# Measuring that fails
# --------------------------------------------------------------------------------------------


def test_dead_input_raises_and_leaves_identity() -> None:
    torch.manual_seed(0)
    model = build_mfaranet(num_classes=11, width=WIDTH)
    for eq in equalizers_of(model).values():  # pretend an earlier measurement
        eq.mean.fill_(0.4)
        eq.std.fill_(0.6)
    with torch.no_grad():
        model.mfam.laterals[1][0].weight.zero_()  # c2 = ReLU(BN(0)) = 0: a constant input
    model.train()
    before = _snapshot(model)
    rng = torch.get_rng_state()
    batches = [torch.randn(BATCH, 3, *SIZE, generator=torch.Generator().manual_seed(6))]
    with pytest.raises(ValueError, match='dead'):
        measure_equalizers(model, batches)
    eqs = equalizers_of(model)
    assert len(eqs) == 18
    for name, eq in eqs.items():  # u3_up and c3 had already finished: reset too
        assert float(eq.mean) == 0.0 and float(eq.std) == 1.0, name
    after = _snapshot(model)
    for key, value in before.items():
        if not _is_equalizer_buffer(key):
            assert torch.equal(value, after[key]), key
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(module.training for module in model.modules())
    assert model.equalizer_provenance == {'state': 'unmeasured'}


def test_no_batches_and_no_equalizers_raise() -> None:
    torch.manual_seed(0)
    model = build_mfaranet(num_classes=11, width=16)
    with pytest.raises(ValueError, match='no batches'):
        measure_equalizers(model, [])
    for eq in equalizers_of(model).values():
        assert float(eq.mean) == 0.0 and float(eq.std) == 1.0
    baseline = build_mfaranet(num_classes=11, width=16, equalizers=False)
    with pytest.raises(ValueError, match='no scale equalizers'):
        measure_equalizers(baseline, [torch.randn(1, 3, *SIZE)])
