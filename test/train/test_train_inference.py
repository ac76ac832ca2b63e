"""Evaluation-time prediction: sliding windows, scales and flip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segnode.train.inference import predict_probs, window_starts


def test_window_starts_cover_the_image() -> None:
    assert window_starts(100, 100, 66) == [0]
    assert window_starts(60, 100, 66) == [0]
    assert window_starts(250, 100, 67) == [0, 67, 134, 150]


def test_sliding_window_equals_whole_image_for_a_pointwise_model() -> None:
    torch.manual_seed(0)
    model = nn.Conv2d(3, 5, 1).eval()
    image = torch.randn(1, 3, 70, 90)
    whole = predict_probs(model, image, 5)
    windowed = predict_probs(model, image, 5, window=(32, 48), stride_ratio=2 / 3)
    small = predict_probs(model, image[..., :20, :30], 5, window=(32, 48))  # padded window
    assert torch.allclose(whole, windowed, atol=1e-6)
    assert small.shape == (1, 5, 20, 30)
    assert torch.allclose(small, whole[..., :20, :30], atol=1e-6)


def test_scales_and_flip_sum_probabilities() -> None:
    model = nn.Conv2d(3, 4, 1).eval()
    image = torch.randn(2, 3, 64, 64)
    probs = predict_probs(model, image, 4, scales=(0.5, 1.0, 1.5), flip=True)
    assert probs.shape == (2, 4, 64, 64)
    assert probs.sum(1).mean().item() == pytest.approx(6.0, rel=1e-5)  # 3 scales x 2 views
