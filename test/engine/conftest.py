"""Engine test fixtures: a seeded model with measured equalizers; stand-in backends."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from segnode.engine.backends import BACKEND_TABLE
from segnode.model import build_mfaranet, MFARANet
from segnode.model.equalizer_stats import measure_equalizers
from segnode.synthetic import synthetic_street

H, W = 64, 96


@pytest.fixture(scope='session')
def model() -> MFARANet:
    """Seeded 11-class MFARANet whose equalizers are measured (not identity)."""
    torch.manual_seed(0)
    net = build_mfaranet(num_classes=11)
    measure_equalizers(net, [torch.randn(2, 3, H, W) for _ in range(2)])
    return net.eval()


@pytest.fixture(scope='session')
def frame() -> np.ndarray:
    """A synthetic rgb8 street frame, (H, W, 3) uint8."""
    return synthetic_street(H, W, seed=3)


@pytest.fixture(scope='session')
def replaced() -> Callable[..., SimpleNamespace]:
    """A factory of stand-ins: backend ``name`` with some of its functions swapped.

    The result stands in for the backend's module in ``BACKEND_TABLE`` (monkeypatch.setitem).
    """

    def make(name: str, **functions: Any) -> SimpleNamespace:
        spec = BACKEND_TABLE[name]
        parts = (
            *('NAME', 'TITLE', 'MASK_DTYPE', 'SUFFIX', 'PRECISIONS', 'BUILDS_ON_THE_SPOT'),
            *('BUILD_TIME', 'COMPANIONS', 'check', 'build', 'export', 'load', 'key_fields'),
        )
        return SimpleNamespace(**{**{k: getattr(spec, k) for k in parts}, **functions})

    return make
