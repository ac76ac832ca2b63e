"""openvino backend: fp32 and INT8 IR artifacts, reloading, the calibration key, refusals."""

from __future__ import annotations

from dataclasses import replace
import json
from pathlib import Path
import sys
from typing import Any

import numpy as np
import pytest
import torch

from segnode.config import EngineConfig
from segnode.engine import choice
from segnode.engine import openvino as ov_backend
from segnode.engine.backends import BACKEND_TABLE
from segnode.engine.base import BuildOptions
from segnode.engine.build import build_engine, export_engine
from segnode.engine.segmenter import Segmenter
from segnode.errors import EngineBuildError, EngineUnavailable
from segnode.model import MFARANet
from segnode.synthetic import synthetic_street

H, W = 64, 96
CPU = torch.device('cpu')
OV = EngineConfig(backend='openvino', device='cpu', precision='fp32', strict=True)
INT8 = replace(OV, precision='int8')
needs_openvino = pytest.mark.skipif(
    not ov_backend.version(), reason='openvino is not installed (pip install segnode[openvino])'
)


def _calibration(seeds: range) -> torch.Tensor:
    return torch.from_numpy(np.stack([synthetic_street(H, W, seed=s) for s in seeds]))


@pytest.fixture(scope='module')
def fp32(model: MFARANet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, report = export_engine(model, OV, tmp_path_factory.mktemp('ov'), height=H, width=W)
    assert report.parity['passed']
    return path


@pytest.fixture(scope='module')
def int8(model: MFARANet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip('nncf', reason='nncf is not installed (pip install segnode[openvino])')
    out = tmp_path_factory.mktemp('ov8')
    path, report = export_engine(model, replace(INT8, parity_gate=False), out, height=H,
                                 width=W, calibration=_calibration(range(4)))  # fmt: skip
    assert report.precision == 'int8'
    return path


@needs_openvino
def test_export_writes_the_ir_its_weights_and_manifest(fp32: Path) -> None:
    assert fp32.suffix == '.xml' and fp32.name.startswith('openvino-b1-64x96-fp32-')
    assert sorted(p.suffix for p in fp32.parent.iterdir()) == ['.bin', '.json', '.xml']
    manifest = json.loads(fp32.with_suffix('.json').read_text())
    assert manifest['key']['openvino'] == ov_backend.version()
    assert 'calibration' not in manifest['key']
    assert manifest['parity']['passed'] and manifest['parity']['agreement'] == 1.0


@needs_openvino
def test_segmenter_loads_the_ir_without_rebuilding(
    model: MFARANet, fp32: Path, frame: np.ndarray
) -> None:
    seg = Segmenter.build(model, replace(OV, artifact_dir=str(fp32.parent)), height=H, width=W)
    assert seg.report.notes == [f'loaded {fp32.name}']
    assert seg.report.parity['passed'] and seg.report.parity['agreement'] == 1.0
    eager = Segmenter.build(model, replace(OV, backend='eager'), height=H, width=W)
    assert np.array_equal(seg.segment(frame).mask, eager.segment(frame).mask)


@needs_openvino
def test_an_ir_without_its_weights_is_refused(fp32: Path, tmp_path: Path) -> None:
    lone = tmp_path / fp32.name
    lone.write_bytes(fp32.read_bytes())
    example = torch.zeros(1, H, W, 3, dtype=torch.uint8)
    with pytest.raises(EngineBuildError, match='has no weights file'):
        ov_backend.load(lone, BuildOptions(device=CPU), example)


@needs_openvino
def test_int8_quantises_the_encoder_but_its_first_convolution(int8: Path) -> None:
    import openvino as ov

    ops = ov.Core().read_model(str(int8)).get_ordered_ops()
    quantised = {
        target.get_node().get_friendly_name()
        for op in ops
        if op.get_type_name() == 'FakeQuantize'
        for target in op.output(0).get_target_inputs()
    }
    convs = [op.get_friendly_name() for op in ops if op.get_type_name() == 'Convolution']
    assert convs[0] not in quantised  # it sees the normalised image
    assert any(c in quantised for c in convs[1:] if ov_backend.ENCODER.match(c))
    outside = [c for c in convs if not ov_backend.ENCODER.match(c)]
    assert outside and not quantised & set(outside)  # flow, heads, ASFM stay float


@needs_openvino
def test_int8_key_records_its_calibration_and_loads_without_it(
    model: MFARANet, int8: Path, frame: np.ndarray
) -> None:
    key = json.loads(int8.with_suffix('.json').read_text())['key']
    assert key['calibration']['frames'] == 4
    assert key['calibration']['images'] == 'frames given by the caller'
    config = replace(INT8, artifact_dir=str(int8.parent), parity_gate=False)
    seg = Segmenter.build(model, config, height=H, width=W)  # no calibration frames
    assert seg.report.artifact == str(int8)
    mask = seg.segment(frame).mask
    assert mask.shape == (H, W) and mask.dtype == np.uint8


@needs_openvino
def test_int8_calibrated_on_other_frames_is_refused(model: MFARANet, int8: Path) -> None:
    config = replace(INT8, artifact_dir=str(int8.parent), parity_gate=False)
    with pytest.raises(EngineBuildError, match='refusing openvino artifact .*calibration'):
        build_engine(model, config, height=H, width=W, calibration=_calibration(range(5, 9)))


@needs_openvino
def test_int8_needs_calibration_frames(model: MFARANet) -> None:
    pytest.importorskip('nncf', reason='nncf is not installed (pip install segnode[openvino])')
    with pytest.raises(EngineUnavailable, match='int8 needs calibration frames'):
        Segmenter.build(model, INT8, height=H, width=W)


@needs_openvino
def test_a_device_this_machine_lacks_is_unavailable() -> None:
    import openvino

    if 'NPU' in openvino.Core().available_devices:
        pytest.skip('this machine has an NPU')
    with pytest.raises(EngineUnavailable, match='OpenVINO device NPU is not on this machine'):
        ov_backend.check(BuildOptions(device=CPU, openvino_device='NPU'))
    with pytest.raises(EngineUnavailable, match='engine.device must be cpu'):
        ov_backend.check(BuildOptions(device=torch.device('cuda')))


def test_missing_openvino_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, 'openvino', None)  # its import raises ImportError
    with pytest.raises(EngineUnavailable, match=r'^openvino is not installed \(pip install '
                       r'segnode\[openvino\]\)$'):  # fmt: skip
        ov_backend.check(BuildOptions(device=CPU))
    config = EngineConfig(backend='auto', device='cpu', precision='fp32')
    assert ('openvino', 'fp32') in choice.candidates(config, CPU, int8=False)  # then skipped


@needs_openvino
def test_missing_nncf_refuses_int8_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, 'nncf', None)
    ov_backend.check(BuildOptions(device=CPU))
    with pytest.raises(EngineUnavailable, match=r'^nncf is not installed \(pip install '):
        ov_backend.check(BuildOptions(device=CPU, precision='int8'))


