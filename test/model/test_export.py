"""Export readiness: the folded frame graph exports (static and dynamic H/W) and converts."""

from __future__ import annotations

import pytest
import torch

from segnode.engine.graph import export_program
from segnode.engine.tensorrt.lowering import unconverted_ops
from segnode.model import build_mfaranet
from segnode.model.deploy import FrameToMask
from segnode.model.equalizer_stats import measure_equalizers
from segnode.model.fold import fold_equalizers


@pytest.fixture(scope='module')
def graph() -> FrameToMask:
    torch.manual_seed(0)
    model = build_mfaranet(num_classes=11)
    measure_equalizers(model, [torch.randn(2, 3, 64, 96) for _ in range(2)])
    return FrameToMask(fold_equalizers(model))


def export_graph(
    graph: FrameToMask, height: int, width: int, *, dynamic: bool = False
) -> torch.export.ExportedProgram:
    example = torch.zeros(1, height, width, 3, dtype=torch.uint8)
    return export_program(graph, example, dynamic=dynamic)


def _frames(h: int, w: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, h, w, 3), dtype=torch.uint8, generator=gen)


def test_frame_graph_maps_uint8_frames_to_uint8_masks(graph: FrameToMask) -> None:
    with torch.no_grad():
        mask = graph(_frames(70, 99, 0))
    assert mask.dtype == torch.uint8 and mask.shape == (1, 70, 99)
    assert int(mask.max()) < 11


def test_dynamic_export_matches_eager_at_three_resolutions(graph: FrameToMask) -> None:
    program = export_graph(graph, 128, 192, dynamic=True)
    module = program.module()
    with torch.no_grad():
        for seed, (h, w) in enumerate([(128, 192), (96, 320), (224, 160)]):
            frames = _frames(h, w, seed)
            assert torch.equal(module(frames), graph(frames)), (h, w)


def test_static_export_matches_eager(graph: FrameToMask) -> None:
    frames = _frames(96, 128, 7)
    program = export_graph(graph, 96, 128)
    with torch.no_grad():
        assert torch.equal(program.module()(frames), graph(frames))


def test_dynamic_export_needs_multiples_of_32(graph: FrameToMask) -> None:
    with pytest.raises(ValueError, match='multiples of 32'):
        export_graph(graph, 100, 128, dynamic=True)


def test_no_graph_breaks(graph: FrameToMask) -> None:
    explanation = torch._dynamo.explain(graph)(_frames(64, 96, 1))
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


@pytest.mark.parametrize('dynamic', [False, True])
def test_every_op_has_a_torch_tensorrt_converter(graph: FrameToMask, dynamic: bool) -> None:
    trt_graph = FrameToMask(graph.model, mask_dtype=torch.int32)
    assert unconverted_ops(export_graph(trt_graph, 128, 192, dynamic=dynamic)) == {}


def test_uint8_cast_is_the_one_op_left_outside_an_engine(graph: FrameToMask) -> None:
    # why the TensorRT path ends the engine in int32 (Torch-TensorRT 2.13 _to_copy validator)
    assert unconverted_ops(export_graph(graph, 64, 96)) == {'aten._to_copy.default': 1}


def test_logits_graph_is_the_mask_graph_before_the_argmax(graph: FrameToMask) -> None:
    frames = _frames(64, 96, 5)
    logits_graph = FrameToMask(graph.model, logits=True)
    with torch.no_grad():
        logits = logits_graph(frames)
        assert logits.shape == (1, 11, 64, 96)
        assert torch.equal(logits.argmax(dim=1).to(torch.uint8), graph(frames))


def test_bgr_and_fixed_input_size_variants(graph: FrameToMask) -> None:
    rgb = _frames(64, 96, 3)
    bgr_graph = FrameToMask(graph.model, bgr=True)
    sized = FrameToMask(graph.model, input_size=(64, 64))
    with torch.no_grad():
        assert torch.equal(bgr_graph(rgb.flip(-1)), graph(rgb))
        assert sized(_frames(100, 150, 4)).shape == (1, 100, 150)
