"""Folding Scale Equalizers into MFARANet's weights: checks 6-8 of docs/model.md.

The folds are described in docs/model.md, "Folding"; the checks in "Verification checklist".

Single-layer constructions are checked in float64 (1e-10) and float32 (1e-5), both relative
to the output RMS, for stride 1/2, dilation 1/2 and odd H and W; the whole model is checked
in float32 (1e-4 of the logit RMS, argmax agreement up to ties) at odd and even sizes.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn
import torch.nn.functional as F

from segnode.model.equalizer_stats import equalizers_of, measure_equalizers
from segnode.model.fold import (
    count_residual_scales,
    fold_affine_into_conv_bn,
    fold_affine_into_head,
    fold_batchnorm,
    fold_equalizers,
    PaddedConv2d,
    Scale,
    scale_bn_output,
)
from segnode.model.mfaranet import build_mfaranet, MFARANet
from segnode.model.scale_equalizer import ScaleEqualizer

F64, F32 = torch.float64, torch.float32
TOLERANCE = {F64: 1e-10, F32: 1e-5}  # max abs error relative to the output RMS
DTYPES = pytest.mark.parametrize('dtype', [F64, F32], ids=['f64', 'f32'])
ODD = (13, 17)  # odd H and W


def _rms(t: torch.Tensor) -> float:
    return float(t.double().square().mean().sqrt())


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.double() - expected.double()).abs().max()) / _rms(expected)


def _random_bn(channels: int, gen: torch.Generator) -> nn.BatchNorm2d:
    """An eval-mode BN that is far from the identity."""
    bn = nn.BatchNorm2d(channels)
    with torch.no_grad():
        bn.running_mean.copy_(0.5 * torch.randn(channels, generator=gen))
        bn.running_var.copy_(0.5 + 1.5 * torch.rand(channels, generator=gen))
        bn.weight.copy_(0.5 + torch.rand(channels, generator=gen))
        bn.bias.copy_(0.5 * torch.randn(channels, generator=gen))
    return bn.eval()


def _affine(channels: int, per_channel: bool, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Equalizer constants (mean, std) as float64 tensors holding float32 values.

    float32 values because PaddedConv2d stores a per-channel pad value in float32: see
    ``test_float64_fold_keeps_float64_constants`` for what happens otherwise.
    """
    shape = (channels,) if per_channel else ()
    mean = (0.2 + 0.5 * torch.rand(shape, generator=gen)).double()
    std = (0.3 + 0.5 * torch.rand(shape, generator=gen)).double()
    return mean, std


def _bcast(v: torch.Tensor) -> torch.Tensor:
    return v.view(1, -1, 1, 1) if v.dim() else v


def _conv_bn(
    cin: int, cout: int, stride: int, dilation: int, gen: torch.Generator
) -> nn.Sequential:
    conv = nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)
    with torch.no_grad():
        conv.weight.copy_(0.3 * torch.randn(conv.weight.shape, generator=gen))
    return nn.Sequential(conv, _random_bn(cout, gen)).eval()


