"""segnode checkpoints: metadata, strict loading, clear refusals, atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from segnode import load_model
from segnode.cli import main
from segnode.errors import CheckpointError
from segnode.model import build_mfaranet
from segnode.model.checkpoint import (
    build_from_checkpoint,
    read_checkpoint,
    save_checkpoint,
    state_sha256,
)
from segnode.model.checkpoint_meta import current_provenance
from segnode.model.fold import fold_equalizers
from segnode.model.official import load_official
from segnode.model.scale_equalizer import ScaleEqualizer


def _save(model: torch.nn.Module, path: Path, **kw: object) -> dict[str, object]:
    k = model.config.num_classes
    names, palette = [f'c{i}' for i in range(k)], [(i, i, i) for i in range(k)]
    return save_checkpoint(
        model, path, class_names=names, palette=palette, dataset='synthetic', **kw
    )


def test_round_trip_keeps_weights_metadata_and_equalizers(tmp_path: Path) -> None:
    model = build_mfaranet(num_classes=4).eval()
    eq = model.mfam.equalizers['c2']
    assert isinstance(eq, ScaleEqualizer)
    eq.mean.fill_(0.4)
    eq.std.fill_(0.6)
    model.equalizer_provenance = {'state': 'measured', 'levels': 4}
    path = tmp_path / 'm.pt'
    _save(model, path, metrics={'val_miou': 0.5}, recipe={'iters': 3})
    loaded, meta = build_from_checkpoint(path)
    assert meta['model']['num_classes'] == 4 and meta['metrics'] == {'val_miou': 0.5}
    assert meta['equalizers'] == {'state': 'measured', 'levels': 4}
    assert meta['git_revision'] and meta['folded'] is False
    assert float(loaded.mfam.equalizers['c2'].std) == pytest.approx(0.6)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        folded = load_model(path, fold_equalizers=True)
        assert not any(isinstance(m, ScaleEqualizer) for m in folded.modules())
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)


def test_a_checkpoint_written_before_the_rename_reads_under_the_new_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = build_mfaranet(num_classes=2, width=16)
    when = '2026-12-03T12:14:23+00:00'
    model.equalizer_provenance = {'state': 'calibrated', 'calibrated_at': when, 'levels': 4}
    old = tmp_path / 'old.pt'
    _save(model, old, recipe={'calibration_images': 64})  # what segnode wrote before
    assert torch.load(old, weights_only=True)['meta']['equalizers']['state'] == 'calibrated'
    loaded, meta = build_from_checkpoint(old)
    current = {'state': 'measured', 'measured_at': when, 'levels': 4}
    assert meta['equalizers'] == loaded.equalizer_provenance == current
    assert main(['info', str(old), '--size', '64', '64']) == 0
    out = capsys.readouterr().out
    assert 'equalizers    measured: 18 equalizers' in out and f'measured_at:       {when}' in out
    assert 'equalizer_images=64' in out and 'calibrat' not in out
    assert main(['rehash', str(old), str(tmp_path / 'same.pt')]) == 0  # stored names kept
    rehashed = torch.load(tmp_path / 'same.pt', weights_only=True)['meta']
    assert (
        rehashed['equalizers']['state'] == 'calibrated'
        and 'calibrated_at' in rehashed['equalizers']
    )
    assert current_provenance({'state': 'uncalibrated'}) == {'state': 'unmeasured'}
    assert current_provenance({'state': 'identity'}) == {'state': 'identity'}


def test_checkpoint_loads_with_weights_only(tmp_path: Path) -> None:
    path = tmp_path / 'm.pt'
    _save(build_mfaranet(num_classes=2), path)
    raw = torch.load(path, weights_only=True)
    assert raw['format'] == 'segnode-checkpoint' and 'score_heads.0.weight' in raw['state_dict']


def test_half_checkpoint_is_smaller_and_loads_as_fp32(tmp_path: Path) -> None:
    model = build_mfaranet(num_classes=3).eval()
    full, half = tmp_path / 'full.pt', tmp_path / 'half.pt'
    _save(model, full)
    _save(model, half, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, meta = build_from_checkpoint(half)
    assert meta['dtype'] == 'float16'
    assert loaded.score_heads[0].weight.dtype == torch.float32


def test_class_count_mismatch_is_named(tmp_path: Path) -> None:
    path = tmp_path / 'm.pt'
    _save(build_mfaranet(num_classes=3), path)
    with pytest.raises(CheckpointError, match='has 3 classes, 19 were expected'):
        build_from_checkpoint(path, num_classes=19)


def test_shape_mismatch_is_named(tmp_path: Path) -> None:
    path = tmp_path / 'm.pt'
    _save(build_mfaranet(num_classes=3), path)
    raw = torch.load(path, weights_only=True)
    raw['meta']['model']['num_classes'] = 5
    raw['meta']['classes'] = {'names': list('abcde'), 'palette': [[0, 0, 0]] * 5}
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=r'score_heads.0.weight has shape \(3, 128, 1, 1\)'):
        build_from_checkpoint(path)


def test_missing_equalizer_constants_fail_loudly(tmp_path: Path) -> None:
    path = tmp_path / 'm.pt'
    _save(build_mfaranet(num_classes=3), path)
    raw = torch.load(path, weights_only=True)
    raw['state_dict'] = {k: v for k, v in raw['state_dict'].items() if 'equalizers.' not in k}
    raw['meta']['weights_sha256'] = state_sha256(raw['state_dict'])  # written that way
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match='no equalizer constants'):
        build_from_checkpoint(path)


def test_altered_weights_are_refused(tmp_path: Path) -> None:
    path = tmp_path / 'm.pt'
    _save(build_mfaranet(num_classes=3), path)
    raw = torch.load(path, weights_only=True)
    name = next(k for k, v in raw['state_dict'].items() if v.is_floating_point() and v.numel())
    raw['state_dict'][name].view(-1)[0] += 1.0
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match='do not match the sha256 recorded'):
        read_checkpoint(path)


@pytest.mark.parametrize(
    ('value', 'message'),
    [
        (torch.tensor([1.0, float('nan')]), 'holds NaN or infinite values'),
        (torch.zeros(2, dtype=torch.complex64), 'has unsupported dtype'),
        (3, 'is a int, not a tensor'),
    ],
)
def test_bad_tensors_are_named(tmp_path: Path, value: object, message: str) -> None:
    path = tmp_path / 'm.pt'
    _save(build_mfaranet(num_classes=3), path)
    raw = torch.load(path, weights_only=True)
    raw['state_dict']['bad.weight'] = value
    del raw['meta']['weights_sha256']
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=f'bad.weight {message}'):
        read_checkpoint(path)


def test_a_checkpoint_without_meta_is_refused(tmp_path: Path) -> None:
    path = tmp_path / 'm.pt'
    torch.save({'format': 'segnode-checkpoint', 'version': 1, 'state_dict': {}}, path)
    with pytest.raises(CheckpointError, match='needs a state_dict and a meta dict'):
        read_checkpoint(path)


def test_official_file_gets_a_conversion_hint(tmp_path: Path) -> None:
    path = tmp_path / 'official.pth'
    torch.save({'epoch': 1, 'state_dict': {'module.x': torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match='segnode convert-official'):
        read_checkpoint(path)


def test_bare_segnode_weights_are_not_sent_to_convert_official(tmp_path: Path) -> None:
    path = tmp_path / 'weights.pt'
    torch.save(build_mfaranet(num_classes=2).state_dict(), path)
    with pytest.raises(CheckpointError, match='bare segnode weights') as error:
        read_checkpoint(path)
    assert 'convert-official' not in str(error.value)


def test_convert_official_names_segnode_files_for_what_they_are(tmp_path: Path) -> None:
    model = build_mfaranet(num_classes=2)
    checkpoint, bare = tmp_path / 'model.pt', tmp_path / 'bare.pt'
    names, palette = ['a', 'b'], [(0, 0, 0)] * 2
    save_checkpoint(model, checkpoint, class_names=names, palette=palette, dataset='x')
    torch.save({'state_dict': model.state_dict()}, bare)
    with pytest.raises(CheckpointError, match='already a segnode checkpoint'):
        load_official(checkpoint)
    with pytest.raises(CheckpointError, match='segnode key names, not official ones'):
        load_official(bare)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match='checkpoint not found: .*nope.pt'):
        read_checkpoint(tmp_path / 'nope.pt')


def test_folded_model_is_not_saved(tmp_path: Path) -> None:
    model = build_mfaranet(num_classes=2).eval()
    model.mfam.equalizers['c2'].std.fill_(0.5)
    with pytest.raises(CheckpointError, match='folded'):
        _save(fold_equalizers(model), tmp_path / 'f.pt')
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_save(*_args: object, **_kw: object) -> None:
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', broken_save)
    with pytest.raises(OSError, match='disk full'):
        _save(build_mfaranet(num_classes=2), tmp_path / 'm.pt')
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ('content', 'message'),
    [
        (b'', r'is empty \(0 bytes\)'),
        (b'just some text\n', 'is not a PyTorch file'),
    ],
)
def test_unreadable_files_say_why_in_one_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / 'x.pt'
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as info:
        read_checkpoint(path)
    assert '\n' not in str(info.value)


def test_a_directory_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match='is a directory, not a file'):
        read_checkpoint(tmp_path)


def test_a_pickle_with_code_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / 'evil.pt'
    torch.save({'format': 'segnode-checkpoint', 'payload': Path('/tmp')}, path)
    with pytest.raises(CheckpointError, match='holds Python objects besides tensors') as info:
        read_checkpoint(path)
    assert '\n' not in str(info.value) and 'weights_only=False' not in str(info.value)


@pytest.mark.parametrize(
    ('change', 'message'),
    [
        ({'classes': 3}, 'meta.classes must be a mapping'),
        ({'classes': {'names': 3, 'palette': []}}, 'names must be a list of strings'),
        ({'classes': {'names': ['a', 'b', 'c'], 'palette': [[1, 2]] * 3}}, 'palette must be'),
        ({'classes': {'names': ['a', 'b', 'c'], 'palette': ['red'] * 3}}, 'palette must be'),
        ({'classes': {'names': ['a', 'b', 'c'], 'palette': [[999, 0, 0]] * 3}}, 'palette must'),
        ({'equalizers': 5}, 'meta.equalizers must be a mapping'),
        ({'model': None}, 'meta.model must be a mapping'),
    ],
)
def test_odd_metadata_is_refused_naming_the_field(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    path = tmp_path / 'm.pt'
    _save(build_mfaranet(num_classes=3), path)
    raw = torch.load(path, weights_only=True)
    raw['meta'].update(change)
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)


def test_flipped_bytes_inside_the_archive_are_refused(tmp_path: Path) -> None:
    path = tmp_path / 'm.pt'
    _save(build_mfaranet(num_classes=3), path)
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):  # inside a weight record
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match='corrupt|damaged|do not match') as info:
        read_checkpoint(path)
    assert '\n' not in str(info.value)


def test_an_integer_tensor_where_a_weight_belongs_is_named(tmp_path: Path) -> None:
    path = tmp_path / 'm.pt'
    _save(build_mfaranet(num_classes=3), path)
    raw = torch.load(path, weights_only=True)
    name = 'score_heads.0.weight'
    raw['state_dict'][name] = raw['state_dict'][name].long()
    del raw['meta']['weights_sha256']
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=f'{name} is torch.int64 in the checkpoint'):
        build_from_checkpoint(path)
