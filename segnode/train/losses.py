"""The MFARANet training loss ("Multi-scale Joint Supervision"; docs/model.md, "Loss (MJS)").

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

from segnode.metrics import IGNORE_ID

__all__ = [
    'balanced_bce',
    'cross_entropy',
    'edge_attention_ce',
    'MJSLoss',
    'ohem_cross_entropy',
]

BRANCHES = 4


def _log_probs(logits: Tensor) -> Tensor:
    return F.log_softmax(logits.float(), dim=1)


def _pixel_nll(log_probs: Tensor, target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """Per-pixel negative log-likelihood (0 where ignored) and the valid-pixel mask."""
    valid = target != ignore_index
    safe = target.masked_fill(~valid, 0)
    nll = -log_probs.gather(1, safe.unsqueeze(1)).squeeze(1)
    return nll.masked_fill(~valid, 0.0), valid


def _mean_nll(
    log_probs: Tensor, target: Tensor, ignore_index: int, weight: Tensor | None = None
) -> Tensor:
    """Mean NLL over non-ignored pixels; 0 (with a graph) when every pixel is ignored.

    With ``weight`` (K,), the weighted mean ``sum(w[t] * nll) / sum(w[t])``, as
    ``F.cross_entropy(weight=...)`` computes it.
    """
    nll, valid = _pixel_nll(log_probs, target, ignore_index)
    if weight is None:
        return nll.sum() / valid.sum().clamp(min=1)
    pixel_weight = weight.to(nll.device)[target.masked_fill(~valid, 0)] * valid
    return (pixel_weight * nll).sum() / pixel_weight.sum().clamp(min=1e-12)


def cross_entropy(logits: Tensor, target: Tensor, ignore_index: int = IGNORE_ID) -> Tensor:
    """Mean CE over non-ignored pixels; 0 (with a graph) when every pixel is ignored."""
    return _mean_nll(_log_probs(logits), target, ignore_index)


@torch.no_grad()
def _ohem_target(
    log_probs: Tensor, target: Tensor, thresh: float, min_kept: int, ignore_index: int
) -> Tensor:
    valid = target != ignore_index
    num_valid = int(valid.sum())
    if num_valid == 0 or min_kept > num_valid:
        return target  # the official code keeps every pixel below min_kept valid pixels
    safe = torch.where(valid, target, torch.zeros_like(target))
    target_prob = log_probs.gather(1, safe.unsqueeze(1)).squeeze(1).exp()
    target_prob = target_prob.masked_fill(~valid, 1.0)
    threshold = thresh
    if min_kept > 0:
        kth = torch.kthvalue(target_prob.reshape(-1), min(num_valid, min_kept)).values
        threshold = max(thresh, float(kth))
    keep = valid & (target_prob <= threshold)
    return torch.where(keep, target, torch.full_like(target, ignore_index))


def _ohem_nll(
    log_probs: Tensor,
    target: Tensor,
    thresh: float,
    min_kept: int,
    ignore_index: int,
    weight: Tensor | None = None,
) -> Tensor:
    kept = _ohem_target(log_probs.detach(), target, thresh, min_kept, ignore_index)
    return _mean_nll(log_probs, kept, ignore_index, weight)


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
    return _ohem_nll(_log_probs(logits), target, thresh, min_kept, ignore_index)


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


def _image_class_weights(target: Tensor, valid: Tensor, num_classes: int) -> Tensor:
    """(N, K): 1 + (1 - frequency) of each class among an image's valid pixels, 1 if absent."""
    n = target.shape[0]
    image = torch.arange(n, device=target.device).view(n, 1, 1).expand_as(target)
    index = (image * num_classes + target)[valid]
    counts = torch.bincount(index, minlength=n * num_classes).view(n, num_classes).float()
    freq = counts / counts.sum(dim=1, keepdim=True).clamp(min=1.0)
    return torch.where(counts > 0, 2.0 - freq, torch.ones_like(freq))


def _edge_attention_nll(
    log_probs: Tensor, target: Tensor, edge_logits: Tensor, thresh: float, ignore_index: int
) -> tuple[Tensor, int]:
    num_classes = log_probs.shape[1]
    edge = edge_logits.detach().amax(dim=1) > thresh  # raw logit, not sigmoid
    masked = torch.where(edge, target, torch.full_like(target, ignore_index))
    nll, valid = _pixel_nll(log_probs, masked, ignore_index)
    weights = _image_class_weights(masked.masked_fill(~valid, 0), valid, num_classes)
    pixel_weight = weights.gather(1, masked.masked_fill(~valid, 0).flatten(1)).view_as(nll)
    pixel_weight = pixel_weight * valid
    per_image = (pixel_weight * nll).flatten(1).sum(1) / pixel_weight.flatten(1).sum(1).clamp(
        min=1e-12
    )
    empty = int((~valid.flatten(1).any(dim=1)).sum())
    return per_image.sum(), empty


def edge_attention_ce(
    logits: Tensor,
    target: Tensor,
    edge_logits: Tensor,
    thresh: float = 0.8,
    ignore_index: int = IGNORE_ID,
) -> tuple[Tensor, int]:
    """The dual-task regulariser of GSCNN: CE only where the raw boundary logit tops ``thresh``.

    Per image, pixels with ``edge_logit <= thresh`` are ignored, class weights are
    ``1 + (1 - freq)`` for classes present among the remaining pixels (1 for absent ones), and
    the weighted CE means are **summed** over the batch. Computed for the whole batch at once
    (one log-softmax, no per-image slices: their backward pass zero-fills and copies a
    full-batch gradient per image).

    Returns:
        The loss and the number of images with no pixel left (their term is 0, where the
        official code gives NaN).
    """
    return _edge_attention_nll(_log_probs(logits), target, edge_logits, thresh, ignore_index)


class MJSLoss(nn.Module):
    """The joint loss over the fused output and the four per-scale outputs.

    Args:
        ohem_thresh: OHEM probability threshold.
        ohem_min_kept: OHEM minimum kept pixels per GPU batch.
        boundary_weight: Weight of the balanced boundary BCE (0.3).
        attention_weight: Weight of the edge-attention CE (0.1).
        attention_thresh: Raw boundary-logit threshold of the edge attention (0.8).
        class_weights: (K,) weights of the fused CE and the OHEM terms (None: unweighted,
            the recipe); OHEM still selects pixels by their unweighted probability.
    """

    def __init__(
        self,
        ohem_thresh: float = 0.7,
        ohem_min_kept: int = 100_000,
        boundary_weight: float = 0.3,
        attention_weight: float = 0.1,
        attention_thresh: float = 0.8,
        class_weights: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.class_weights = class_weights
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
        weight = self.class_weights
        fused = _mean_nll(_log_probs(outputs['out']), target, IGNORE_ID, weight)
        ohem = bce = attention = fused * 0.0
        empty = 0
        for i in range(1, BRANCHES + 1):
            log_probs = _log_probs(outputs[f'score{i}'])  # shared by OHEM and edge attention
            edge = outputs[f'boundary{i}'].float()
            ohem = ohem + _ohem_nll(
                log_probs, target, self.ohem_thresh, self.ohem_min_kept, IGNORE_ID, weight
            )
            bce = bce + balanced_bce(edge, boundary)
            term, n = _edge_attention_nll(
                log_probs, target, edge, self.attention_thresh, IGNORE_ID
            )
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
