"""What ``auto`` measures here: candidates per device and CPU, and the remembered choice."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from segnode import cpu
from segnode.config import EngineConfig
from segnode.engine import choice

CPU = torch.device('cpu')


def _flags(monkeypatch: pytest.MonkeyPatch, *flags: str) -> None:
    monkeypatch.setattr(cpu, 'flags', lambda: set(flags))


def test_bf16_is_a_candidate_only_where_the_cpu_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    _flags(monkeypatch, 'avx2', 'fma')
    assert choice.candidates(EngineConfig(), CPU, int8=False) == [
        ('torch-compile', 'fp32'),
        ('openvino', 'fp32'),
        ('onnxruntime', 'fp32'),
        ('eager', 'fp32'),
    ]
    _flags(monkeypatch, 'avx512_bf16')
    assert choice.candidates(EngineConfig(), CPU, int8=True) == [
        ('torch-compile', 'fp32'),
        ('torch-compile', 'bf16'),
        ('openvino', 'fp32'),
        ('openvino', 'bf16'),
        ('openvino', 'int8'),
        ('onnxruntime', 'fp32'),
        ('onnxruntime', 'int8'),
        ('eager', 'fp32'),
        ('eager', 'bf16'),
    ]
    _flags(monkeypatch, 'amx_bf16')
    assert cpu.native_bf16()


def test_a_named_axis_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    _flags(monkeypatch, 'amx_bf16')
    named = EngineConfig(backend='eager')
    assert choice.candidates(named, CPU, int8=True) == [('eager', 'fp32'), ('eager', 'bf16')]
    fp32 = EngineConfig(precision='fp32')
    assert [p for _, p in choice.candidates(fp32, CPU, int8=True)] == ['fp32'] * 4
    # a backend that runs none of the precisions is still tried once, to say why not
    assert choice.candidates(EngineConfig(backend='tensorrt'), CPU, int8=False) == [
        ('tensorrt', 'fp32')
    ]


def _key(config: EngineConfig, width: int = 96) -> dict[str, object]:
    return choice.choice_key(
        config, CPU, checkpoint_sha256='abc', batch=1, height=64, width=width,
        pairs=[('eager', 'fp32'), ('onnxruntime', 'fp32')],
    )  # fmt: skip


def test_a_choice_is_read_back_only_for_the_same_key(tmp_path: Path) -> None:
    config = EngineConfig()
    key = _key(config)
    assert choice.read_choice(tmp_path, key) is None
    path = choice.write_choice(tmp_path, key, ('onnxruntime', 'fp32'), [{'ms': 1.0}])
    assert choice.read_choice(tmp_path, key) == (('onnxruntime', 'fp32'), path)
    assert choice.read_choice(tmp_path, _key(config, width=128)) is None
    assert choice.read_choice(tmp_path, _key(replace(config, tie_margin=0.5))) is None
    path.write_text('{not json')
    assert choice.read_choice(tmp_path, key) is None  # a broken record is measured again


def test_choices_live_with_the_artifacts_else_in_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    assert choice.choice_dir(EngineConfig()) == tmp_path / 'cache' / 'segnode' / 'choices'
    assert choice.choice_dir(EngineConfig(artifact_dir='/engines')) == Path('/engines')
