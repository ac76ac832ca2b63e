"""ScaleEqualizer, RunningMoments and the variance theory of Scale Equalizers.

Checks 1 (module), 2 (accumulator, including a two-rank gloo merge) and 5 (theory
regression) of docs/model.md, "Verification checklist". Theory regression: bilinear resizing
keeps the mean, shrinks the variance by factors computed exactly from the interpolation
weights, and commutes with per-channel affine maps; zero-padded ``grid_sample`` commutes with
a scale but not with a shift.
"""

from __future__ import annotations

import copy
import datetime
import io
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from segnode.model.aggregation import EQUALIZER_DEPTHS
from segnode.model.equalizer_stats import equalizers_of
from segnode.model.mfaranet import build_mfaranet
from segnode.model.scale_equalizer import RunningMoments, ScaleEqualizer

F64 = torch.float64


def _constants(channels: int | None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Plausible measured constants (post-ReLU statistics): mean ~0.4, std ~0.35-0.8."""
    gen = torch.Generator().manual_seed(seed)
    shape = () if channels is None else (channels,)
    mean = 0.2 + 0.4 * torch.rand(shape, generator=gen)
    std = 0.35 + 0.45 * torch.rand(shape, generator=gen)
    return mean, std


def _equalizer(channels: int | None, seed: int = 0) -> ScaleEqualizer:
    eq = ScaleEqualizer(channels, depth=2)
    mean, std = _constants(channels, seed)
    eq.mean.copy_(mean)
    eq.std.copy_(std)
    return eq


def _broadcast(v: torch.Tensor) -> torch.Tensor:
    return v.view(1, -1, 1, 1) if v.dim() else v


def _post_relu_like(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 0.4 + 0.58 * torch.randn(shape, generator=gen)


# --------------------------------------------------------------------------------------------
# Check 1: module
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize('channels', [None, 6], ids=['scalar', 'per_channel'])
def test_forward_is_affine_normalisation(channels: int | None) -> None:
    eq = _equalizer(channels)
    x = _post_relu_like((2, 6, 7, 9), seed=1)
    y = eq(x)
    expected = (x.double() - _broadcast(eq.mean.double())) / _broadcast(eq.std.double())
    assert y.dtype == torch.float32 and y.shape == x.shape
    scale = max(1.0, float(expected.abs().max()))
    assert float((y.double() - expected).abs().max()) <= 1e-7 * scale
    assert float((y - x).abs().max()) > 0.1  # the constants really act


def test_default_constants_are_identity() -> None:
    for channels in (None, 4):
        eq = ScaleEqualizer(channels)
        assert torch.equal(eq.mean, torch.zeros(() if channels is None else (channels,)))
        assert torch.equal(eq.std, torch.ones(() if channels is None else (channels,)))
        x = torch.randn(2, 4, 5, 6)
        assert torch.equal(eq(x), x)


def test_constants_are_buffers_not_parameters() -> None:
    eq = _equalizer(5)
    assert list(eq.parameters()) == []
    assert {name for name, _ in eq.named_buffers()} == {'mean', 'std'}
    assert set(eq.state_dict()) == {'mean', 'std'}
    assert not eq.mean.requires_grad and not eq.std.requires_grad
    # Persistent: a checkpoint without them fails loudly instead of silently becoming identity.
    with pytest.raises(RuntimeError, match='Missing key'):
        ScaleEqualizer(5).load_state_dict({})


@pytest.mark.parametrize('channels', [None, 5], ids=['scalar', 'per_channel'])
def test_constants_survive_save_load_and_to(channels: int | None) -> None:
    eq = _equalizer(channels, seed=3)
    x = _post_relu_like((2, 5, 4, 6), seed=4)

    buffer = io.BytesIO()
    torch.save(eq.state_dict(), buffer)
    buffer.seek(0)
    restored = ScaleEqualizer(channels, depth=2)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(restored.mean, eq.mean) and torch.equal(restored.std, eq.std)
    assert torch.equal(restored(x), eq(x))

    buffer = io.BytesIO()
    torch.save(eq, buffer)  # the whole module
    buffer.seek(0)
    whole = torch.load(buffer, weights_only=False)
    assert torch.equal(whole.mean, eq.mean) and torch.equal(whole.std, eq.std)
    assert whole.depth == 2

    as64 = copy.deepcopy(eq).to(F64)
    assert as64.mean.dtype == F64 and as64.std.dtype == F64
    assert torch.equal(as64.mean, eq.mean.double()) and torch.equal(as64.std, eq.std.double())
    x64 = x.double()
    y64 = as64(x64)
    assert y64.dtype == F64
    assert torch.equal(y64, (x64 - _broadcast(eq.mean.double())) / _broadcast(eq.std.double()))
    back = copy.deepcopy(as64).to(torch.float32)
    assert torch.equal(back.mean, eq.mean) and torch.equal(back.std, eq.std)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
@pytest.mark.parametrize('channels', [None, 6], ids=['scalar', 'per_channel'])
def test_low_precision_input_keeps_its_dtype(channels: int | None, dtype: torch.dtype) -> None:
    eq = _equalizer(channels, seed=5)
    x = _post_relu_like((2, 6, 5, 7), seed=6).to(dtype)
    y = eq(x)
    assert y.dtype == dtype
    assert eq.mean.dtype == torch.float32  # constants stay fp32
    expected = (x.double() - _broadcast(eq.mean.double())) / _broadcast(eq.std.double())
    tol = 2e-2 if dtype == torch.bfloat16 else 2e-3
    assert float((y.double() - expected).abs().max()) <= tol * float(expected.abs().max())


def test_identity_equalizers_match_baseline_bitwise_in_outputs_and_gradients() -> None:
    torch.manual_seed(0)
    baseline = build_mfaranet(num_classes=11, equalizers=False, boundary_heads=True)
    equalized = build_mfaranet(num_classes=11, equalizers=True, boundary_heads=True)
    result = equalized.load_state_dict(baseline.state_dict(), strict=False)
    expected_missing = {
        f'{prefix}.{buffer}'
        for prefix in [f'mfam.equalizers.{n}' for n in EQUALIZER_DEPTHS]
        + [f'equalizers.{i}' for i in range(4)]
        for buffer in ('mean', 'std')
    }
    assert set(result.missing_keys) == expected_missing and len(expected_missing) == 36
    assert result.unexpected_keys == []
    assert len(equalizers_of(equalized)) == 18 and equalizers_of(baseline) == {}
    count = sum(p.numel() for p in baseline.parameters())
    assert sum(p.numel() for p in equalized.parameters()) == count

    x = torch.randn(2, 3, 64, 64)
    outputs = []
    for model in (baseline, equalized):
        model.train()
        torch.manual_seed(7)  # same dropout masks in both models
        out = model(x, aux=True)
        loss = sum(v.square().mean() for v in out.values())
        loss.backward()
        outputs.append(out)
    assert set(outputs[0]) == set(outputs[1]) and len(outputs[0]) == 9
    for key in outputs[0]:
        assert torch.equal(outputs[0][key], outputs[1][key]), key
    eq_params = dict(equalized.named_parameters())
    assert set(eq_params) == {name for name, _ in baseline.named_parameters()}
    for name, param in baseline.named_parameters():
        assert param.grad is not None and eq_params[name].grad is not None, name
        assert torch.equal(param.grad, eq_params[name].grad), name
    assert any(float(p.grad.abs().max()) > 0 for p in baseline.parameters())
    eq_state = equalized.state_dict()
    for key, value in baseline.state_dict().items():  # BN running statistics too
        assert torch.equal(value, eq_state[key]), key


def test_recording_freezes_population_statistics() -> None:
    eq = ScaleEqualizer(depth=0)
    batches = [_post_relu_like((n, 3, 4, 5), seed=10 + n) for n in (1, 2, 3)]
    eq.start_recording()
    for b in batches:
        assert torch.equal(eq(b), b)  # identity while recording the first pass
    moments = eq.finish_recording()
    data = torch.cat(batches).double()
    assert eq.moments is None
    assert float(moments.count) == data.numel()
    assert float(eq.mean) == pytest.approx(float(data.mean()), rel=1e-6)
    assert float(eq.std) == pytest.approx(float(data.std(correction=0)), rel=1e-6)


def test_recording_errors() -> None:
    with pytest.raises(ValueError, match='saw no input'):
        ScaleEqualizer().finish_recording()
    eq = ScaleEqualizer()
    eq.start_recording()
    with pytest.raises(ValueError, match='saw no input'):
        eq.finish_recording()
    eq.start_recording()
    eq(torch.full((2, 3, 4, 4), 0.25))
    with pytest.raises(ValueError, match='dead'):
        eq.finish_recording()
    assert float(eq.mean) == 0.0 and float(eq.std) == 1.0  # left at identity


def test_per_channel_dead_channel_is_clamped() -> None:
    eq = ScaleEqualizer(3)
    x = _post_relu_like((2, 3, 4, 4), seed=11)
    x[:, 1] = 5.0  # constant channel
    eq.start_recording()
    eq(x)
    eq.finish_recording()
    assert float(eq.std[1]) == pytest.approx(1e-6 * (1 + 5.0), rel=1e-6)
    assert float(eq.mean[1]) == 5.0
    assert float(eq.std[0]) > 0.3 and float(eq.std[2]) > 0.3


# --------------------------------------------------------------------------------------------
# Check 2: RunningMoments
# --------------------------------------------------------------------------------------------


def _merged(parts: list[torch.Tensor], per_channel: bool = False) -> RunningMoments:
    total = RunningMoments.empty(parts[0].shape[1] if per_channel else None)
    for part in parts:
        total = total.merge(RunningMoments.of(part, per_channel))
    return total


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs() / b.abs()).max())


PARTITIONS = {
    'one_shot': [37],
    'size_one': [1] * 37,
    'uneven': [1, 2, 3, 5, 8, 13, 5],
    'big_then_one': [36, 1],
    'one_then_big': [1, 36],
}


@pytest.mark.parametrize('offset', [0.4, 1e4], ids=['relu_like', 'mean_over_std_1e4'])
@pytest.mark.parametrize('partition', list(PARTITIONS), ids=list(PARTITIONS))
def test_moments_match_one_shot_float64(partition: str, offset: float) -> None:
    gen = torch.Generator().manual_seed(20)
    data = offset + torch.randn(37, 2, 3, 5, generator=gen, dtype=F64)  # |mu|/sigma = offset
    parts = list(torch.split(data, PARTITIONS[partition]))
    moments = _merged(parts)
    assert float(moments.count) == data.numel()
    assert _relative(moments.mean, data.mean()) <= 1e-10
    assert _relative(moments.std, data.std(correction=0)) <= 1e-10


def test_moments_float32_input_are_accumulated_in_float64() -> None:
    data = 1e4 + torch.randn(16, 2, 8, 8, generator=torch.Generator().manual_seed(21))
    moments = _merged(list(torch.split(data, [1, 5, 3, 7])))
    assert moments.mean.dtype == F64 and moments.m2.dtype == F64
    assert _relative(moments.mean, data.double().mean()) <= 1e-10
    assert _relative(moments.std, data.double().std(correction=0)) <= 1e-10


def test_moments_merge_order_does_not_matter() -> None:
    data = 1e4 + torch.randn(12, 3, 4, 4, generator=torch.Generator().manual_seed(22), dtype=F64)
    a, b, c, d = (RunningMoments.of(p) for p in torch.split(data, [1, 4, 2, 5]))
    tree = a.merge(b).merge(c.merge(d))
    chain = d.merge(c).merge(b).merge(a)
    empty = RunningMoments.empty()
    with_empty = empty.merge(a.merge(b).merge(c).merge(d)).merge(empty)
    for m in (tree, chain, with_empty):
        assert float(m.count) == data.numel()
        assert _relative(m.mean, data.mean()) <= 1e-10
        assert _relative(m.std, data.std(correction=0)) <= 1e-10


@pytest.mark.parametrize(
    'sizes', [[6], [1, 1, 1, 1, 1, 1], [1, 3, 2]], ids=['one', 'ones', 'uneven']
)
def test_per_channel_moments(sizes: list[int]) -> None:
    gen = torch.Generator().manual_seed(23)
    offsets = torch.tensor([0.0, 1e4, -2.0, 0.4], dtype=F64).view(1, 4, 1, 1)
    scales = torch.tensor([1.0, 1.0, 0.01, 3.0], dtype=F64).view(1, 4, 1, 1)
    data = offsets + scales * torch.randn(6, 4, 5, 7, generator=gen, dtype=F64)
    moments = _merged(list(torch.split(data, sizes)), per_channel=True)
    flat = data.transpose(0, 1).reshape(4, -1)
    assert moments.count.tolist() == [6 * 5 * 7] * 4
    assert float((moments.mean - flat.mean(1)).abs().max()) <= 1e-10 * (1 + 1e4)
    assert _relative(moments.mean[1:], flat.mean(1)[1:]) <= 1e-10
    assert _relative(moments.std, flat.std(1, correction=0)) <= 1e-10


def test_all_reduce_is_identity_without_process_group() -> None:
    assert not dist.is_initialized()
    moments = RunningMoments.of(torch.randn(3, 4))
    assert moments.all_reduce() is moments


# Two gloo ranks, each with different (and differently sized) data.
WORLD = 2
GLOO_DEADLINE_S = 90.0


def _rank_data(rank: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(100 + rank)
    offset = torch.tensor([5.0, -3.0, 1e4], dtype=F64).view(1, 3, 1, 1)
    return offset + (1.0 + rank) * torch.randn(2 + 3 * rank, 3, 4, 5, generator=gen, dtype=F64)


def _gloo_rank(rank: int, port: int, queue: mp.SimpleQueue) -> None:
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=WORLD,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        data = _rank_data(rank)
        local = RunningMoments.of(data[:1]).merge(RunningMoments.of(data[1:]))
        scalar = local.all_reduce()
        per_channel = RunningMoments.of(data, per_channel=True).all_reduce()
        eq = ScaleEqualizer(depth=0).double()
        eq.start_recording()
        eq(data)
        eq.finish_recording()  # all-reduces inside
        queue.put(
            {
                'rank': rank,
                'scalar': [float(scalar.count), float(scalar.mean), float(scalar.m2)],
                'count': per_channel.count.tolist(),
                'mean': per_channel.mean.tolist(),
                'm2': per_channel.m2.tolist(),
                'eq': [float(eq.mean), float(eq.std)],
            }
        )
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(not dist.is_available(), reason='torch.distributed is not available')
def test_all_reduce_across_two_gloo_ranks_equals_single_process_merge() -> None:
    queue = mp.get_context('spawn').SimpleQueue()
    context = mp.spawn(_gloo_rank, args=(_free_port(), queue), nprocs=WORLD, join=False)
    deadline = time.monotonic() + GLOO_DEADLINE_S
    try:
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                pytest.fail(f'gloo ranks did not finish within {GLOO_DEADLINE_S:.0f} s')
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()
                process.join(5)
    results = sorted((queue.get() for _ in range(WORLD)), key=lambda r: r['rank'])
    assert [r['rank'] for r in results] == [0, 1]

    everything = [_rank_data(rank) for rank in range(WORLD)]
    data = torch.cat(everything)
    single = _merged(everything)
    single_pc = _merged(everything, per_channel=True)
    flat = data.transpose(0, 1).reshape(3, -1)
    for r in results:
        count, mean, m2 = r['scalar']
        assert count == data.numel() == float(single.count)
        assert mean == pytest.approx(float(single.mean), rel=1e-12)
        assert m2 == pytest.approx(float(single.m2), rel=1e-12)
        assert mean == pytest.approx(float(data.mean()), rel=1e-10)
        assert r['count'] == single_pc.count.tolist() == [flat.shape[1]] * 3
        assert r['mean'] == pytest.approx(single_pc.mean.tolist(), rel=1e-12)
        assert r['m2'] == pytest.approx(single_pc.m2.tolist(), rel=1e-12)
        assert r['eq'] == pytest.approx(
            [float(data.mean()), float(data.std(correction=0))], rel=1e-10
        )
    assert results[0] == {**results[1], 'rank': 0}  # every rank froze the same constants


# --------------------------------------------------------------------------------------------
# Check 5: theory regression (pure torch)
# --------------------------------------------------------------------------------------------


def _interpolation_matrix(n: int, factor: int, align_corners: bool = False) -> torch.Tensor:
    """The (n * factor, n) float64 weights of 1-D linear upsampling (rows sum to 1)."""
    eye = torch.eye(n, dtype=F64).unsqueeze(0)  # n channels holding the unit impulses
    up = F.interpolate(eye, scale_factor=factor, mode='linear', align_corners=align_corners)
    return up[0].T


def _kept_fraction(n: int, factor: int, interior: bool) -> float:
    """Exact E[Var out] / Var in for i.i.d. input: mean over outputs of sum_k w_k^2 (2-D)."""
    rows = _interpolation_matrix(n, factor).square().sum(1)
    if interior:
        rows = rows[factor:-factor]
    return float(rows.mean()) ** 2  # separable: the 2-D weights are products of 1-D weights


def test_bilinear_is_separable_linear_interpolation() -> None:
    x = torch.randn(1, 1, 5, 7, dtype=F64, generator=torch.Generator().manual_seed(30))
    for factor in (2, 4, 8):
        up = F.interpolate(x, scale_factor=factor, mode='bilinear', align_corners=False)
        a_h, a_w = _interpolation_matrix(5, factor), _interpolation_matrix(7, factor)
        assert torch.allclose(a_h.sum(1), torch.ones(5 * factor, dtype=F64), atol=1e-15)
        assert float((a_h @ x[0, 0] @ a_w.T - up[0, 0]).abs().max()) <= 1e-14


@pytest.mark.parametrize(
    ('factor', 'interior', 'edge32', 'edge128'),
    [
        (2, 25 / 64, 0.4054, 0.3943),
        (4, (21 / 32) ** 2, 0.4449, 0.4342),
        (8, (85 / 128) ** 2, 0.4550, 0.4445),
    ],
)
def test_exact_kept_fractions(factor: int, interior: float, edge32: float, edge128: float) -> None:
    # Interior: 2-D (sum of squared 1-D weights)^2; x2 = (5/8)^2 = 0.390625, x4 0.4307, x8 0.4410.
    assert _kept_fraction(64, factor, interior=True) == pytest.approx(interior, abs=1e-15)
    # Whole finite maps (edge rows copy pixels): reference values for 32- and 128-pixel maps.
    assert _kept_fraction(32, factor, interior=False) == pytest.approx(edge32, abs=5e-5)
    assert _kept_fraction(128, factor, interior=False) == pytest.approx(edge128, abs=5e-5)


# Sizes keep the estimator's relative standard error near 0.1-0.2 % (seeded), well inside 1 %.
IID_SHAPES = {2: (64, 1, 128, 128), 4: (128, 1, 64, 64), 8: (256, 1, 32, 32)}


@pytest.mark.parametrize('factor', [2, 4, 8])
def test_iid_variance_ratio_matches_exact_factor(factor: int) -> None:
    shape = IID_SHAPES[factor]
    x = torch.randn(shape, generator=torch.Generator().manual_seed(31 + factor))
    y = F.interpolate(x, scale_factor=factor, mode='bilinear', align_corners=False)
    inner = y[..., factor:-factor, factor:-factor]
    measured = float(inner.double().var(correction=0) / x.double().var(correction=0))
    predicted = _kept_fraction(shape[-1], factor, interior=True)
    assert measured == pytest.approx(predicted, rel=0.01)
    whole = float(y.double().var(correction=0) / x.double().var(correction=0))
    assert whole == pytest.approx(_kept_fraction(shape[-1], factor, interior=False), rel=0.01)


@pytest.mark.parametrize('factor', [2, 4, 8])
def test_bilinear_upsampling_preserves_the_mean(factor: int) -> None:
    gen = torch.Generator().manual_seed(40 + factor)
    x = 0.3989 + 0.5838 * torch.randn(8, 2, 64, 64, generator=gen)  # official script's mean
    y = F.interpolate(x, scale_factor=factor, mode='bilinear', align_corners=False)
    mean_in, mean_out = float(x.double().mean()), float(y.double().mean())
    assert abs(mean_out - mean_in) / abs(mean_in) <= 1e-6
    assert float(y.double().var()) < 0.5 * float(x.double().var())  # ... but not the variance


def _ar1_field(shape: tuple[int, ...], rho: float, gen: torch.Generator) -> torch.Tensor:
    """Separable stationary AR(1) field: correlation rho^(|dy| + |dx|), unit variance."""
    field = torch.randn(shape, generator=gen, dtype=F64)
    innovation = (1.0 - rho**2) ** 0.5
    for dim in (-1, -2):
        field = field.movedim(dim, 0)
        out = torch.empty_like(field)
        out[0] = field[0]
        for i in range(1, field.shape[0]):
            out[i] = rho * out[i - 1] + innovation * field[i]
        field = out.movedim(0, dim)
    return field


@pytest.mark.parametrize('rho', [0.3, 0.6])
def test_correlated_variance_ratio_matches_ar1_formula(rho: float) -> None:
    x = _ar1_field((48, 1, 128, 128), rho, torch.Generator().manual_seed(50))
    lag1 = float((x[..., 1:] * x[..., :-1]).mean() / x.var(correction=0))
    assert lag1 == pytest.approx(rho, abs=0.01)
    y = F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)[..., 2:-2, 2:-2]
    measured = float(y.var(correction=0) / x.var(correction=0))
    assert measured == pytest.approx(((5 + 3 * rho) / 8) ** 2, rel=0.01)
    assert measured > 25 / 64 * 1.2  # correlation keeps clearly more than the i.i.d. 25/64


@pytest.mark.parametrize('size', [(29, 41), (6, 8)], ids=['up', 'down'])
@pytest.mark.parametrize('align_corners', [False, True])
def test_resize_commutes_with_per_channel_affine(align_corners: bool, size: tuple) -> None:
    gen = torch.Generator().manual_seed(60)
    x = 0.4 + 0.6 * torch.randn(2, 3, 13, 17, generator=gen)
    mu = (0.8 * torch.rand(3, generator=gen)).view(1, 3, 1, 1)
    sigma = (0.3 + 0.5 * torch.rand(3, generator=gen)).view(1, 3, 1, 1)

    def resize(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, size=size, mode='bilinear', align_corners=align_corners)

    before = resize((x - mu) / sigma)
    after = (resize(x) - mu) / sigma
    assert float((before - after).abs().max()) <= 1e-6 * max(1.0, float(after.abs().max()))
    squared = resize(x.square()) - resize(x).square()  # a non-affine map does not commute
    assert float(squared.abs().max()) > 1e-2


def test_grid_sample_zero_padding_commutes_with_scale_not_shift() -> None:
    gen = torch.Generator().manual_seed(70)
    x = 0.4 + 0.6 * torch.randn(2, 3, 9, 11, generator=gen)
    grid = 2.8 * torch.rand(2, 15, 16, 2, generator=gen) - 1.4  # many out-of-range samples

    def warp(t: torch.Tensor) -> torch.Tensor:  # as in segnode.model.flow_align.warp
        return F.grid_sample(t, grid, mode='bilinear', padding_mode='zeros', align_corners=True)

    scale, shift = 1.7, 0.4
    assert float((warp(scale * x) - scale * warp(x)).abs().max()) <= 1e-6
    shifted = warp(x + shift) - (warp(x) + shift)
    coverage = warp(torch.ones_like(x))  # sum of the in-range weights, < 1 near/outside borders
    inside = (grid.abs() <= 1).all(-1).unsqueeze(1).expand_as(shifted)
    assert bool(inside.any()) and bool((~inside).any())
    assert float(shifted[inside].abs().max()) <= 1e-6  # interior samples: the shift commutes
    assert float(shifted[~inside].abs().max()) > 0.5 * shift  # border samples: it does not
    assert float((shifted - shift * (coverage - 1)).abs().max()) <= 1e-6  # error = -shift(1-sum w)
