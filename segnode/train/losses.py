"""The MFARANet training loss ("Multi-scale Joint Supervision", mfaranet.md §6).

``L = CE(out, y) + sum_i [OHEM(S_i, y) + 0.3 BalancedBCE(E_i, B) + 0.1 EdgeAttnCE(S_i, y, E_i)]``
computed per GPU batch, with every map at input resolution. One deliberate deviation: when no
pixel of an image passes the edge-attention threshold (or a term has no valid pixel at all),
the official code averages over an empty set and the whole loss becomes NaN; here that term is
0 (still in the graph, so gradients are finite) and the event is counted.
"""

from __future__ import annotations

import torch
from torch import nn, Tensor
import torch.nn.functional as F

__all__ = [
    'balanced_bce',
    'cross_entropy',
    'edge_attention_ce',
    'MJSLoss',
    'ohem_cross_entropy',
]

IGNORE_ID = 255
BRANCHES = 4


def cross_entropy(logits: Tensor, target: Tensor, ignore_index: int = IGNORE_ID) -> Tensor:
    """Mean CE over non-ignored pixels; 0 (with a graph) when every pixel is ignored."""
    if not bool((target != ignore_index).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, ignore_index=ignore_index)


@torch.no_grad()
def _ohem_target(
    logits: Tensor, target: Tensor, thresh: float, min_kept: int, ignore_index: int
) -> Tensor:
    valid = target != ignore_index
    num_valid = int(valid.sum())
    if num_valid == 0 or min_kept > num_valid:
        return target  # the official code keeps every pixel below min_kept valid pixels
    prob = torch.softmax(logits.float(), dim=1)
    safe = torch.where(valid, target, torch.zeros_like(target))
    target_prob = prob.gather(1, safe.unsqueeze(1)).squeeze(1)
    target_prob = target_prob.masked_fill(~valid, 1.0)
    threshold = thresh
    if min_kept > 0:
        kth = torch.kthvalue(target_prob.reshape(-1), min(num_valid, min_kept)).values
        threshold = max(thresh, float(kth))
    keep = valid & (target_prob <= threshold)
    return torch.where(keep, target, torch.full_like(target, ignore_index))


def ohem_cross_entropy(
    logits: Tensor,
    target: Tensor,
    thresh: float = 0.7,
    min_kept: int = 100_000,
    ignore_index: int = IGNORE_ID,
) -> Tensor:
    """Online hard example mining CE (``OhemCrossEntropy2dTensor``) over the whole batch.

    Keeps the valid pixels whose target-class probability is at most
    ``max(thresh, p_k)``, ``p_k`` the probability of the ``min_kept``-th hardest pixel; keeps
    every valid pixel when there are fewer than ``min_kept``. CE mean over the kept pixels.

    Args:
        logits: (N, K, H, W) scores.
        target: (N, H, W) class ids, ``ignore_index`` for unlabelled pixels.
        thresh: Probability threshold (0.7).
        min_kept: Minimum number of pixels kept per batch (100,000 per GPU batch officially).
        ignore_index: Unlabelled id.
    """
    return cross_entropy(
        logits, _ohem_target(logits, target, thresh, min_kept, ignore_index), ignore_index
    )


def balanced_bce(logits: Tensor, target: Tensor) -> Tensor:
    """Class-balanced boundary BCE (GSCNN ``bce2d``) over the flattened batch.

    Positives are weighted #neg/#total, negatives #pos/#total, targets above 1 weight 0; the
    weighted BCE-with-logits is averaged over all pixels.

    Args:
        logits: (N, 1, H, W) raw boundary logits.
        target: (N, 1, H, W) boundary ground truth in {0, 1}.
    """
    logits, target = logits.float().reshape(-1), target.float().reshape(-1)
    pos, neg = target == 1, target == 0
    num_pos, num_neg = pos.sum().float(), neg.sum().float()
    total = (num_pos + num_neg).clamp(min=1.0)
    weight = torch.zeros_like(target)
    weight = torch.where(pos, num_neg / total, weight)
    weight = torch.where(neg, num_pos / total, weight)
    return F.binary_cross_entropy_with_logits(logits, target.clamp(max=1.0), weight)


