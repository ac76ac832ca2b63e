"""segnode train preloads tcmalloc by re-executing itself once, or says how to get it."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
import subprocess
import sys

import pytest

from segnode.cli import allocator


class _Exec:
    """Records the exec calls instead of replacing the test process."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], dict[str, str]]] = []

    def __call__(self, path: str, argv: list[str], env: dict[str, str]) -> None:
        self.calls.append((path, argv, env))


@pytest.fixture
def no_allocator_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, '_loaded_allocator', lambda: None)


@pytest.mark.usefixtures('no_allocator_loaded')
def test_reexecutes_with_the_library_preloaded_and_the_same_command() -> None:
    run = _Exec()
    allocator.use_tcmalloc(
        environ={'LD_PRELOAD': 'libother.so', 'PATH': '/bin'},
        exec_=run,
        find=lambda: '/opt/libtcmalloc_minimal.so.4',
    )
    ((path, argv, env),) = run.calls
    assert path == sys.executable and argv == list(sys.orig_argv)
    assert env['LD_PRELOAD'] == '/opt/libtcmalloc_minimal.so.4 libother.so'
    assert env['PATH'] == '/bin' and env['SEGNODE_TCMALLOC_TRIED'] == '1'


@pytest.mark.usefixtures('no_allocator_loaded')
def test_never_twice_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    run = _Exec()
    with caplog.at_level(logging.INFO, logger='segnode.train'):
        allocator.use_tcmalloc(
            environ={'SEGNODE_TCMALLOC_TRIED': '1'}, exec_=run, find=lambda: '/opt/libtc.so'
        )
    assert not run.calls
    assert 'system allocator' in caplog.text


@pytest.mark.usefixtures('no_allocator_loaded')
def test_without_the_library_one_line_says_how_to_get_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = _Exec()
    with caplog.at_level(logging.INFO, logger='segnode.train'):
        allocator.use_tcmalloc(environ={}, exec_=run, find=lambda: None)
    assert not run.calls
    (record,) = caplog.records
    assert 'apt install libtcmalloc-minimal4' in record.getMessage()


@pytest.mark.usefixtures('no_allocator_loaded')
def test_opt_out_keeps_the_system_allocator() -> None:
    run = _Exec()
    allocator.use_tcmalloc(
        environ={'SEGNODE_ALLOCATOR': 'system'}, exec_=run, find=lambda: '/opt/libtc.so'
    )
    assert not run.calls


def test_already_loaded_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, '_loaded_allocator', lambda: 'jemalloc')
    run = _Exec()
    allocator.use_tcmalloc(environ={}, exec_=run, find=lambda: '/opt/libtc.so')
    assert not run.calls


def test_finds_the_first_existing_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, 'prefix', str(tmp_path / 'env'))
    there = tmp_path / 'libtcmalloc_minimal.so.4'
    there.write_bytes(b'')
    assert allocator.find_tcmalloc((str(tmp_path / 'missing.so'), str(there))) == str(there)
    assert allocator.find_tcmalloc((str(tmp_path / 'missing.so'),)) is None


@pytest.mark.skipif(
    allocator.find_tcmalloc() is None, reason='tcmalloc is not installed on this machine'
)
def test_a_real_process_ends_up_with_tcmalloc_loaded() -> None:
    script = (
        'import logging, sys; logging.basicConfig(level=logging.INFO);'
        'from segnode.cli.allocator import use_tcmalloc; use_tcmalloc();'
        'print("tcmalloc" in open("/proc/self/maps").read())'
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ('LD_PRELOAD', 'SEGNODE_TCMALLOC_TRIED')
    }
    out = subprocess.run(
        [sys.executable, '-c', script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'True'
    assert 'restarting with tcmalloc preloaded' in out.stderr


def test_train_called_from_python_never_reexecutes_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from segnode.cli import train as train_cli

    called: list[bool] = []
    monkeypatch.setattr(allocator, 'use_tcmalloc', lambda **_: called.append(True))
    train_cli._use_tcmalloc_on_cpu(argparse.Namespace(own_command_line=False), 'cpu')
    assert not called
    train_cli._use_tcmalloc_on_cpu(argparse.Namespace(own_command_line=True), 'cpu')
    assert called == [True]