def _outside_padding_sum(
    weight: torch.Tensor, ms: torch.Tensor, hw: tuple[int, int], stride: int, dilation: int
) -> torch.Tensor:
    """D[o, y, x] = sum over the taps that fall in the zero padding of sum_c W[o,c,i,j] m_c/s_c.

    Computed analytically from the tap positions (the zero-padding fold's ring error), not by
    convolution.
    """
    weight = weight.detach()
    k, pad = weight.shape[-1], dilation
    per_tap = (weight * _bcast(ms.expand(weight.shape[1]))).sum(1)  # (O, k, k)
    outs = [(n + 2 * pad - dilation * (k - 1) - 1) // stride + 1 for n in hw]
    starts = [torch.arange(o) * stride - pad for o in outs]
    d = torch.zeros(weight.shape[0], *outs, dtype=weight.dtype)
    for i in range(k):
        rows = starts[0] + i * dilation
        for j in range(k):
            cols = starts[1] + j * dilation
            outside = ((rows < 0) | (rows >= hw[0]))[:, None] | ((cols < 0) | (cols >= hw[1]))
            d += per_tap[:, i, j, None, None] * outside.to(weight.dtype)
    return d


# --------------------------------------------------------------------------------------------
# Single layers (check 6)
# --------------------------------------------------------------------------------------------


@DTYPES
@pytest.mark.parametrize('per_channel', [False, True], ids=['scalar', 'per_channel'])
@pytest.mark.parametrize('stride', [1, 2])
def test_fold_into_head(stride: int, per_channel: bool, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(10 * stride + per_channel)
    torch.manual_seed(0)
    head = nn.Conv2d(6, 5, 1, stride=stride).to(dtype)
    mean, std = _affine(6, per_channel, gen)
    x = (0.4 + 0.6 * torch.randn(2, 6, *ODD, generator=gen, dtype=F64)).to(dtype)
    with torch.no_grad():
        expected = head((x - _bcast(mean).to(dtype)) / _bcast(std).to(dtype))
        folded = copy.deepcopy(head)
        fold_affine_into_head(folded, mean, std)
        actual = folded(x)
        plain = head(x)
    assert actual.dtype == dtype and actual.shape == expected.shape
    assert _relative_error(actual, expected) <= TOLERANCE[dtype]
    assert _relative_error(plain, expected) > 0.1  # the fold is not a no-op


@DTYPES
@pytest.mark.parametrize('per_channel', [False, True], ids=['scalar', 'per_channel'])
@pytest.mark.parametrize('dilation', [1, 2])
@pytest.mark.parametrize('stride', [1, 2])
def test_fold_into_conv_bn_with_mu_padding_is_exact_everywhere(
    stride: int, dilation: int, per_channel: bool, dtype: torch.dtype
) -> None:
    """Constant-padding fold: conv(BN) of the normalised input at every pixel, ring included."""
    gen = torch.Generator().manual_seed(100 + 10 * stride + 2 * dilation + per_channel)
    block = _conv_bn(5, 6, stride, dilation, gen).to(dtype)
    mean, std = _affine(5, per_channel, gen)
    shift, scale = mean, 1.0 / std
    x = (0.4 + 0.6 * torch.randn(2, 5, *ODD, generator=gen, dtype=F64)).to(dtype)
    with torch.no_grad():
        expected = block((x - _bcast(shift).to(dtype)) * _bcast(scale).to(dtype))
        folded = copy.deepcopy(block)
        fold_affine_into_conv_bn(folded, 0, shift, shift, scale)
        actual = folded(x)
    assert isinstance(folded[0], PaddedConv2d)
    assert actual.shape == expected.shape and actual.dtype == dtype
    error = (actual.double() - expected.double()).abs()
    d = _outside_padding_sum(block[0].weight.double(), shift * scale, ODD, stride, dilation)
    ring = (d != 0).expand_as(error)
    assert bool(ring.any()) and bool((~ring).any())
    assert float(error[ring].max()) <= TOLERANCE[dtype] * _rms(expected)  # the ring ...
    assert float(error.max()) <= TOLERANCE[dtype] * _rms(expected)  # ... and everywhere


@pytest.mark.parametrize('dilation', [1, 2])
@pytest.mark.parametrize('stride', [1, 2])
def test_naive_scalar_fold_is_wrong_on_the_ring_by_minus_d(stride: int, dilation: int) -> None:
    """Zero-padding fold (W*scale, S into the BN): exact inside, -D on the ring."""
    gen = torch.Generator().manual_seed(200 + 10 * stride + dilation)
    block = _conv_bn(5, 6, stride, dilation, gen).double()
    mean, std = torch.tensor(0.4, dtype=F64), torch.tensor(0.58, dtype=F64)  # post-ReLU-like
    x = 0.4 + 0.58 * torch.randn(2, 5, *ODD, generator=gen, dtype=F64)
    with torch.no_grad():
        expected = block((x - mean) / std)
        naive = copy.deepcopy(block)
        fold_affine_into_conv_bn(naive, 0, torch.tensor(0.0), mean, 1.0 / std)  # pad with 0
        actual = naive(x)
    assert isinstance(naive[0], nn.Conv2d)  # zero padding kept: the zero-padding fold
    bn = block[1]
    gain = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double()
    d = _outside_padding_sum(block[0].weight.double(), mean / std, ODD, stride, dilation)
    predicted = -_bcast(gain) * d.unsqueeze(0)  # error after the eval BN: -g * D
    error = actual - expected
    rms = _rms(expected)
    assert float((error - predicted).abs().max()) <= 1e-10 * rms
    ring = (d != 0).unsqueeze(0).expand_as(error)
    assert float(error[~ring].abs().max()) <= 1e-10 * rms  # exact on the interior
    assert float(error[ring].abs().max()) > 0.5 * rms  # wrong on the ring by about the RMS
    out_h, out_w = d.shape[1:]
    width = dilation  # ring width in output pixels at stride 1
    if stride == 1:
        ring_pixels = out_h * out_w - (out_h - 2 * width) * (out_w - 2 * width)
        assert int((d[0] != 0).sum()) == ring_pixels  # 2(H+W)-4 for dilation 1
        if dilation == 1:
            assert ring_pixels == 2 * (ODD[0] + ODD[1]) - 4


@DTYPES
@pytest.mark.parametrize('align_corners', [True, False])
def test_producer_fold_through_relu_and_resize(align_corners: bool, dtype: torch.dtype) -> None:
    """Sum fusion (site c): each 1/s_k into its producer's BN, the shift into the consumer."""
    gen = torch.Generator().manual_seed(300 + align_corners)
    torch.manual_seed(300)
    producer_a = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False), _random_bn(4, gen), nn.ReLU()
    ).eval()
    producer_b = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), _random_bn(4, gen), nn.ReLU())
    consumer = _conv_bn(4, 5, 1, 1, gen)
    models = [m.to(dtype).eval() for m in (producer_a, producer_b, consumer)]
    # Dyadic constants: m = 0.4375/0.5 + 0.375/0.75 = 1.375 is exact in float32 (pad value).
    mean_a, std_a, mean_b, std_b = 0.4375, 0.5, 0.375, 0.75
    xa = torch.randn(2, 3, 7, 9, generator=gen, dtype=F64).to(dtype)  # coarse branch
    xb = torch.randn(2, 3, *ODD, generator=gen, dtype=F64).to(dtype)  # fine branch

    def fused(pa: nn.Module, pb: nn.Module, cons: nn.Module, equalize: bool) -> torch.Tensor:
        a = F.interpolate(pa(xa), size=ODD, mode='bilinear', align_corners=align_corners)
        b = pb(xb)
        if equalize:
            a, b = (a - mean_a) / std_a, (b - mean_b) / std_b
        return cons(a + b)

    with torch.no_grad():
        expected = fused(*models, equalize=True)
        pa, pb, cons = (copy.deepcopy(m) for m in models)
        scale_bn_output(pa[1], torch.tensor(1.0 / std_a, dtype=F64))
        scale_bn_output(pb[1], torch.tensor(1.0 / std_b, dtype=F64))
        shift = torch.tensor(mean_a / std_a + mean_b / std_b, dtype=F64)
        fold_affine_into_conv_bn(cons, 0, shift, shift, torch.tensor(1.0, dtype=F64))
        actual = fused(pa, pb, cons, equalize=False)
        unfolded = fused(*models, equalize=False)
    assert _relative_error(actual, expected) <= TOLERANCE[dtype]
    assert _relative_error(unfolded, expected) > 0.1


