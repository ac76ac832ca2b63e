"""Each term of the MJS loss on hand-made tensors, and the no-NaN guarantee."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from segnode.train.losses import (
    balanced_bce,
    cross_entropy,
    edge_attention_ce,
    MJSLoss,
    ohem_cross_entropy,
)


def test_cross_entropy_ignores_255_and_all_ignored_gives_zero() -> None:
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 2.0]]]])  # (1, 2, 1, 2)
    target = torch.tensor([[[0, 255]]])
    expected = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert float(cross_entropy(logits, target)) == pytest.approx(expected, rel=1e-6)
    empty = cross_entropy(logits.requires_grad_(), torch.full((1, 1, 2), 255))
    assert float(empty.detach()) == 0.0
    empty.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def _two_class_logits(p_target: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose class-0 softmax probabilities are ``p_target``; target all class 0."""
    p = torch.tensor(p_target)
    logits = torch.stack([torch.log(p), torch.log(1 - p)])[None, :, None, :]  # (1, 2, 1, n)
    return logits, torch.zeros((1, 1, len(p_target)), dtype=torch.long)


def test_ohem_keeps_pixels_below_threshold() -> None:
    logits, target = _two_class_logits([0.1, 0.5, 0.69, 0.9, 0.95])
    loss = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=2)
    expected = -(math.log(0.1) + math.log(0.5) + math.log(0.69)) / 3
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_ohem_min_kept_raises_the_threshold() -> None:
    logits, target = _two_class_logits([0.1, 0.5, 0.69, 0.9, 0.95])
    loss = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=4)  # 4th hardest: 0.9
    expected = -(math.log(0.1) + math.log(0.5) + math.log(0.69) + math.log(0.9)) / 4
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_ohem_keeps_everything_below_min_kept_valid_pixels() -> None:
    logits, target = _two_class_logits([0.1, 0.9, 0.95])
    target[0, 0, 0] = 255
    loss = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=100_000)
    assert float(loss) == pytest.approx(-(math.log(0.9) + math.log(0.95)) / 2, rel=1e-5)


def test_balanced_bce_weights() -> None:
    logits = torch.tensor([0.5, -1.0, 2.0, 0.0]).reshape(1, 1, 2, 2)
    target = torch.tensor([1.0, 0.0, 0.0, 0.0]).reshape(1, 1, 2, 2)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction='none').reshape(-1)
    weights = torch.tensor(
        [3 / 4, 1 / 4, 1 / 4, 1 / 4]
    )  # positives #neg/#all, negatives #pos/#all
    expected = float((weights * bce).mean())
    assert float(balanced_bce(logits, target)) == pytest.approx(expected, rel=1e-6)


def test_balanced_bce_without_boundaries_is_finite_zero() -> None:
    logits = torch.randn(2, 1, 4, 4, requires_grad=True)
    loss = balanced_bce(logits, torch.zeros(2, 1, 4, 4))
    loss.backward()
    assert (
        float(loss.detach()) == 0.0
        and logits.grad is not None
        and torch.isfinite(logits.grad).all()
    )


def test_edge_attention_weights_and_per_image_sum() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 2, 2)
    target = torch.tensor([[[0, 0], [1, 255]], [[2, 2], [2, 2]]])
    edge = torch.tensor([[[[1.0, 0.9], [0.9, 0.9]]], [[[0.9, 0.5], [0.5, 0.5]]]])  # raw logits
    loss, empty = edge_attention_ce(logits, target, edge, thresh=0.8)
    # image 0: pixels (0,0),(0,1) class 0 and (1,0) class 1; freq 2/3, 1/3 -> weights 4/3, 5/3
    nll0 = -F.log_softmax(logits[0], 0)
    w0 = torch.tensor([4 / 3, 4 / 3, 5 / 3])
    terms0 = torch.stack([nll0[0, 0, 0], nll0[0, 0, 1], nll0[1, 1, 0]])
    image0 = float((w0 * terms0).sum() / w0.sum())
    image1 = float(-F.log_softmax(logits[1], 0)[2, 0, 0])  # one pixel: plain CE
    assert empty == 0
    assert float(loss) == pytest.approx(image0 + image1, rel=1e-5)


def test_edge_attention_empty_edges_give_zero_and_are_counted() -> None:
    logits = torch.randn(3, 4, 8, 8, requires_grad=True)
    target = torch.randint(0, 4, (3, 8, 8))
    edge = torch.full((3, 1, 8, 8), -5.0)
    edge[1, 0, 2:4, 2:4] = 3.0  # only image 1 has edge pixels
    loss, empty = edge_attention_ce(logits, target, edge)
    assert empty == 2 and torch.isfinite(loss)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert float(logits.grad[0].abs().sum()) == 0.0 and float(logits.grad[1].abs().sum()) > 0


def _outputs(n: int, k: int, size: int, edge: float) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    out = {'out': torch.randn(n, k, size, size, requires_grad=True)}
    for i in range(1, 5):
        out[f'score{i}'] = torch.randn(n, k, size, size, requires_grad=True)
        out[f'boundary{i}'] = torch.full((n, 1, size, size), edge, requires_grad=True)
    return out


def test_mjs_combines_the_terms_with_the_recipe_weights() -> None:
    outputs = _outputs(2, 5, 8, edge=1.0)
    target = torch.randint(0, 5, (2, 8, 8))
    boundary = (torch.rand(2, 1, 8, 8) > 0.7).float()
    total, parts = MJSLoss(ohem_min_kept=10)(outputs, target, boundary)
    expected = parts['ce'] + parts['ohem'] + 0.3 * parts['boundary'] + 0.1 * parts['attention']
    assert float(total.detach()) == pytest.approx(expected, rel=1e-5)
    assert parts['empty_edges'] == 0.0
    assert parts['ce'] == pytest.approx(
        float(F.cross_entropy(outputs['out'].detach(), target)), rel=1e-6
    )


def test_mjs_never_nan_when_no_edge_passes_the_threshold() -> None:
    outputs = _outputs(2, 5, 8, edge=-10.0)  # no raw boundary logit above 0.8
    target = torch.randint(0, 5, (2, 8, 8))
    total, parts = MJSLoss(ohem_min_kept=10)(outputs, target, torch.zeros(2, 1, 8, 8))
    total.backward()
    assert torch.isfinite(total) and parts['attention'] == 0.0
    assert parts['empty_edges'] == 8.0  # 2 images x 4 scales
    assert all(torch.isfinite(t.grad).all() for t in outputs.values() if t.grad is not None)
