"""Building an engine copies the model once per graph it compiles, never more."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from segnode.config import EngineConfig
from segnode.engine.segmenter import Segmenter
from segnode.model.mfaranet import build_mfaranet, MFARANet


def test_an_eager_build_with_its_gate_copies_the_model_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = build_mfaranet(num_classes=3, width=16).eval()
    deepcopy, copies = copy.deepcopy, []

    def counting(x: Any, memo: Any = None, _nil: Any = ()) -> Any:
        if isinstance(x, MFARANet):
            copies.append(x)
        return deepcopy(x, memo)

    monkeypatch.setattr(copy, 'deepcopy', counting)
    config = EngineConfig(backend='eager', device='cpu', precision='fp32', parity_frames=2)
    Segmenter.build(model, config, height=64, width=96)
    # The engine's graph (a folded deployment copy) and the gate's fp32 reference (moved to the
    # device without touching the caller's model). The gate compares masks only, so no second
    # (logits) engine is built; each graph used to be copied twice (deploy_model, FrameToMask).
    assert len(copies) == 2
