"""ImageNet initialisation of the backbone from user-provided files (never downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from segnode.errors import CheckpointError
from segnode.model.backbone import DeepStemResNet18, load_imagenet_backbone


def _deep_stem_file(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict in the SFNet ``resnet18-deep-inplane128.pth`` layout (conv1.k, bn1, fc)."""
    torch.manual_seed(1)
    source = DeepStemResNet18().state_dict()
    state = {}
    for key, value in source.items():
        key = key.replace('layer0.0.', 'conv1.').replace('layer0.1.', 'bn1.')
        state[key] = torch.randn_like(value.float()).to(value.dtype)
    state['fc.weight'], state['fc.bias'] = torch.randn(1000, 512), torch.randn(1000)
    torch.save(state, path)
    return state


def test_deep_stem_weights_load_completely(tmp_path: Path) -> None:
    state = _deep_stem_file(tmp_path / 'deep.pth')
    backbone = DeepStemResNet18()
    assert load_imagenet_backbone(backbone, tmp_path / 'deep.pth') == []
    assert torch.equal(backbone.layer0[0][6].weight, state['conv1.6.weight'])
    assert torch.equal(backbone.layer0[1].running_var, state['bn1.running_var'])
    assert torch.equal(backbone.layer4[1].conv2.weight, state['layer4.1.conv2.weight'])


def test_torchvision_layout_loads_all_but_the_stem(tmp_path: Path) -> None:
    shapes = {
        'conv1.weight': (64, 3, 7, 7), 'bn1.weight': (64,), 'bn1.bias': (64,),
        'bn1.running_mean': (64,), 'bn1.running_var': (64,), 'fc.weight': (1000, 512),
        'layer1.0.conv1.weight': (64, 64, 3, 3),
    }  # fmt: skip
    state = {k: torch.randn(s) for k, s in shapes.items()}
    for key, value in DeepStemResNet18().state_dict().items():
        if key.startswith(('layer2.', 'layer3.', 'layer4.', 'layer1.1.')):
            state[key] = torch.randn_like(value.float()).to(value.dtype)
    torch.save({'state_dict': {f'module.{k}': v for k, v in state.items()}}, tmp_path / 'tv.pth')
    backbone = DeepStemResNet18()
    left = load_imagenet_backbone(backbone, tmp_path / 'tv.pth')
    assert left and all(k.startswith(('layer0.', 'layer1.0.')) for k in left)
    assert torch.equal(backbone.layer3[0].conv2.weight, state['layer3.0.conv2.weight'])


def test_shape_mismatch_names_the_key(tmp_path: Path) -> None:
    state = _deep_stem_file(tmp_path / 'deep.pth')
    state['layer2.0.conv1.weight'] = torch.zeros(1, 1, 3, 3)
    torch.save(state, tmp_path / 'bad.pth')
    with pytest.raises(CheckpointError, match=r"'layer2.0.conv1.weight' has shape \(1, 1, 3, 3\)"):
        load_imagenet_backbone(DeepStemResNet18(), tmp_path / 'bad.pth')


def test_unreadable_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    (tmp_path / 'x.pth').write_text('nope')
    with pytest.raises(CheckpointError, match='cannot read ImageNet weights'):
        load_imagenet_backbone(DeepStemResNet18(), tmp_path / 'x.pth')
