"""Tests of the independent official-MFARANet reference (test/reference/official_mfaranet.py).

These check the reference itself against the numbers and layout of the official class
(docs/model.md: "Architecture", "Measured", "Official checkpoints"), so that tests of the
checkpoint importer and of segnode's model can trust it.

Import it from any test as ``from reference import official_mfaranet`` (or
``from reference.official_mfaranet import OfficialMFARANet``): pytest's default ``prepend``
import mode puts ``test/`` on ``sys.path`` (``test/conftest.py`` and the package
``test/reference/``).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from reference import official_mfaranet as ref
import torch
from torch import nn
import torch.nn.functional as F


def _resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode='bilinear', align_corners=True)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ref.OfficialMFARANet]:
    path = tmp_path_factory.mktemp('ckpt') / 'official.pth'
    model = ref.make_official_checkpoint(path, num_classes=19, seed=0)
    return path, model


@pytest.fixture(scope='module')
def image() -> torch.Tensor:
    return torch.randn(1, 3, 128, 256, generator=torch.Generator().manual_seed(1))


# ----------------------------------------------------------------------------------------
# Parameter counts and state_dict layout (docs/model.md, "Measured", "Official checkpoints")


def test_parameter_counts() -> None:
    model19 = ref.OfficialMFARANet(num_classes=19)
    assert ref.count_params(model19) == ref.PARAMS_19 == 12_996_748
    assert ref.count_params(model19, include_boundary=True) == 12_997_264
    assert ref.PARAMS_19_WITH_BOUNDARY == 12_997_264
    assert ref.count_params(ref.OfficialMFARANet(num_classes=19, with_boundary=False)) == (
        12_996_748
    )
    model11 = ref.OfficialMFARANet(num_classes=11, with_boundary=False)
    assert ref.count_params(model11) == ref.PARAMS_11 == 12_990_572


def test_parameter_breakdown() -> None:
    model = ref.OfficialMFARANet(num_classes=19)

    def n(prefix: str) -> int:
        return sum(p.numel() for k, p in model.named_parameters() if k.startswith(prefix))

    assert [n(f'layer{i}.') for i in range(5)] == [112_832, 193_152, 525_568, 2_099_712, 8_393_728]
    assert sum(n(f'layer{i}.') for i in range(5)) == 11_324_992
    assert n('channel_changes.') == 123_904
    assert n('feature_fuses_up.') == 443_136
    assert n('feature_fuses_down.') == 443_136
    assert n('stage_fuses.') == 295_424
    assert n('stages_offset.') == 3 * 18_688
    assert n('multi_loss_head.') == 4 * 2_451
    assert n('HMSA_attentions.') == 4 * 75_072
    assert n('boundary_heads.') == 4 * 129


def test_state_dict_entries() -> None:
    sd = ref.OfficialMFARANet(num_classes=19).state_dict()
    assert len(sd) == ref.STATE_DICT_ENTRIES_19 == 263
    assert sum(k.endswith('num_batches_tracked') for k in sd) == ref.NUM_BATCHES_TRACKED == 39
    assert sum(k.startswith('boundary_heads.') for k in sd) == 8
    assert len(ref.OfficialMFARANet(num_classes=19, with_boundary=False).state_dict()) == 255


def test_state_dict_keys_and_shapes() -> None:
    sd = ref.OfficialMFARANet(num_classes=19).state_dict()
    expected = {
        'layer0.0.0.weight': (64, 3, 3, 3),
        'layer0.0.1.running_var': (64,),
        'layer0.0.3.weight': (64, 64, 3, 3),
        'layer0.0.4.weight': (64,),
        'layer0.0.6.weight': (128, 64, 3, 3),
        'layer0.1.running_mean': (128,),
        'layer1.0.downsample.0.weight': (64, 128, 1, 1),
        'layer1.0.downsample.1.weight': (64,),
        'layer1.1.conv2.weight': (64, 64, 3, 3),
        'layer2.0.downsample.0.weight': (128, 64, 1, 1),
        'layer3.0.downsample.0.weight': (256, 128, 1, 1),
        'layer4.0.downsample.0.weight': (512, 256, 1, 1),
        'layer4.1.bn2.bias': (512,),
        'channel_changes.0.0.weight': (128, 64, 1, 1),
        'channel_changes.3.0.weight': (128, 512, 1, 1),
        'channel_changes.3.1.weight': (128,),
        'feature_fuses_up.2.0.weight': (128, 128, 3, 3),
        'feature_fuses_down.0.1.running_var': (128,),
        'stage_fuses.1.0.weight': (128, 128, 3, 3),
        'multi_loss_head.3.0.weight': (19, 128, 1, 1),
        'multi_loss_head.3.0.bias': (19,),
        'stages_offset.2.channel_change1.weight': (64, 128, 1, 1),
        'stages_offset.2.channel_change2.weight': (64, 128, 1, 1),
        'stages_offset.2.offset_map.weight': (2, 128, 3, 3),
        'HMSA_attentions.0.0.weight': (64, 128, 3, 3),
        'HMSA_attentions.0.1.running_mean': (64,),
        'HMSA_attentions.0.4.weight': (19, 64, 1, 1),
        'boundary_heads.3.0.weight': (1, 128, 1, 1),
        'boundary_heads.3.0.bias': (1,),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    # No biases in RAM, none on the attention's last conv, none in the backbone.
    for key in (
        'stages_offset.0.offset_map.bias',
        'HMSA_attentions.0.4.bias',
        'layer0.0.0.bias',
        'channel_changes.0.0.bias',
    ):
        assert key not in sd
    assert 'layer0.0.2.weight' not in sd and 'layer0.0.5.weight' not in sd
    tops = {k.split('.')[0] for k in sd}
    assert tops == {
        'layer0',
        'layer1',
        'layer2',
        'layer3',
        'layer4',
        'channel_changes',
        'feature_fuses_up',
        'feature_fuses_down',
        'stage_fuses',
        'multi_loss_head',
        'stages_offset',
        'HMSA_attentions',
        'boundary_heads',
    }


def test_dilation_only_on_conv2() -> None:
    model = ref.OfficialMFARANet()
    for name, dil in (('layer1', 1), ('layer2', 1), ('layer3', 2), ('layer4', 4)):
        layer = getattr(model, name)
        for block in layer:
            assert block.conv2.dilation == (dil, dil) and block.conv2.padding == (dil, dil)
            assert block.conv1.dilation == (1, 1)
        stride = 1 if name == 'layer1' else 2
        assert layer[0].conv1.stride == (stride, stride)
        assert layer[0].downsample[0].stride == (stride, stride)
    attention = model.HMSA_attentions[0]
    assert isinstance(attention[3], nn.Dropout) and attention[3].p == 0.5
    assert isinstance(attention[5], nn.Sigmoid)


# ----------------------------------------------------------------------------------------
# Forward pass


@pytest.mark.parametrize('size', [(64, 128), (97, 131)])
def test_output_shape(size: tuple[int, int]) -> None:
    model = ref.OfficialMFARANet(num_classes=19).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 19, *size)
    assert torch.isfinite(out).all()


def test_feature_strides(
    checkpoint: tuple[Path, ref.OfficialMFARANet], image: torch.Tensor
) -> None:
    model = checkpoint[1]
    with torch.no_grad():
        out = model.forward_features(image)
    sizes = [(32, 64), (16, 32), (8, 16), (4, 8)]
    for c, size, stage in zip((64, 128, 256, 512), sizes, out['stages']):
        assert stage.shape == (1, c, *size)
    for size, feat in zip(sizes, out['feats']):
        assert feat.shape == (1, 128, *size)
    for size, flow, grid in zip(sizes[:3], out['flows'], out['grids']):
        assert flow.shape == (1, 2, *size)
        assert grid.shape == (1, *size, 2)
    for aligned in out['aligned']:
        assert aligned.shape == (1, 128, 32, 64)
    for score, attention in zip(out['scores'], out['attentions']):
        assert score.shape == attention.shape == (1, 19, 32, 64)
        assert ((attention > 0) & (attention < 1)).all()
    fused = sum(s * a for s, a in zip(out['scores'], out['attentions']))
    torch.testing.assert_close(out['fused'], fused, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out['logits'], _resize(out['fused'], image), rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(model(image), out['logits'], rtol=0, atol=0)


def test_official_grid_normalisation() -> None:
    fine = torch.zeros(2, 5, 6, 9)
    grid0 = ref.official_warp_grid(torch.zeros(2, 2, 6, 9), fine)
    assert grid0.shape == (2, 6, 9, 2)
    torch.testing.assert_close(grid0[0, 0, :, 0], torch.linspace(-1, 1, 9), rtol=0, atol=0)
    torch.testing.assert_close(grid0[1, :, 4, 1], torch.linspace(-1, 1, 6), rtol=0, atol=0)
    flow = torch.empty(2, 2, 6, 9)
    flow[:, 0], flow[:, 1] = 3.0, -2.0
    grid = ref.official_warp_grid(flow, fine)
    # The official code divides by (w, h) itself: no factor 1/2, no (n - 1) / 2.
    torch.testing.assert_close(grid[..., 0] - grid0[..., 0], torch.full((2, 6, 9), 3.0 / 9))
    torch.testing.assert_close(grid[..., 1] - grid0[..., 1], torch.full((2, 6, 9), -2.0 / 6))


def test_zero_flow_equals_bilinear_upsampling(
    checkpoint: tuple[Path, ref.OfficialMFARANet], image: torch.Tensor
) -> None:
    model = copy.deepcopy(checkpoint[1])
    for pred in model.stages_offset:
        nn.init.zeros_(pred.offset_map.weight)
    with torch.no_grad():
        out = model.forward_features(image)
    f1, f2, f3, f4 = out['feats']
    a1, a2, a3, a4 = out['aligned']
    assert all(float(flow.abs().max()) == 0.0 for flow in out['flows'])
    torch.testing.assert_close(a1, f1, rtol=0, atol=0)
    torch.testing.assert_close(a2, _resize(f2, f1), rtol=0, atol=1e-5)
    torch.testing.assert_close(a3, _resize(_resize(f3, f2), f1), rtol=0, atol=1e-5)
    torch.testing.assert_close(a4, _resize(_resize(_resize(f4, f3), f2), f1), rtol=0, atol=1e-5)


def test_nonzero_flows_change_the_output(
    checkpoint: tuple[Path, ref.OfficialMFARANet], image: torch.Tensor
) -> None:
    model = checkpoint[1]
    with torch.no_grad():
        out = model.forward_features(image)
    for flow in out['flows']:
        assert 0.5 < float(flow.std()) < 6.0
    f2 = out['feats'][1]
    assert float((out['aligned'][1] - _resize(f2, out['feats'][0])).abs().max()) > 0.1


# ----------------------------------------------------------------------------------------
# Synthetic official checkpoints


def test_checkpoint_format(checkpoint: tuple[Path, ref.OfficialMFARANet]) -> None:
    path, model = checkpoint
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    assert set(ckpt) == {'epoch', 'state_dict', 'optimizer'}
    assert ckpt['epoch'] == 200 and ckpt['optimizer'] == {}
    sd = ckpt['state_dict']
    assert all(k.startswith('module.') for k in sd)
    assert len(sd) == 263 + 1
    assert sd['module.criterion.nll_loss.weight'].shape == (19,)
    assert 'module.boundary_heads.0.0.weight' in sd
    # Batch-norm is not an identity: random running stats and affine parameters.
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 39
    for bn in bns:
        assert bool((bn.running_var > 0).all())
        assert float((bn.running_var - 1).abs().max()) > 1e-2
        assert float(bn.running_mean.abs().max()) > 1e-3
        assert float((bn.weight.detach() - 1).abs().max()) > 1e-2
        assert float(bn.bias.detach().abs().max()) > 1e-2
    assert not model.training


def test_checkpoint_round_trip(
    checkpoint: tuple[Path, ref.OfficialMFARANet], image: torch.Tensor
) -> None:
    path, model = checkpoint
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    sd = {k.removeprefix('module.'): v for k, v in ckpt['state_dict'].items()}
    sd = {k: v for k, v in sd.items() if not k.startswith('criterion.')}
    fresh = ref.OfficialMFARANet(num_classes=19)
    fresh.load_state_dict(sd, strict=True)
    fresh.eval()
    with torch.no_grad():
        expected = model(image)
        got = fresh(image)
    assert torch.equal(got, expected)
    assert expected.abs().mean() > 0.1


def test_scale_choice_checkpoint(tmp_path: Path, image: torch.Tensor) -> None:
    path = tmp_path / 'scale_choice.pth'
    model = ref.make_official_checkpoint(
        path, seed=3, layout='Scale_Choice', with_criterion=False, with_boundary=False
    )
    keys = set(torch.load(path, map_location='cpu', weights_only=True)['state_dict'])
    assert 'module.layer1.0.0.conv1.weight' in keys
    assert 'module.layer4.0.1.bn2.running_var' in keys
    assert 'module.layer0.0.0.weight' in keys
    assert 'module.ASFM_attentions.3.4.weight' in keys
    assert not any('HMSA' in k or 'criterion' in k for k in keys)
    assert not any(k.startswith('module.boundary_heads.') for k in keys)
    assert len(keys) == 255

    fresh = ref.OfficialMFARANet(num_classes=19, with_boundary=False)
    fresh.load_state_dict(ref.load_reference_state_dict(path), strict=True)
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(image), model(image))


def test_layout_mapping() -> None:
    sd = ref.OfficialMFARANet(num_classes=19).state_dict()
    mapped = ref.to_scale_choice_layout(sd)
    assert len(mapped) == len(sd)
    assert mapped['layer1.0.0.conv1.weight'] is sd['layer1.0.conv1.weight']
    assert mapped['layer3.0.0.downsample.0.weight'] is sd['layer3.0.downsample.0.weight']
    assert mapped['ASFM_attentions.2.1.running_mean'] is sd['HMSA_attentions.2.1.running_mean']
    assert mapped['layer0.0.6.weight'] is sd['layer0.0.6.weight']
    assert mapped['stages_offset.1.offset_map.weight'] is sd['stages_offset.1.offset_map.weight']
    assert list(ref.from_scale_choice_layout(mapped)) == list(sd)
    prefixed = ref.to_scale_choice_layout({'module.layer2.1.bn1.bias': torch.zeros(1)})
    assert list(prefixed) == ['module.layer2.0.1.bn1.bias']


def test_checkpoint_is_seeded_and_keeps_global_rng(
    checkpoint: tuple[Path, ref.OfficialMFARANet], tmp_path: Path
) -> None:
    seed0 = checkpoint[1].state_dict()
    state = torch.get_rng_state()
    again = ref.make_official_checkpoint(tmp_path / 'a.pth', seed=0).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    assert list(again) == list(seed0)
    assert all(torch.equal(again[k], seed0[k]) for k in seed0)
    other = ref.make_official_checkpoint(
        tmp_path / 'b.pth', num_classes=11, seed=1, with_boundary=False
    ).state_dict()
    assert len(other) == 255
    assert other['multi_loss_head.0.0.weight'].shape == (11, 128, 1, 1)
    assert not torch.equal(other['layer0.0.0.weight'], seed0['layer0.0.0.weight'])


def test_unknown_layout_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='layout'):
        ref.make_official_checkpoint(tmp_path / 'x.pth', layout='Speed')
