"""Atomic writes (nothing half-written, the umask honoured), hashes, JSON, no empty folders."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from segnode.cli import main
from segnode.files import (
    atomic_write,
    ctrl_c_after,
    file_sha256,
    no_empty_folders_left,
    write_json,
)


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text('half')
        raise OSError('no space')

    with pytest.raises(OSError, match='no space'):
        atomic_write(tmp_path / 'engine.ep', write)
    assert list(tmp_path.iterdir()) == []
    atomic_write(tmp_path / 'engine.ep', lambda tmp: tmp.write_text('whole'))
    assert (tmp_path / 'engine.ep').read_text() == 'whole'


@pytest.mark.parametrize('umask', [0o022, 0o077])
def test_atomic_write_honours_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        path = atomic_write(tmp_path / 'report.json', lambda tmp: tmp.write_text('{}'))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_file_sha256(tmp_path: Path) -> None:
    (tmp_path / 'f').write_bytes(b'abc')
    expected = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
    assert file_sha256(tmp_path / 'f') == expected


def test_write_json_turns_nan_and_numpy_into_plain_json(tmp_path: Path) -> None:
    data = {'miou': math.nan, 'p99': math.inf, 'ids': np.arange(3), 'n': np.int64(4), 1: 'x'}
    path = write_json(data, tmp_path / 'out' / 'r.json')
    assert json.loads(path.read_text()) == {
        'miou': None,
        'p99': None,
        'ids': [0, 1, 2],
        'n': 4,
        '1': 'x',
    }


def test_a_failed_block_leaves_no_new_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / 'a' / 'b' / 'out'
    with pytest.raises(KeyboardInterrupt), no_empty_folders_left(out):
        (out / 'engines').mkdir(parents=True)
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError), no_empty_folders_left(out):
        (out / 'keep').mkdir(parents=True)
        (out / 'keep' / 'partial.bag').write_text('x')
        (out / 'empty').mkdir()
        raise ValueError
    assert sorted(p.name for p in out.iterdir()) == ['keep']  # what holds a file stays
    with no_empty_folders_left(tmp_path / 'fine'):
        (tmp_path / 'fine').mkdir()
    assert (tmp_path / 'fine').is_dir()  # success keeps everything


def test_demo_stopped_early_leaves_no_empty_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import segnode.replay.demo as demo

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, 'load_labelled_model', interrupted)
    monkeypatch.delenv('SEGNODE_CAMVID_ROOT', raising=False)
    assert main(['demo', '--out', str(tmp_path / 'outputs' / 'demo')]) == 130
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures('default_sigint')
def test_ctrl_c_during_a_report_write_waits_for_the_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import signal

    report = tmp_path / 'report.json'
    with pytest.raises(KeyboardInterrupt), ctrl_c_after('the report'):
        signal.raise_signal(signal.SIGINT)  # pressed while writing
        signal.raise_signal(signal.SIGINT)  # and again
        write_json({'miou': 0.5}, report)
    assert json.loads(report.read_text()) == {'miou': 0.5}
    assert capsys.readouterr().err.count('finishing the report first') == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with ctrl_c_after('the report'):
        pass  # no Ctrl-C: nothing raised
