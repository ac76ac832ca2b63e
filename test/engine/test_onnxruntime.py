"""onnxruntime backend: export, artifacts, parity at another resolution, refusals."""

from __future__ import annotations

from dataclasses import replace
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from segnode.config import EngineConfig
from segnode.engine import onnxruntime as onnx_backend
from segnode.engine.backends import BACKEND_TABLE
from segnode.engine.base import BuildOptions
from segnode.engine.build import export_engine
from segnode.engine.parity import check_parity, GateThresholds, prepare_reference
from segnode.engine.segmenter import Segmenter
from segnode.errors import EngineBuildError, EngineUnavailable
from segnode.model import MFARANet
from segnode.synthetic import synthetic_street

H, W = 64, 96
ORT = EngineConfig(
    backend='onnxruntime', device='cpu', precision='fp32', strict=True, dynamic=True
)


@pytest.fixture(scope='module')
def exported(model: MFARANet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp('onnx')
    path, report = export_engine(model, ORT, out, height=H, width=W)
    assert report.parity['passed']
    return path


def test_export_writes_the_model_and_its_manifest(exported: Path) -> None:
    assert exported.suffix == '.onnx' and exported.name.startswith('onnxruntime-b1-64x96-dyn')
    manifest = json.loads(exported.with_suffix('.json').read_text())
    assert manifest['artifact'] == exported.name
    assert manifest['key']['opset'] == 17 and manifest['key']['dynamic'] is True
    assert manifest['key']['checkpoint_sha256'].startswith('weights:')
    assert manifest['parity']['passed'] and manifest['parity']['agreement'] == 1.0
    assert sorted(p.suffix for p in exported.parent.iterdir()) == ['.json', '.onnx']


def test_opset_17_graph_maps_uint8_to_uint8(exported: Path) -> None:
    import onnx

    model = onnx.load(str(exported))
    assert [o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')] == [17]
    ops = {node.op_type for node in model.graph.node}
    assert {'GridSample', 'ArgMax', 'Resize'} <= ops
    elem = model.graph.input[0].type.tensor_type.elem_type
    assert elem == onnx.TensorProto.UINT8
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8


@pytest.mark.parametrize(('h', 'w'), [(96, 128), (128, 64)])
def test_parity_at_a_resolution_other_than_the_exported_one(
    model: MFARANet, exported: Path, tmp_path: Path, h: int, w: int
) -> None:
    options = BuildOptions(device=torch.device('cpu'))
    example = torch.zeros(1, H, W, 3, dtype=torch.uint8)
    masks = onnx_backend.load(exported, options, example)
    reference = prepare_reference(model, 2, h, w)
    result = check_parity(
        masks, reference, batch=1, device=torch.device('cpu'), thresholds=GateThresholds()
    )
    # the same masks but where the top two fp32 logits tie to rounding: onnxruntime and torch
    # sum in other orders, and the order changes with the thread count (OMP_NUM_THREADS=1 gave
    # one flipped pixel at a margin of 3e-7)
    assert result.passed and result.largest_flip_margin < 1e-5, result.describe()


def test_segmenter_loads_the_artifact_without_rebuilding(
    model: MFARANet, exported: Path, frame: np.ndarray
) -> None:
    config = replace(ORT, artifact_dir=str(exported.parent))
    seg = Segmenter.build(model, config, height=H, width=W)
    assert seg.report.artifact == str(exported)
    assert seg.report.notes == [f'loaded {exported.name}']
    assert seg.report.parity['passed'] and seg.report.parity['agreement'] == 1.0
    assert seg.report.parity['export_time']['passed']  # the gate at export, in the manifest
    assert seg.segment(frame).mask.shape == (H, W)
    other = seg.segment(synthetic_street(128, 160, seed=8)).mask  # dynamic H and W
    assert other.shape == (128, 160) and other.dtype == np.uint8


def test_mismatching_artifact_is_refused_naming_what_differs(
    model: MFARANet, exported: Path
) -> None:
    config = replace(ORT, artifact_dir=str(exported.parent), bgr=True)
    message = 'refusing onnxruntime artifact .*bgr: artifact False, wanted True'
    with pytest.raises(EngineBuildError, match=message):
        Segmenter.build(model, config, height=H, width=W)


def test_failed_export_leaves_nothing_behind(
    model: MFARANet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, replaced: Any
) -> None:
    def half_written(graph: object, example: object, path: Path, options: object) -> None:
        path.write_bytes(b'partial')
        raise RuntimeError('disk full')

    monkeypatch.setitem(
        BACKEND_TABLE,
        'onnxruntime',
        replaced('onnxruntime', export=half_written),
    )
    with pytest.raises(RuntimeError, match='disk full'):
        export_engine(model, ORT, tmp_path, height=H, width=W)
    assert list(tmp_path.iterdir()) == []


def test_reduced_precision_is_refused_on_onnxruntime(model: MFARANet) -> None:
    config = EngineConfig(backend='onnxruntime', device='cpu', precision='bf16', strict=True)
    with pytest.raises(EngineUnavailable, match='onnxruntime backend runs fp32 or int8, not bf16'):
        Segmenter.build(model, config, height=H, width=W)


def test_int8_quantises_the_encoder_and_runs(
    model: MFARANet, frame: np.ndarray, tmp_path: Path
) -> None:
    import onnx

    calibration = torch.from_numpy(np.stack([synthetic_street(H, W, seed=s) for s in range(4)]))
    config = EngineConfig(
        backend='onnxruntime', device='cpu', precision='int8', strict=True, parity_gate=False
    )
    path, report = export_engine(model, config, tmp_path, height=H, width=W,
                                 calibration=calibration)  # fmt: skip
    graph = onnx.load(str(path)).graph
    dequantised = {n.output[0] for n in graph.node if n.op_type == 'DequantizeLinear'}
    convs = [n for n in graph.node if n.op_type == 'Conv']
    assert report.precision == 'int8' and dequantised
    assert convs[0].input[1] not in dequantised  # the first convolution keeps fp32 weights
    assert any(c.input[1] in dequantised for c in convs[1:])
    seg = Segmenter.build(model, replace(config, artifact_dir=str(tmp_path)), height=H, width=W)
    mask = seg.segment(frame).mask  # loaded without calibration frames
    assert mask.shape == (H, W) and mask.dtype == np.uint8


def test_int8_needs_calibration_frames(model: MFARANet) -> None:
    config = EngineConfig(backend='onnxruntime', device='cpu', precision='int8', strict=True)
    with pytest.raises(EngineUnavailable, match='int8 needs calibration frames'):
        Segmenter.build(model, config, height=H, width=W)
