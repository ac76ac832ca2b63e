"""Official checkpoint import against an independent reference built from the key table."""

from __future__ import annotations

from pathlib import Path

import pytest
from reference import official_mfaranet as ref
import torch

from segnode.errors import CheckpointError
from segnode.model.checkpoint import build_from_checkpoint, save_checkpoint
from segnode.model.fold import fold_equalizers
from segnode.model.official import convert_official_state, load_official


@pytest.fixture(scope='module')
def official(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ref.OfficialMFARANet]:
    path = tmp_path_factory.mktemp('official') / 'mfaranet.pth'
    return path, ref.make_official_checkpoint(path, num_classes=19, seed=3)


@pytest.mark.parametrize('size', [(96, 160), (65, 97), (128, 128)])
def test_converted_model_reproduces_official_logits(
    official: tuple[Path, ref.OfficialMFARANet], size: tuple[int, int]
) -> None:
    path, reference = official
    model, report = load_official(path)
    assert report['layout'] == 'MFARANet' and report['num_classes'] == 19
    assert report['dropped'] == {'criterion.': 1, 'boundary_heads.': 8}
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(size[0]))
    with torch.no_grad():
        expected, got = reference(x), model(x)
        folded = fold_equalizers(model)(x)
    rms = expected.square().mean().sqrt()
    # the only expected difference is the arange grid vs linspace (<= 1.8e-7 in grid units)
    assert (got - expected).abs().max() <= 1e-4 * rms
    assert (got.argmax(1) == expected.argmax(1)).float().mean() >= 0.9999
    assert torch.equal(folded, got)  # identity equalizers fold to nothing


def test_scale_choice_layout_is_detected_and_mapped(tmp_path: Path) -> None:
    path = tmp_path / 'scale_choice.pth'
    reference = ref.make_official_checkpoint(path, num_classes=11, seed=1, layout='Scale_Choice')
    model, report = load_official(path)
    assert report['layout'] == 'MFARANet_Scale_Choice' and report['num_classes'] == 11
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-4)


def test_boundary_heads_kept_for_training(official: tuple[Path, ref.OfficialMFARANet]) -> None:
    model, report = load_official(official[0], keep_boundary=True)
    assert model.boundary_heads is not None and 'boundary_heads.' not in report['dropped']
    expected = official[1].state_dict()['boundary_heads.2.0.weight']
    assert torch.equal(model.boundary_heads[2].weight, expected)


def test_unmapped_key_is_an_error() -> None:
    state = {f'module.{k}': v for k, v in ref.OfficialMFARANet(num_classes=3).state_dict().items()}
    state['module.ppm.0.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"no counterpart in segnode: \['ppm.0.weight'\]"):
        convert_official_state(state)


def test_speed_variant_is_rejected() -> None:
    state = ref.OfficialMFARANet(num_classes=3).state_dict()
    speed = {k: v for k, v in state.items() if not k.startswith('channel_changes.0.1.')}
    with pytest.raises(CheckpointError, match='model_MFARANet_Speed'):
        convert_official_state(speed)


def test_missing_backbone_is_an_error(tmp_path: Path) -> None:
    state = ref.OfficialMFARANet(num_classes=3).state_dict()
    no_backbone = {f'module.{k}': v for k, v in state.items() if not k.startswith('layer4.')}
    path = tmp_path / 'partial.pth'
    torch.save({'epoch': 1, 'state_dict': no_backbone, 'optimizer': {}}, path)
    with pytest.raises(CheckpointError, match='model keys missing.*backbone.layer4'):
        load_official(path)


def test_garbage_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / 'garbage.pth'
    path.write_bytes(b'not a checkpoint')
    with pytest.raises(
        CheckpointError, match='official checkpoint .*garbage.pth is not a PyTorch file'
    ):
        load_official(path)


def test_converted_checkpoint_round_trips_with_identity_state(
    official: tuple[Path, ref.OfficialMFARANet], tmp_path: Path
) -> None:
    model, _ = load_official(official[0])
    dst = tmp_path / 'converted.pt'
    names = [f'c{i}' for i in range(19)]
    save_checkpoint(model, dst, class_names=names, palette=[(0, 0, 0)] * 19, dataset='x')
    loaded, meta = build_from_checkpoint(dst)
    assert meta['equalizers']['state'] == 'identity'
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
