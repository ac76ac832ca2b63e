"""Hostile checkpoints (issue 28): each is refused in well under a second with one line.

The files come from ``test/hostile.py``; the refusal must come from the Python API and from
``segnode info`` (exit 2, one ``segnode: error:`` line, no traceback), before any model is
built.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
import re
import time
from typing import Any
import warnings

import hostile
import pytest
import torch

from segnode.cli import main
from segnode.errors import CheckpointError
import segnode.model.checkpoint as checkpoint
from segnode.model.checkpoint import (
    build_from_checkpoint,
    read_checkpoint,
    rehash_checkpoint,
    state_sha256,
)


@pytest.fixture(scope='module')
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return hostile.valid_checkpoint(tmp_path_factory.mktemp('base') / 'valid.pt')


def _refused_in_one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err and 'Warning' not in err
    (line,) = err.splitlines()
    assert line.startswith('segnode: error: ') and len(line) < 600
    return line


@pytest.mark.parametrize(
    ('damage', 'message'),
    [pytest.param(d, m, id=name) for name, d, m in hostile.CHECKPOINTS],
)
def test_a_hostile_checkpoint_is_refused_at_once_in_one_line(
    base: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    path = hostile.damaged_checkpoint(base, damage, tmp_path / 'hostile.pt')

    def no_build(*_args: object, **_kw: object) -> None:
        raise AssertionError('a model was built before the checkpoint was checked')

    monkeypatch.setattr(checkpoint, 'MFARANet', no_build)
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match=re.escape(message)) as info:
        build_from_checkpoint(path)
    assert time.perf_counter() - t0 < 3.0  # well under a second on an idle core
    assert '\n' not in str(info.value) and len(str(info.value)) < 600
    line = _refused_in_one_line(capsys, ['info', str(path), '--size', '64', '64'])
    assert message in line


def test_the_valid_base_loads_and_info_describes_it(
    base: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = hostile.write_checkpoint(dict(base), tmp_path / 'valid.pt')
    model, meta = build_from_checkpoint(path)
    assert model.config.width == 16 and meta['weights_sha256'] == state_sha256(base['state_dict'])
    assert main(['info', str(path), '--size', '64', '64']) == 0
    assert 'width 16' in capsys.readouterr().out


def test_an_old_file_without_the_hash_is_re_saved_by_rehash_only_when_asked(
    base: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = dict(base, meta={k: v for k, v in base['meta'].items() if k != 'weights_sha256'})
    src, dst = tmp_path / 'old.pt', tmp_path / 'new.pt'
    torch.save(old, src)
    line = _refused_in_one_line(capsys, ['info', str(src), '--size', '64', '64'])
    assert 'unverified' in line and f'segnode rehash {src} OUT.pt' in line
    state, meta = read_checkpoint(src, allow_unverified=True)
    assert 'weights_sha256' not in meta
    assert main(['rehash', str(src), str(dst)]) == 0
    assert 're-save only a file you trust' in capsys.readouterr().out
    state, meta = read_checkpoint(dst)
    assert meta['weights_sha256'] == state_sha256(base['state_dict'])
    assert {k: v for k, v in meta.items() if k != 'weights_sha256'} == old['meta']
    assert main(['info', str(dst), '--size', '64', '64']) == 0


def test_rehash_still_refuses_damaged_weights_and_writes_nothing(
    base: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = dict(base, meta={k: v for k, v in base['meta'].items() if k != 'weights_sha256'})
    raw['state_dict'] = dict(base['state_dict'])
    raw['state_dict']['score_heads.0.weight'] = torch.full(
        base['state_dict']['score_heads.0.weight'].shape, 1e38
    )
    src = hostile.write_checkpoint(raw, tmp_path / 'old.pt')
    with pytest.raises(CheckpointError, match='more than 1e'):
        rehash_checkpoint(src, tmp_path / 'new.pt')
    line = _refused_in_one_line(capsys, ['rehash', str(src), str(tmp_path / 'new.pt')])
    assert 'magnitude 1e+38' in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ['old.pt']


def test_a_raw_pickle_is_refused_without_torch_s_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = hostile.raw_pickle(tmp_path / 'raw.pt')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with pytest.raises(CheckpointError, match='not a torch.save file'):
            read_checkpoint(path)
    assert [str(w.message) for w in caught] == []
    line = _refused_in_one_line(capsys, ['info', str(path)])
    assert 'not a PyTorch file' in line


def test_every_writer_records_the_weights_hash(
    base: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = hostile.write_checkpoint(dict(base), tmp_path / 'src.pt')
    assert main(['to-fp16', str(src), str(tmp_path / 'fp16.pt')]) == 0
    assert main(['rehash', str(src), str(tmp_path / 'copy.pt')]) == 0
    assert 'already records' in capsys.readouterr().out
    for name in ('fp16.pt', 'copy.pt'):
        state, meta = read_checkpoint(tmp_path / name)  # refused without the hash
        assert meta['weights_sha256'] == state_sha256(state)