@DTYPES
def test_shared_producer_keeps_a_residual_scale(dtype: torch.dtype) -> None:
    """One scale in the producer's BN, an explicit multiply s_a/s_b on its other use."""
    gen = torch.Generator().manual_seed(400)
    torch.manual_seed(400)
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    producer = nn.Sequential(conv, _random_bn(4, gen), nn.ReLU()).to(dtype).eval()
    std_a, std_b = 0.75, 0.5  # use a as is, use b resized; ratio 1.5 is exact in float32
    x = torch.randn(2, 3, *ODD, generator=gen, dtype=F64).to(dtype)

    def uses(p: nn.Module, residual: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        out = p(x)
        return out, residual(F.interpolate(out, size=(6, 8), mode='bilinear', align_corners=True))

    with torch.no_grad():
        a, b = uses(producer, nn.Identity())
        folded = copy.deepcopy(producer)
        scale_bn_output(folded[1], torch.tensor(1.0 / std_a, dtype=F64))
        fa, fb = uses(folded, Scale(torch.tensor(std_a / std_b)))
    assert _relative_error(fa, a / std_a) <= TOLERANCE[dtype]
    assert _relative_error(fb, b / std_b) <= TOLERANCE[dtype]


def test_gelu_blocks_the_scale_but_relu_does_not() -> None:
    x = torch.linspace(-3, 3, 101, dtype=F64)
    assert torch.equal(F.relu(2.5 * x), 2.5 * F.relu(x))  # positively homogeneous
    assert float((F.gelu(2.5 * x) - 2.5 * F.gelu(x)).abs().max()) > 0.1  # not homogeneous


@pytest.mark.parametrize('case', ['pad_scalar', 'pad_per_channel', 'scale'])
def test_float64_fold_keeps_float64_constants(case: str) -> None:
    """A float64 fold must be exact to float64 precision for any constants.

    ``PaddedConv2d`` keeps a scalar pad value as a Python float (exact), but stores a
    per-channel pad value with ``.float()``, and ``Scale`` stores its factor with ``.float()``:
    values such as 0.1 or 1/3 are rounded to float32 (relative 6e-8), so the float64 result is
    off by ~1e-8 of the output RMS on the border ring (constant padding) or everywhere (Scale)
    instead of ~1e-15, and a float64 check of the per-channel constant-padding fold or the
    residual multiply fails.
    """
    gen = torch.Generator().manual_seed(500)
    if case == 'scale':
        factor = torch.tensor(1.0 / 3.0, dtype=F64)
        x = torch.randn(2, 5, *ODD, generator=gen, dtype=F64)
        expected, actual = x * factor, Scale(factor).double()(x)
    else:
        block = _conv_bn(5, 6, 1, 1, gen).double()
        if case == 'pad_scalar':
            shift = torch.tensor(0.1, dtype=F64)
        else:
            shift = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.7], dtype=F64)
        scale = torch.tensor(1 / 0.58, dtype=F64)
        x = 0.4 + 0.58 * torch.randn(2, 5, *ODD, generator=gen, dtype=F64)
        with torch.no_grad():
            expected = block((x - _bcast(shift)) * scale)
            fold_affine_into_conv_bn(block, 0, shift, shift, scale)
            actual = block(x)
        assert isinstance(block[0], PaddedConv2d)
    assert _relative_error(actual, expected) <= 1e-10


