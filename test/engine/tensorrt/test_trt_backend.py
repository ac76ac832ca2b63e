"""TensorRT backend: the precision switch and the converter check on a CPU; builds on a GPU.

The ``gpu`` tests need CUDA and torch_tensorrt and skip with the reason where either is
missing. They build strictly (``pass_through_build_failures``), check parity against eager
fp32, that an fp16 engine really runs fp16 layers, that an exported engine is loaded without a
rebuild, and that a mismatching artifact is refused.
"""

from __future__ import annotations

from pathlib import Path
import sys
from typing import Any

import numpy as np
import pytest
import torch

from segnode.config import EngineConfig
from segnode.engine.graph import deploy_model, export_program, frame_graph
from segnode.engine.tensorrt.backend import (
    compile_settings,
    import_torch_tensorrt,
)
from segnode.engine.tensorrt.lowering import unconverted_ops
from segnode.errors import EngineBuildError, EngineUnavailable
from segnode.model import MFARANet

H, W = 64, 96


@pytest.mark.parametrize(
    ('options', 'dynamic'),
    [({}, False), ({}, True), ({'bgr': True, 'input_size': (64, 64)}, False)],
)
def test_the_graphs_the_backend_compiles_convert_completely(
    model: MFARANet, options: dict[str, object], dynamic: bool
) -> None:
    deployed = deploy_model(model, fold_bn=True)
    example = torch.zeros(1, 128, 192, 3, dtype=torch.uint8)
    # the engine, the gate's logits build, and the engine with the confidence output
    for logits, confidence in ((False, False), (True, False), (False, True)):
        kwargs: dict[str, Any] = dict(options)
        graph = frame_graph(
            deployed, logits=logits, confidence=confidence, mask_dtype=torch.int32, **kwargs
        )
        program = export_program(graph, example, dynamic=dynamic)
        assert unconverted_ops(program) == {}, (options, logits, confidence)


def test_precision_api_of_2_9_and_later_is_strongly_typed() -> None:
    dtype, kwargs = compile_settings('2.13.0+cu130', 'fp16', strict=True)
    assert dtype == torch.float16
    assert 'enabled_precisions' not in kwargs and 'enable_autocast' not in kwargs
    assert kwargs['pass_through_build_failures'] and kwargs['require_full_compilation']
    dtype, kwargs = compile_settings('2.13.0', 'bf16', strict=False)
    assert dtype == torch.float32 and kwargs['enable_autocast']
    assert kwargs['autocast_low_precision_type'] == torch.bfloat16
    assert torch.ops.aten.grid_sampler_2d.default in kwargs['autocast_excluded_ops']
    assert compile_settings('2.13.0', 'int8', strict=False)[1]['min_block_size'] == 1


def test_precision_api_of_2_8_takes_enabled_precisions() -> None:
    dtype, kwargs = compile_settings('2.8.0', 'fp16', strict=False)
    assert dtype == torch.float32
    assert kwargs['enabled_precisions'] == {torch.float32, torch.float16}
    assert kwargs['use_explicit_typing'] is False
    assert compile_settings('2.8.0', 'fp32', strict=False)[0] == torch.float32


def test_missing_torch_tensorrt_has_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, 'torch_tensorrt', None)
    with pytest.raises(EngineUnavailable, match='torch_tensorrt is not installed: install'):
        import_torch_tensorrt()


def test_missing_engine_says_how_to_build_it(model: MFARANet, tmp_path: Path) -> None:
    from segnode.engine import build
    from segnode.engine.backends import BACKEND_TABLE
    from segnode.engine.base import BuildOptions
    from segnode.engine.job import Job

    job = Job(model, model, EngineConfig(), 2, 720, 1280, 'x', None)
    options = BuildOptions(device=torch.device('cpu'), precision='fp16')
    message = build._missing(job, BACKEND_TABLE['tensorrt'], options, str(tmp_path))
    assert message.startswith(f'no TensorRT engine for 2x720x1280 fp16 in {tmp_path}')
    assert '--confidence' not in message
    job = Job(model, model, EngineConfig(confidence=True), 2, 720, 1280, 'x', None)
    message = build._missing(job, BACKEND_TABLE['tensorrt'], options, str(tmp_path))
    assert '--precision fp16 --confidence --out' in message
    assert '--backend tensorrt --size 720 1280 --batch 2 --precision fp16' in message


def _gpu() -> None:
    pytest.importorskip('torch_tensorrt', reason='torch_tensorrt is not installed')
    if not torch.cuda.is_available():
        pytest.skip('no CUDA device')


