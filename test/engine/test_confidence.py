"""The confidence output: the graph's second output, every CPU backend, the key and the gate.

TensorRT cannot run here: its graph is checked to convert completely (no PyTorch fallback) in
test/engine/tensorrt/test_trt_backend.py, and its build is a ``gpu`` test there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from segnode.config import EngineConfig
from segnode.engine.artifacts import artifact_key
from segnode.engine.base import Engine
from segnode.engine.build import build_engine, export_engine
from segnode.engine.graph import deploy_model, frame_graph
from segnode.engine.parity import check_parity, GateThresholds, Reference
from segnode.engine.segmenter import Segmenter
from segnode.errors import ConfigError, EngineBuildError
from segnode.model import MFARANet
from segnode.model.deploy import confidence_levels
from segnode.synthetic import synthetic_street

H, W = 64, 96
CPU = torch.device('cpu')


def _frames(count: int = 2) -> torch.Tensor:
    return torch.from_numpy(np.stack([synthetic_street(H, W, seed=i) for i in range(count)]))


def _expected(model: MFARANet, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Classes and 255 x the winning softmax probability, from eager fp32 logits by hand."""
    graph = frame_graph(deploy_model(model, fold_bn=True), logits=True)
    with torch.inference_mode():
        logits = graph(frames)
    probabilities = torch.softmax(logits.double(), dim=1)
    return logits.argmax(1), (probabilities.amax(1) * 255).round()


def test_confidence_levels_by_hand() -> None:
    logits = torch.zeros(1, 4, 1, 3)
    logits[0, 2, 0, 1] = 100.0  # certain
    logits[0, :, 0, 2] = torch.tensor([0.0, 0.0, 2.0, 0.0])  # e^2 / (e^2 + 3)
    levels = confidence_levels(logits)
    expected = [round(255 / 4), 255, round(255 * np.exp(2) / (np.exp(2) + 3))]
    assert levels.flatten().tolist() == expected


def test_the_graph_returns_masks_and_confidence(model: MFARANet) -> None:
    frames = _frames()
    classes, confidence = _expected(model, frames)
    deployed = deploy_model(model, fold_bn=True)
    plain = frame_graph(deployed)
    with_conf = frame_graph(deployed, confidence=True)
    with torch.inference_mode():
        masks = plain(frames)
        both = with_conf(frames)
    assert isinstance(masks, torch.Tensor)  # off: the mask graph, one output
    assert isinstance(both, tuple) and len(both) == 2
    assert both[0].dtype == both[1].dtype == torch.uint8
    assert torch.equal(both[0], masks) and torch.equal(masks.long(), classes)
    assert (both[1].double() - confidence).abs().max() <= 1  # rounding at a .5 boundary
    assert int(both[1].min()) >= round(255 / 11)  # at least 1/K
    int32 = frame_graph(deployed, confidence=True, mask_dtype=torch.int32)  # TensorRT's
    with torch.inference_mode():
        masks32, conf32 = int32(frames)
    assert conf32.dtype == torch.int32 and torch.equal(conf32.to(torch.uint8), both[1])


@pytest.mark.parametrize('backend', ['eager', 'onnxruntime'])
def test_backends_confidence_matches_eager_fp32(model: MFARANet, backend: str) -> None:
    frames = _frames()
    classes, confidence = _expected(model, frames)
    config = EngineConfig(backend=backend, device='cpu', precision='fp32', strict=True,
                          confidence=True, parity_frames=2)  # fmt: skip
    engine, report = build_engine(model, config, height=H, width=W)
    assert engine.confidence and report.parity['passed']
    assert report.parity['confidence_p99'] <= 1 and report.parity['confidence_max'] <= 1
    for i in range(len(frames)):
        masks, conf = engine.outputs(frames[i : i + 1])
        assert conf is not None and conf.dtype == torch.uint8 and conf.shape == (1, H, W)
        assert torch.equal(masks[0].long(), classes[i])
        assert (conf[0].double() - confidence[i]).abs().max() <= 1


def test_torch_compile_confidence(model: MFARANet) -> None:
    frames = _frames(1)
    _, confidence = _expected(model, frames)
    config = EngineConfig(backend='torch-compile', device='cpu', precision='fp32', strict=True,
                          confidence=True, parity_frames=1)  # fmt: skip
    seg = Segmenter.build(model, config, height=H, width=W)
    result = seg.segment(frames[0].numpy())
    assert result.confidences is not None and result.confidences.shape == (1, H, W)
    assert np.abs(result.confidences[0] - confidence[0].numpy()).max() <= 1
    assert seg.report.parity['confidence_p99'] <= 1


def test_the_segmenter_hands_out_confidence_only_when_built_with_it(model: MFARANet) -> None:
    frame = synthetic_street(H, W, seed=5)
    on = Segmenter.build(model, EngineConfig(backend='eager', device='cpu', precision='fp32',
                                             confidence=True), height=H, width=W)  # fmt: skip
    off = Segmenter.build(model, EngineConfig(backend='eager', device='cpu', precision='fp32'),
                          height=H, width=W)  # fmt: skip
    a, b = on.segment(frame), off.segment(frame)
    assert b.confidences is None and a.confidences is not None
    assert a.confidences.dtype == np.uint8 and a.confidences.shape == a.masks.shape
    np.testing.assert_array_equal(a.masks, b.masks)