def _image_class_weights(target: Tensor, num_classes: int) -> Tensor:
    """1 + (1 - frequency) for classes present in ``target``, 1 for absent ones."""
    labelled = target[target < num_classes]
    counts = torch.bincount(labelled, minlength=num_classes).float()
    freq = counts / counts.sum().clamp(min=1.0)
    return torch.where(counts > 0, 2.0 - freq, torch.ones_like(freq))


def edge_attention_ce(
    logits: Tensor,
    target: Tensor,
    edge_logits: Tensor,
    thresh: float = 0.8,
    ignore_index: int = IGNORE_ID,
) -> tuple[Tensor, int]:
    """GSCNN's dual-task regulariser: CE only where the raw boundary logit exceeds ``thresh``.

    Per image, pixels with ``edge_logit <= thresh`` are ignored, class weights are
    ``1 + (1 - freq)`` for classes present among the remaining pixels (1 for absent ones), and
    the weighted CE means are **summed** over the batch.

    Returns:
        The loss and the number of images with no pixel left (their term is 0, where the
        official code gives NaN).
    """
    num_classes = logits.shape[1]
    edge = edge_logits.detach().amax(dim=1) > thresh  # raw logit, not sigmoid
    masked = torch.where(edge, target, torch.full_like(target, ignore_index))
    total = logits.sum() * 0.0
    empty = 0
    for i in range(logits.shape[0]):
        t = masked[i : i + 1]
        if not bool((t != ignore_index).any()):
            empty += 1
            continue
        weight = _image_class_weights(t, num_classes).to(logits.dtype)
        total = total + F.cross_entropy(
            logits[i : i + 1].float(), t, weight=weight.float(), ignore_index=ignore_index
        )
    return total, empty


class MJSLoss(nn.Module):
    """The joint loss over the fused output and the four per-scale outputs.

    Args:
        ohem_thresh: OHEM probability threshold.
        ohem_min_kept: OHEM minimum kept pixels per GPU batch.
        boundary_weight: Weight of the balanced boundary BCE (0.3).
        attention_weight: Weight of the edge-attention CE (0.1).
        attention_thresh: Raw boundary-logit threshold of the edge attention (0.8).
    """

    def __init__(
        self,
        ohem_thresh: float = 0.7,
        ohem_min_kept: int = 100_000,
        boundary_weight: float = 0.3,
        attention_weight: float = 0.1,
        attention_thresh: float = 0.8,
    ) -> None:
        super().__init__()
        self.ohem_thresh = ohem_thresh
        self.ohem_min_kept = ohem_min_kept
        self.boundary_weight = boundary_weight
        self.attention_weight = attention_weight
        self.attention_thresh = attention_thresh

    def forward(
        self, outputs: dict[str, Tensor], target: Tensor, boundary: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        """Total loss and its parts.

        The parts are floats: ``ce``, ``ohem``, ``boundary``, ``attention`` (unweighted sums
        over the scales) and ``empty_edges`` (images with an empty edge-attention set).
        """
        fused = cross_entropy(outputs['out'].float(), target)
        ohem = bce = attention = fused * 0.0
        empty = 0
        for i in range(1, BRANCHES + 1):
            score, edge = outputs[f'score{i}'].float(), outputs[f'boundary{i}'].float()
            ohem = ohem + ohem_cross_entropy(score, target, self.ohem_thresh, self.ohem_min_kept)
            bce = bce + balanced_bce(edge, boundary)
            term, n = edge_attention_ce(score, target, edge, self.attention_thresh)
            attention, empty = attention + term, empty + n
        total = fused + ohem + self.boundary_weight * bce + self.attention_weight * attention
        parts = {
            'ce': float(fused.detach()),
            'ohem': float(ohem.detach()),
            'boundary': float(bce.detach()),
            'attention': float(attention.detach()),
            'empty_edges': float(empty),
        }
        return total, parts