@pytest.fixture(scope='module')
def trt_export(model: MFARANet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    _gpu()
    from segnode.engine.build import export_engine

    out = tmp_path_factory.mktemp('trt')
    config = EngineConfig(backend='tensorrt', device='cuda', precision='fp16', strict=True)
    path, report = export_engine(model, config, out, height=128, width=192)
    assert report.parity['passed'], report.parity
    return path


@pytest.mark.gpu
@pytest.mark.parametrize('precision', ['fp32', 'fp16'])
def test_strict_build_passes_the_gate(model: MFARANet, precision: str) -> None:
    _gpu()
    from segnode.engine.build import build_engine

    config = EngineConfig(
        backend='tensorrt', device='cuda', precision=precision, strict=True, build_if_missing=True
    )
    engine, report = build_engine(model, config, height=128, width=192)
    assert report.parity['agreement'] >= 0.999 and report.parity['confident_flips'] == 0
    frames = torch.zeros(1, 128, 192, 3, dtype=torch.uint8, device='cuda')
    masks = engine(frames)
    assert masks.dtype == torch.uint8 and masks.shape == (1, 128, 192) and masks.is_cuda
    info = engine_layer_info(engine.runner)
    if precision == 'fp16':  # 2.13 ignores enabled_precisions: check it really is fp16
        assert 'Half' in info or 'FP16' in info.upper(), info[:2000]


@pytest.mark.gpu
def test_confidence_output_passes_the_gate(model: MFARANet) -> None:
    _gpu()
    from segnode.engine.build import build_engine

    config = EngineConfig(backend='tensorrt', device='cuda', precision='fp32', strict=True,
                          build_if_missing=True, confidence=True)  # fmt: skip
    engine, report = build_engine(model, config, height=128, width=192)
    assert report.parity['passed'] and report.parity['confidence_p99'] <= 1
    frames = torch.zeros(1, 128, 192, 3, dtype=torch.uint8, device='cuda')
    masks, confidences = engine.outputs(frames)
    assert confidences is not None and confidences.is_cuda
    assert masks.dtype == confidences.dtype == torch.uint8  # int32 graph, cast on the device
    assert confidences.shape == (1, 128, 192) and int(confidences.min()) >= round(255 / 11)


@pytest.mark.gpu
def test_exported_engine_loads_without_rebuilding(
    model: MFARANet, trt_export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segnode.engine.segmenter import Segmenter
    from segnode.engine.tensorrt import backend as trt

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError('the engine was rebuilt')

    monkeypatch.setattr(trt, 'compile_trt', no_build)
    config = EngineConfig(
        backend='tensorrt', device='cuda', precision='fp16', artifact_dir=str(trt_export.parent)
    )
    seg = Segmenter.build(model, config, height=128, width=192)
    assert seg.report.notes == [f'loaded {trt_export.name}']
    frame = np.random.default_rng(0).integers(0, 256, (128, 192, 3), dtype=np.uint8)
    result = seg.segment(frame)
    assert result.mask.shape == (128, 192) and result.mask.dtype == np.uint8
    assert result.timings.infer_ms > 0


@pytest.mark.gpu
def test_mismatching_engine_is_refused(model: MFARANet, trt_export: Path) -> None:
    from segnode.engine.segmenter import Segmenter

    config = EngineConfig(
        backend='tensorrt', device='cuda', precision='fp32', artifact_dir=str(trt_export.parent)
    )
    with pytest.raises(EngineBuildError, match="precision: artifact 'fp16', wanted 'fp32'"):
        Segmenter.build(model, config, height=128, width=192)


@pytest.mark.gpu
def test_dynamic_engine_runs_other_resolutions(model: MFARANet) -> None:
    _gpu()
    from segnode.engine.build import build_engine

    config = EngineConfig(
        backend='tensorrt',
        device='cuda',
        precision='fp16',
        dynamic=True,
        max_side=512,
        strict=True,
        build_if_missing=True,
    )
    engine, _ = build_engine(model, config, height=128, width=192)
    for h, w in [(128, 192), (96, 320)]:
        masks = engine(torch.zeros(1, h, w, 3, dtype=torch.uint8, device='cuda'))
        assert masks.shape == (1, h, w)


def engine_layer_info(runner: Any) -> str:
    """The TensorRT layer descriptions of every engine inside a built runner (JSON text)."""
    module = getattr(runner, 'module', runner)
    infos = []
    for sub in module.modules() if isinstance(module, torch.nn.Module) else []:
        get = getattr(sub, 'get_layer_info', None)
        if callable(get):
            infos.append(str(get()))
    return '\n'.join(infos)
