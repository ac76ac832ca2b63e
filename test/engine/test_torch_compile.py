"""torch.compile backend on a CPU (Inductor, channels_last, frozen weights).

Compiling costs tens of seconds on two cores, so one module-scoped engine serves the fast
tests; the full build with the parity gate is marked slow.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.profiler import profile

from segnode.config import EngineConfig
from segnode.engine.segmenter import Segmenter
from segnode.model import MFARANet
from segnode.synthetic import synthetic_street

H, W = 64, 96


@pytest.fixture(scope='module')
def compiled(model: MFARANet) -> Segmenter:
    config = EngineConfig(
        backend='torch-compile', device='cpu', precision='fp32', strict=True, parity_gate=False
    )
    return Segmenter.build(model, config, height=H, width=W)


@pytest.fixture(scope='module')
def eager(model: MFARANet) -> Segmenter:
    return Segmenter.build(
        model, EngineConfig(backend='eager', device='cpu', precision='fp32'), height=H, width=W
    )


def test_compiled_masks_match_eager(compiled: Segmenter, eager: Segmenter) -> None:
    assert compiled.engine.backend == 'torch-compile'
    for seed in (0, 1):
        frame = synthetic_street(H, W, seed=seed)
        got, want = compiled.segment(frame).mask, eager.segment(frame).mask
        assert got.dtype == np.uint8 and got.shape == (H, W)
        assert (got == want).mean() >= 0.999


def test_compiled_weights_are_frozen_and_prepacked(compiled: Segmenter) -> None:
    """Freezing must reach Inductor: every convolution runs oneDNN's pre-packed kernel."""
    frames = torch.from_numpy(synthetic_street(H, W, seed=0)[None].copy())
    with profile() as prof:
        compiled.engine(frames)
    ops = {e.key: e.count for e in prof.key_averages()}
    assert ops.get('mkldnn::_convolution_pointwise', 0) > 0
    assert 'aten::convolution' not in ops  # no unpacked convolution left


@pytest.mark.slow
def test_compiled_build_passes_the_gate(model: MFARANet) -> None:
    config = EngineConfig(backend='torch-compile', device='cpu', precision='fp32', strict=True)
    seg = Segmenter.build(model, config, height=H, width=W)
    assert seg.report.parity['passed'] and seg.report.parity['confident_flips'] == 0