def test_confidence_is_in_the_key_only_when_on() -> None:
    fields: dict[str, Any] = {
        'backend': 'onnxruntime', 'checkpoint_sha256': 'x', 'batch': 1, 'height': H,
        'width': W, 'dynamic': False, 'max_side': 2048, 'input_size': None, 'bgr': False,
        'precision': 'fp32', 'device': CPU,
    }  # fmt: skip
    off, on = artifact_key(**fields), artifact_key(**fields, confidence=True)
    assert 'confidence' not in off  # an engine without it keeps the key it always had
    assert artifact_key(**fields, confidence=False) == off
    assert on == {**off, 'confidence': True}


def test_an_exported_confidence_model_has_two_outputs_and_its_own_file(
    model: MFARANet, tmp_path: Path
) -> None:
    import onnx

    base = EngineConfig(backend='onnxruntime', device='cpu', precision='fp32', strict=True)
    plain, _ = export_engine(model, base, tmp_path, height=H, width=W)
    conf_config = EngineConfig(**{**vars(base), 'confidence': True})
    with_conf, report = export_engine(model, conf_config, tmp_path, height=H, width=W)
    assert plain != with_conf and '-conf-' in with_conf.name and '-conf' not in plain.name
    assert [o.name for o in onnx.load(str(plain)).graph.output] == ['out']
    outputs = onnx.load(str(with_conf)).graph.output
    assert [o.name for o in outputs] == ['out', 'confidence']
    assert outputs[1].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert report.parity['confidence_p99'] is not None
    # loading it again: the key matches, the engine is gated on its confidence again
    loaded, again = build_engine(
        model, EngineConfig(**{**vars(conf_config), 'artifact_dir': str(tmp_path)}),
        height=H, width=W,
    )  # fmt: skip
    assert loaded.confidence and again.artifact == str(with_conf)
    assert again.parity['confidence_p99'] <= 1


def _reference(confidences: torch.Tensor) -> Reference:
    masks = torch.zeros(2, 8, 10, dtype=torch.long)
    margins = torch.full((2, 8, 10), 3.0)
    frames = torch.zeros(2, 8, 10, 3, dtype=torch.uint8)
    return Reference(frames, masks, margins, None, 'test', 3, confidences.to(torch.int16))


def _outputs(confidences: torch.Tensor) -> Callable[[torch.Tensor], Any]:
    calls = iter(range(len(confidences)))

    def run(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i = next(calls)
        masks = torch.zeros(1, 8, 10, dtype=torch.uint8)
        return masks, confidences[i][None].to(torch.uint8)

    return run


def test_the_gate_refuses_a_drifted_confidence() -> None:
    truth = torch.full((2, 8, 10), 200)
    ref = _reference(truth)
    gate = GateThresholds(max_confidence_diff=3)
    ok = check_parity(_outputs(truth + 1), ref, batch=1, device=CPU, thresholds=gate)
    assert ok.passed and ok.confidence_p99 == 1 and ok.confidence_max == 1
    outlier = truth.clone()
    outlier[0, 0, 0] = 255  # one pixel of 160 is under the 99th percentile
    one = check_parity(_outputs(outlier), ref, batch=1, device=CPU, thresholds=gate)
    assert one.passed and one.confidence_max == 55
    drifted = truth.clone()
    drifted[:, :2] += 10  # 25 % of the pixels, 10 levels off
    bad = check_parity(_outputs(drifted), ref, batch=1, device=CPU, thresholds=gate)
    assert not bad.passed and bad.agreement == 1.0 and bad.confidence_p99 == 10
    assert 'confidence differs by 10 grey levels at the 99th percentile (max 3' in bad.describe()


def test_a_build_whose_confidence_drifts_is_refused(
    model: MFARANet,
    replaced: Callable[..., SimpleNamespace],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from segnode.engine import eager
    from segnode.engine.backends import BACKEND_TABLE

    def drifting(graph: Any, example: torch.Tensor, options: Any) -> Any:
        runner = eager.build(graph, example, options)

        def run(frames: torch.Tensor) -> Any:
            out = runner(frames)
            if not isinstance(out, tuple):
                return out
            masks, conf = out
            return masks, (conf.int() - 8).clamp(0, 255).to(torch.uint8)

        return run

    monkeypatch.setitem(BACKEND_TABLE, 'eager', replaced('eager', build=drifting))
    config = EngineConfig(backend='eager', device='cpu', precision='fp32', confidence=True)
    with pytest.raises(EngineBuildError, match='refused by the parity gate.*confidence differs'):
        build_engine(model, config, height=H, width=W)
    # the same drift is not looked at in an engine without the confidence output
    engine, report = build_engine(
        model, EngineConfig(backend='eager', device='cpu', precision='fp32'), height=H, width=W
    )
    assert report.parity['passed'] and report.parity['confidence_p99'] is None


def test_engine_outputs_cast_int32_on_the_device() -> None:
    masks = torch.full((1, 4, 4), 3, dtype=torch.int32)
    conf = torch.full((1, 4, 4), 250, dtype=torch.int32)
    engine = Engine('tensorrt', lambda f: (masks, conf), device=CPU, precision='fp32',
                    batch=1, height=4, width=4, confidence=True)  # fmt: skip
    out_masks, out_conf = engine.outputs(torch.zeros(1, 4, 4, 3, dtype=torch.uint8))
    assert out_masks.dtype == torch.uint8 and out_conf is not None
    assert out_conf.dtype == torch.uint8 and int(out_conf[0, 0, 0]) == 250
    assert 'confidence' in repr(engine)


def test_max_confidence_diff_is_validated() -> None:
    with pytest.raises(ConfigError, match='engine.max_confidence_diff must be in 0..255'):
        EngineConfig(max_confidence_diff=300)
