"""build_engine: the parity gate refuses a broken engine, auto measures, strict raises."""

from __future__ import annotations

from collections.abc import Callable
import copy
from dataclasses import replace
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from segnode.config import EngineConfig
from segnode.engine import build
from segnode.engine.backends import AUTO_ORDER, BACKEND_TABLE
from segnode.engine.build import build_engine, export_engine
from segnode.engine.graph import deploy_model, frame_graph
from segnode.errors import EngineBuildError, EngineUnavailable
from segnode.model import MFARANet

H, W = 64, 96


@pytest.fixture(scope='module')
def broken(model: MFARANet) -> MFARANet:
    """The same network with one head's weights scaled by 1.5: a genuinely wrong engine."""
    bad = copy.deepcopy(model)
    with torch.no_grad():
        bad.score_heads[2].weight.mul_(1.5)
    return bad


@pytest.mark.parametrize('backend', ['eager', 'onnxruntime'])
def test_correct_builds_pass_the_gate(model: MFARANet, backend: str) -> None:
    config = EngineConfig(backend=backend, device='cpu', precision='fp32', strict=True)
    engine, report = build_engine(model, config, height=H, width=W)
    assert report.backend == backend and engine.backend == backend
    assert report.parity['passed'] and report.parity['agreement'] >= 0.995
    assert report.parity['confident_flips'] == 0


@pytest.mark.parametrize('backend', ['eager', 'onnxruntime'])
def test_a_wrong_engine_is_refused(model: MFARANet, broken: MFARANet, backend: str) -> None:
    config = EngineConfig(backend=backend, device='cpu', precision='fp32', strict=True)
    with pytest.raises(
        EngineBuildError, match=f'{backend} fp32 engine refused by the parity gate'
    ):
        build_engine(broken, config, height=H, width=W, reference=model)


Replaced = Callable[..., SimpleNamespace]


def _failing(replaced: Replaced, name: str, error: Exception) -> SimpleNamespace:
    def fail(*args: object) -> None:
        raise error

    return replaced(name, build=fail)


FP32_AUTO = EngineConfig(device='cpu', precision='fp32')  # backend auto, fp32 only


def test_auto_skips_what_fails_and_says_why(
    model: MFARANet,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    replaced: Replaced,
) -> None:
    assert AUTO_ORDER['cpu'] == ('torch-compile', 'openvino', 'onnxruntime', 'eager')
    monkeypatch.setitem(
        BACKEND_TABLE,
        'torch-compile',
        _failing(replaced, 'torch-compile', EngineUnavailable('no C++ compiler')),
    )
    monkeypatch.setitem(
        BACKEND_TABLE,
        'openvino',
        _failing(replaced, 'openvino', EngineUnavailable('openvino is not installed')),
    )
    monkeypatch.setitem(
        BACKEND_TABLE, 'onnxruntime', _failing(replaced, 'onnxruntime', RuntimeError('boom'))
    )
    with caplog.at_level(logging.INFO, logger='segnode.engine.build'):
        engine, report = build_engine(model, FP32_AUTO, height=H, width=W)
    assert engine.backend == 'eager' and report.backend == 'eager'
    outcome = [(a.backend, a.ok, a.reason, a.unavailable) for a in report.attempts]
    assert outcome[:3] == [
        ('torch-compile fp32', False, 'no C++ compiler', True),
        ('openvino fp32', False, 'openvino is not installed', True),
        ('onnxruntime fp32', False, 'RuntimeError: boom', False),
    ]
    assert outcome[3][:2] == ('eager fp32', True) and report.attempts[3].ms is not None
    assert 'engine onnxruntime fp32 not used: RuntimeError: boom' in caplog.text
    assert 'cannot run here: torch-compile fp32, openvino fp32' in report.summary()


def test_auto_keeps_the_fastest_and_remembers_it(
    model: MFARANet, monkeypatch: pytest.MonkeyPatch, replaced: Replaced
) -> None:
    for name in ('torch-compile', 'openvino'):
        monkeypatch.setitem(BACKEND_TABLE, name, _failing(replaced, name, EngineUnavailable('-')))
    speed = {'onnxruntime': 5.0, 'eager': 9.0}
    monkeypatch.setattr(build, 'time_calls', lambda engine, *a: speed[engine.backend])
    builds: list[str] = []
    for name in ('onnxruntime', 'eager'):
        spec = BACKEND_TABLE[name]

        def counted(*args: object, _spec: object = spec, _name: str = name) -> object:
            builds.append(_name)
            return _spec.build(*args)  # type: ignore[attr-defined]

        monkeypatch.setitem(BACKEND_TABLE, name, replaced(name, build=counted))
    engine, report = build_engine(model, FP32_AUTO, height=H, width=W)
    assert engine.backend == 'onnxruntime' and builds == ['onnxruntime', 'eager']
    assert report.notes[0] == (
        'chosen by measurement: onnxruntime fp32 at 5.0 ms; next eager fp32 at 9.0 ms'
    )
    assert report.notes[1].startswith('choice remembered in ')
    builds.clear()
    engine, report = build_engine(model, FP32_AUTO, height=H, width=W)
    assert engine.backend == 'onnxruntime' and builds == ['onnxruntime']  # the winner only
    assert report.notes[0].startswith('chosen by an earlier measurement: ')
    speed['onnxruntime'] = 20.0  # another shape is another measurement
    engine, _ = build_engine(model, FP32_AUTO, height=H, width=2 * W)
    assert engine.backend == 'eager'


