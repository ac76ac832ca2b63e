"""MFARANet structure: shapes per stage, counts, gradients, RAM grid, golden logits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from segnode.model import build_mfaranet
from segnode.model.complexity import conv_macs, count_parameters
from segnode.model.flow_align import sampling_grid, warp
from segnode.model.scale_equalizer import ScaleEqualizer

GOLDEN = Path(__file__).parents[1] / 'golden' / 'mfaranet_logits.json'


def test_parameter_counts_match_the_official_network() -> None:
    # measured on the official class (docs/model.md, "Measured")
    assert count_parameters(build_mfaranet(num_classes=19)) == 12_996_748
    assert count_parameters(build_mfaranet(num_classes=11)) == 12_990_572
    with_heads = build_mfaranet(num_classes=19, boundary_heads=True)
    assert count_parameters(with_heads, exclude=()) == 12_997_264
    assert count_parameters(build_mfaranet(equalizers=False)) == 12_996_748


def test_backbone_parameter_split() -> None:
    backbone = build_mfaranet().backbone
    counts = [
        sum(p.numel() for p in getattr(backbone, f'layer{i}').parameters()) for i in range(5)
    ]
    assert counts == [112_832, 193_152, 525_568, 2_099_712, 8_393_728]


@pytest.mark.parametrize(
    ('size', 'gmac'),
    [((1024, 2048), 218.15), ((1024, 1024), 109.07), ((512, 1024), 54.54), ((768, 1536), 122.71)],
)
def test_macs_match_the_reference_table(size: tuple[int, int], gmac: float) -> None:
    assert conv_macs(build_mfaranet(num_classes=19), *size) / 1e9 == pytest.approx(gmac, abs=0.01)


def test_pruned_subgraph_macs() -> None:
    assert conv_macs(build_mfaranet(pruned=True), 1024, 1024) / 1e9 == pytest.approx(
        87.33, abs=0.01
    )


def test_eighteen_equalizers_at_four_depths() -> None:
    eqs = [m for m in build_mfaranet().modules() if isinstance(m, ScaleEqualizer)]
    assert len(eqs) == 18
    assert sorted({e.depth for e in eqs}) == [0, 1, 2, 3]
    assert not any(
        isinstance(m, ScaleEqualizer) for m in build_mfaranet(equalizers=False).modules()
    )


def test_stage_shapes_and_output_stride() -> None:
    model = build_mfaranet(num_classes=7).eval()
    x = torch.randn(2, 3, 256, 512)
    with torch.no_grad():
        c = model.backbone(x)
        assert [t.shape[1:] for t in c] == [
            (64, 64, 128), (128, 32, 64), (256, 16, 32), (512, 8, 16)
        ]  # fmt: skip
        f = model.mfam(c)
        assert [t.shape[1:] for t in f] == [
            (128, 64, 128), (128, 32, 64), (128, 16, 32), (128, 8, 16)
        ]  # fmt: skip
        aligned = model.ram(f)
        assert all(t.shape == (2, 128, 64, 128) for t in aligned)
        out = model(x)
    assert out.shape == (2, 7, 256, 512)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize('size', [(97, 131), (33, 45), (360, 480)])
def test_logits_at_input_resolution_for_odd_sizes(size: tuple[int, int]) -> None:
    model = build_mfaranet(num_classes=11).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 11, *size)


def test_too_small_input_is_refused_with_the_minimum() -> None:
    with pytest.raises(ValueError, match='at least 32x32'):
        build_mfaranet().eval()(torch.randn(1, 3, 31, 64))


def test_every_parameter_gets_a_gradient_in_training() -> None:
    model = build_mfaranet(num_classes=5, boundary_heads=True).train()
    out = model(torch.randn(2, 3, 64, 64), aux=True)
    assert sorted(out) == sorted(
        ['out'] + [f'score{i}' for i in range(1, 5)] + [f'boundary{i}' for i in range(1, 5)]
    )
    assert all(v.shape[-2:] == (64, 64) for v in out.values())
    sum(v.float().square().mean() for v in out.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_aux_outputs_need_boundary_heads() -> None:
    with pytest.raises(RuntimeError, match='boundary_heads=True'):
        build_mfaranet().train()(torch.randn(1, 3, 64, 64), aux=True)


def test_pruned_output_is_the_aligned_eighth_branch() -> None:
    torch.manual_seed(0)
    full = build_mfaranet(num_classes=5).eval()
    pruned = build_mfaranet(num_classes=5, pruned=True).eval()
    pruned.load_state_dict(full.state_dict())
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        feats = full.ram(full.mfam(full.backbone(x)))
        branch = full.score_heads[1](full.equalizers[1](feats[1]))
        expected = F.interpolate(branch, size=(96, 128), mode='bilinear', align_corners=True)
        torch.testing.assert_close(pruned(x), expected, rtol=0, atol=1e-5)


def test_sampling_grid_equals_the_linspace_grid() -> None:
    n, h, w = 2, 17, 24
    flow = torch.randn(n, 2, h, w) * 3
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing='ij')
    reference = torch.stack((xs, ys), -1).expand(n, h, w, 2) + flow.permute(
        0, 2, 3, 1
    ) / torch.tensor([w, h])
    assert (sampling_grid(flow) - reference).abs().max() <= 1.8e-7


def test_zero_flow_warp_is_bilinear_upsampling() -> None:
    coarse = torch.randn(1, 8, 9, 13)
    grid = sampling_grid(torch.zeros(1, 2, 17, 25))
    expected = F.interpolate(coarse, size=(17, 25), mode='bilinear', align_corners=True)
    assert (warp(coarse, grid) - expected).abs().max() <= 4e-6


def _golden_input() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(1234)
    model = build_mfaranet(num_classes=5).eval()
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(99))
    return model, x


def test_golden_logits() -> None:
    """Seeded weights and input give the recorded logits (regenerate: SEGNODE_ACCEPT=1)."""
    model, x = _golden_input()
    with torch.no_grad():
        sample = model(x)[0, :, ::8, ::8]
    if os.environ.get('SEGNODE_ACCEPT') == '1':
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps({'shape': list(sample.shape), 'values': sample.tolist()}))
    golden = json.loads(GOLDEN.read_text())
    expected = torch.tensor(golden['values'])
    assert list(sample.shape) == golden['shape']
    torch.testing.assert_close(sample, expected, rtol=1e-4, atol=1e-4)