def test_openvino_is_an_auto_candidate_for_every_cpu_precision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr('segnode.cpu.flags', lambda: {'amx_bf16'})
    pairs = choice.candidates(EngineConfig(), CPU, int8=True)
    assert [p for b, p in pairs if b == 'openvino'] == ['fp32', 'bf16', 'int8']
    without = choice.candidates(EngineConfig(), CPU, int8=False)
    assert ('openvino', 'int8') not in without


@needs_openvino
def test_an_unknown_openvino_device_is_named() -> None:
    with pytest.raises(EngineUnavailable, match='OpenVINO device cuda is not on this machine'):
        ov_backend.check(BuildOptions(device=CPU, openvino_device='cuda'))


def test_a_failed_export_leaves_no_weights_behind(
    model: MFARANet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, replaced: Any
) -> None:
    def half_written(graph: object, example: object, path: Path, options: object) -> None:
        path.write_bytes(b'<net/>')
        path.with_suffix('.bin').write_bytes(b'partial')
        raise RuntimeError('disk full')

    stand_in = replaced('openvino', export=half_written, check=lambda options: None)
    monkeypatch.setitem(BACKEND_TABLE, 'openvino', stand_in)
    with pytest.raises(RuntimeError, match='disk full'):
        export_engine(model, OV, tmp_path, height=H, width=W)
    assert list(tmp_path.iterdir()) == []


@needs_openvino
def test_a_dynamic_engine_runs_other_sizes_as_eager_does(model: MFARANet) -> None:
    seg = Segmenter.build(model, replace(OV, dynamic=True), height=H, width=W)
    eager = Segmenter.build(model, replace(OV, backend='eager', dynamic=True), height=H, width=W)
    frame = synthetic_street(128, 160, seed=1)
    assert np.array_equal(seg.segment(frame).mask, eager.segment(frame).mask)
