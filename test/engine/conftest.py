"""Engine test fixtures: a small seeded model with calibrated equalizers (realistic logits)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segnode.model import build_mfaranet, MFARANet
from segnode.model.calibration import calibrate_equalizers
from segnode.synthetic import synthetic_street

H, W = 64, 96


@pytest.fixture(scope='session')
def model() -> MFARANet:
    """Seeded 11-class MFARANet whose equalizers are calibrated (not identity)."""
    torch.manual_seed(0)
    net = build_mfaranet(num_classes=11)
    calibrate_equalizers(net, [torch.randn(2, 3, H, W) for _ in range(2)])
    return net.eval()


@pytest.fixture(scope='session')
def frame() -> np.ndarray:
    """A synthetic rgb8 street frame (H, W, 3)."""
    return synthetic_street(H, W, seed=3)