def test_a_remembered_winner_that_fails_is_measured_again(
    model: MFARANet, monkeypatch: pytest.MonkeyPatch, replaced: Replaced
) -> None:
    for name in ('torch-compile', 'openvino'):
        monkeypatch.setitem(BACKEND_TABLE, name, _failing(replaced, name, EngineUnavailable('-')))
    monkeypatch.setattr(build, 'time_calls', lambda engine, *a: 1.0)
    first, _ = build_engine(model, FP32_AUTO, height=H, width=W)
    assert first.backend == 'onnxruntime'  # the first of equals
    monkeypatch.setitem(
        BACKEND_TABLE, 'onnxruntime', _failing(replaced, 'onnxruntime', EngineUnavailable('gone'))
    )
    engine, report = build_engine(model, FP32_AUTO, height=H, width=W)
    assert engine.backend == 'eager' and report.notes[0].startswith('chosen by measurement')


def test_strict_auto_raises_on_a_failed_build_but_skips_unavailable(
    model: MFARANet, monkeypatch: pytest.MonkeyPatch, replaced: Replaced
) -> None:
    monkeypatch.setitem(
        BACKEND_TABLE,
        'torch-compile',
        _failing(replaced, 'torch-compile', EngineUnavailable('absent')),
    )
    monkeypatch.setitem(
        BACKEND_TABLE, 'onnxruntime', _failing(replaced, 'onnxruntime', RuntimeError('bad'))
    )
    config = replace(FP32_AUTO, strict=True)
    with pytest.raises(EngineBuildError, match='onnxruntime fp32 build failed: RuntimeError: bad'):
        build_engine(model, config, height=H, width=W)


def test_auto_refuses_a_wrong_engine_and_uses_the_next(
    model: MFARANet, broken: MFARANet, monkeypatch: pytest.MonkeyPatch, replaced: Replaced
) -> None:
    """A broken build is refused; eager from the reference weights is what runs."""
    wrong = BACKEND_TABLE['onnxruntime']

    def wrong_weights(graph: torch.nn.Module, example: torch.Tensor, options: object) -> object:
        broken_graph = frame_graph(deploy_model(broken, fold_bn=True))
        return wrong.build(broken_graph, example, options)  # type: ignore[arg-type]

    monkeypatch.setitem(
        BACKEND_TABLE,
        'onnxruntime',
        replaced('onnxruntime', build=wrong_weights),
    )
    for name in ('torch-compile', 'openvino'):
        monkeypatch.setitem(
            BACKEND_TABLE,
            name,
            _failing(replaced, name, EngineUnavailable('skipped in this test')),
        )
    engine, report = build_engine(model, FP32_AUTO, height=H, width=W)
    assert engine.backend == 'eager'
    assert report.attempts[0].backend == 'torch-compile fp32' and not report.attempts[0].ok
    assert 'refused by the parity gate' in report.attempts[2].reason


def test_tensorrt_is_unavailable_on_a_cpu(model: MFARANet) -> None:
    config = EngineConfig(
        backend='tensorrt', device='cpu', precision='fp32', build_if_missing=True
    )
    with pytest.raises(EngineUnavailable, match='TensorRT needs a CUDA device'):
        build_engine(model, config, height=H, width=W)


def test_frame_shape_is_checked_before_building(model: MFARANet) -> None:
    config = EngineConfig(backend='eager', device='cpu', precision='fp32', dynamic=True)
    with pytest.raises(ValueError, match='multiples of 32, got 70x96'):
        build_engine(model, config, height=70, width=96)


def test_eager_artifact_is_exported_then_loaded(model: MFARANet, tmp_path: Path) -> None:
    config = EngineConfig(backend='eager', device='cpu', precision='fp32', strict=True)
    path, report = export_engine(model, config, tmp_path, height=H, width=W)
    assert path.suffix == '.pt2' and path.with_suffix('.json').is_file()
    assert report.parity['passed'] and report.artifact == str(path)
    loaded = replace(config, artifact_dir=str(tmp_path))
    engine, report = build_engine(model, loaded, height=H, width=W)
    assert report.notes == [f'loaded {path.name}'] and report.parity['passed']
    masks = engine(torch.zeros(1, H, W, 3, dtype=torch.uint8))
    assert masks.shape == (1, H, W) and masks.dtype == torch.uint8


def test_missing_artifact_is_built_and_saved_when_allowed(model: MFARANet, tmp_path: Path) -> None:
    config = EngineConfig(
        backend='onnxruntime',
        device='cpu',
        strict=True,
        artifact_dir=str(tmp_path),
        build_if_missing=True,
    )
    _, report = build_engine(model, config, height=H, width=W)
    assert report.notes[0].startswith('built and saved onnxruntime-b1-64x96-fp32-')
    assert sorted(p.suffix for p in tmp_path.iterdir()) == ['.json', '.onnx']