# --------------------------------------------------------------------------------------------
# Whole model (check 8)
# --------------------------------------------------------------------------------------------

SIZES = [(64, 96), (65, 97), (75, 101)]


def _randomise_batchnorm(model: nn.Module, seed: int) -> None:
    """Random BN running statistics and affines, so that no BN is the identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, nn.BatchNorm2d):
                c = bn.num_features
                bn.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                bn.running_var.copy_(0.5 + torch.rand(c, generator=gen))
                bn.weight.copy_(0.5 + torch.rand(c, generator=gen))
                bn.bias.copy_(0.2 * torch.randn(c, generator=gen))


def _batches(count: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, 64, 64, generator=gen) for _ in range(count)]


def _measured(per_channel: bool = False, batches: int = 2) -> MFARANet:
    torch.manual_seed(0)
    model = build_mfaranet(num_classes=11, per_channel_equalizers=per_channel)
    _randomise_batchnorm(model, seed=1)
    measure_equalizers(model, _batches(batches, seed=2))
    return model


def _logits(model: nn.Module, size: tuple[int, int], seed: int = 3) -> torch.Tensor:
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))
    model.eval()
    with torch.no_grad():
        return model(x)


def _assert_same_logits(
    model: nn.Module, folded: nn.Module, size: tuple[int, int]
) -> dict[str, float]:
    expected, actual = _logits(model, size), _logits(folded, size)
    assert actual.shape == expected.shape == (1, 11, *size)
    max_abs = float((actual - expected).abs().max())
    rms = _rms(expected)
    assert max_abs <= 1e-4 * rms, f'{size}: max abs {max_abs:.3g}, RMS {rms:.3g}'
    disagree = expected.argmax(1) != actual.argmax(1)
    top2 = expected.topk(2, dim=1).values
    gap = (top2[:, 0] - top2[:, 1])[disagree]
    assert bool((gap <= 2 * max_abs).all()), 'argmax disagreement beyond ties'
    return {'relative': max_abs / rms, 'agreement': 1.0 - float(disagree.float().mean())}


@pytest.fixture(scope='module')
def scalar_fold() -> dict[str, Any]:
    model = _measured()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_equalizers(model)
    return {'model': model, 'folded': folded, 'before': before, 'training': model.training}


@pytest.mark.parametrize('size', SIZES, ids=[f'{h}x{w}' for h, w in SIZES])
def test_whole_model_fold_matches(scalar_fold: dict[str, Any], size: tuple[int, int]) -> None:
    _assert_same_logits(scalar_fold['model'], scalar_fold['folded'], size)


def test_measured_constants_matter(scalar_fold: dict[str, Any]) -> None:
    identity = copy.deepcopy(scalar_fold['model'])
    for eq in equalizers_of(identity).values():
        eq.mean.zero_()
        eq.std.fill_(1.0)
    measured, plain = _logits(scalar_fold['model'], SIZES[0]), _logits(identity, SIZES[0])
    assert _relative_error(plain, measured) > 0.1  # so the fold comparison is not vacuous


def test_folded_structure(scalar_fold: dict[str, Any]) -> None:
    folded = scalar_fold['folded']
    assert equalizers_of(folded) == {}
    assert not any(isinstance(m, ScaleEqualizer) for m in folded.modules())
    assert count_residual_scales(folded) == 6
    assert sum(isinstance(m, PaddedConv2d) for m in folded.modules()) == 12  # 8 CBR3 + 4 attention
    assert not folded.training and folded.folded
    baseline = build_mfaranet(num_classes=11, equalizers=False)
    count = sum(p.numel() for p in baseline.parameters())
    assert sum(p.numel() for p in folded.parameters()) == count
    assert sum(p.numel() for p in scalar_fold['model'].parameters()) == count


def test_fold_leaves_the_input_model_unchanged(scalar_fold: dict[str, Any]) -> None:
    model, before = scalar_fold['model'], scalar_fold['before']
    assert scalar_fold['training']  # the input model's mode was not switched to eval
    state = model.state_dict()
    assert set(state) == set(before)
    for key, value in before.items():
        assert torch.equal(state[key], value), key
    assert len(equalizers_of(model)) == 18 and not model.folded
    assert not any(isinstance(m, (PaddedConv2d, Scale)) for m in model.modules())


def test_identity_fold_is_bitwise_a_no_op() -> None:
    torch.manual_seed(0)
    model = build_mfaranet(num_classes=11)
    _randomise_batchnorm(model, seed=1)
    folded = fold_equalizers(model)
    assert equalizers_of(folded) == {}
    assert count_residual_scales(folded) == 0
    assert not any(isinstance(m, PaddedConv2d) for m in folded.modules())
    folded_state = folded.state_dict()
    for key, value in model.state_dict().items():
        if 'equalizers' not in key:
            assert torch.equal(folded_state[key], value), key
    assert torch.equal(_logits(folded, SIZES[1]), _logits(model, SIZES[1]))


def test_per_channel_fold_matches() -> None:
    # 4 batches measured: with 2, one d4_down channel (2x2 maps at stride 32) gets a std of
    # 4e-4, and its 1/std = 2300 amplifies the float32 rounding to ~1e-4 of the logit RMS.
    model = _measured(per_channel=True, batches=4)
    for eq in equalizers_of(model).values():
        assert eq.mean.shape == eq.std.shape == (128,)
    folded = fold_equalizers(model)
    assert equalizers_of(folded) == {}
    assert count_residual_scales(folded) == 6
    assert all(m.factor.shape == (128,) for m in folded.modules() if isinstance(m, Scale))
    _assert_same_logits(model, folded, SIZES[1])


def test_fold_batchnorm_after_fold_equalizers(scalar_fold: dict[str, Any]) -> None:
    folded = scalar_fold['folded']
    fused = fold_batchnorm(folded)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())  # not in place
    assert sum(isinstance(m, PaddedConv2d) for m in fused.modules()) == 12
    _assert_same_logits(scalar_fold['model'], fused, SIZES[2])


def test_pruned_variant_folds_exactly(scalar_fold: dict[str, Any]) -> None:
    pruned = build_mfaranet(num_classes=11, pruned=True)
    pruned.load_state_dict(scalar_fold['model'].state_dict())  # strict: same keys
    folded = fold_equalizers(pruned)
    assert equalizers_of(folded) == {}
    _assert_same_logits(pruned, folded, SIZES[1])
    full = _logits(scalar_fold['model'], SIZES[1])
    assert _relative_error(_logits(pruned, SIZES[1]), full) > 0.01  # really the pruned path
