"""MFARANet (arXiv 2402.02286) with Scale Equalizers, read top to bottom.

Data flow (docs/model.md, "Architecture")::

    x (N,3,H,W), ImageNet-normalised RGB
      backbone  -> C1..C4  64@/4 128@/8 256@/16 512@/32   deep-stem ResNet-18, dilated
      mfam      -> F1..F4  128@/4 /8 /16 /32              dual pyramid + asymmetric merge
      ram       -> F^1..F^4 128@/4                        recursive flow alignment
      equalizers(d), then per scale: s_i = score_i(F^i), a_i = sigmoid attention(F^i)
      asfm      -> sum_i s_i * a_i @/4
      bilinear x4 (align_corners=True) -> logits (N,K,H,W)
"""

from __future__ import annotations

from typing import Any, Literal, overload

from torch import nn, Tensor
import torch.nn.functional as F

from segnode.config import config_from_dict, config_to_dict, MIN_SIDE, ModelConfig
from segnode.model.aggregation import MFAM
from segnode.model.attention_fusion import ASFM
from segnode.model.backbone import DeepStemResNet18
from segnode.model.flow_align import RecursiveAlignment
from segnode.model.heads import boundary_heads, score_heads
from segnode.model.scale_equalizer import ScaleEqualizer

__all__ = ['build_mfaranet', 'MFARANet', 'upsample_to']

BRANCHES = 4
PRUNED_BRANCH = 1  # MFARANet-Pruned keeps the 1/8 branch


def upsample_to(x: Tensor, size: tuple[int, int] | Any) -> Tensor:
    """Bilinear resize to ``size``, align_corners=True as the official code (docs/model.md)."""
    return F.interpolate(x, size=size, mode='bilinear', align_corners=True)


class MFARANet(nn.Module):
    """Multi-level Feature Aggregation and Recursive Alignment Network.

    Use ``build_mfaranet`` to construct one. ``forward(x)`` returns the fused logits at input
    resolution; ``forward(x, aux=True)`` (training) returns a dict with ``'out'`` plus the
    per-scale scores ``'score1'..'score4'`` and boundary logits ``'boundary1'..'boundary4'``,
    all at input resolution.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        width, k = config.width, config.num_classes
        self.backbone = DeepStemResNet18()
        self.mfam = MFAM(
            self.backbone.channels,
            width,
            equalizers=config.equalizers,
            per_channel=config.per_channel_equalizers,
        )
        self.ram = RecursiveAlignment(width, BRANCHES)
        channels = width if config.per_channel_equalizers else None
        self.equalizers = nn.ModuleList(  # site (d): the aligned F^i, before every head
            ScaleEqualizer(channels, depth=3) if config.equalizers else nn.Identity()
            for _ in range(BRANCHES)
        )
        self.score_heads = score_heads(width, k, BRANCHES)
        self.asfm = ASFM(width, k, BRANCHES)
        self.boundary_heads = boundary_heads(width, BRANCHES) if config.boundary_heads else None
        # 'none' (baseline), 'unmeasured', 'identity' (official import) or 'measured';
        # measuring the statistics adds their provenance. Saved in every checkpoint.
        state = 'unmeasured' if config.equalizers else 'none'
        self.equalizer_provenance: dict[str, Any] = {'state': state}
        self.folded = False  # set by fold_equalizers; folded models are never saved

    @overload
    def forward(self, x: Tensor, aux: Literal[False] = ...) -> Tensor: ...

    @overload
    def forward(self, x: Tensor, aux: Literal[True]) -> dict[str, Tensor]: ...

    def forward(self, x: Tensor, aux: bool = False) -> Tensor | dict[str, Tensor]:
        """Segment a normalised float batch (N, 3, H, W); H and W at least 32."""
        size = x.shape[-2:]
        if size[0] < MIN_SIDE or size[1] < MIN_SIDE:
            raise ValueError(
                f'MFARANet needs inputs of at least {MIN_SIDE}x{MIN_SIDE} px (flow grids need 2 '
                f'cells at stride 32), got {size[0]}x{size[1]}'
            )
        pruned = self.config.pruned and not self.training  # training (and measuring) use all
        feats = self.ram(self.mfam(self.backbone(x), pruned=pruned))  # 4 (or 2) x (N,128,H/4,W/4)
        if pruned:
            branch = self.equalizers[PRUNED_BRANCH](feats[PRUNED_BRANCH])
            return upsample_to(self.score_heads[PRUNED_BRANCH](branch), size)
        feats = [eq(f) for eq, f in zip(self.equalizers, feats, strict=True)]
        scores = [head(f) for head, f in zip(self.score_heads, feats, strict=True)]
        fused = self.asfm(feats, scores)
        if not aux:
            return upsample_to(fused, size)  # (N, K, H, W)
        if self.boundary_heads is None:
            raise RuntimeError('aux outputs need a model built with boundary_heads=True')
        outputs = {'out': _loss_map(fused, size)}
        for i, (f, s, head) in enumerate(zip(feats, scores, self.boundary_heads, strict=True)):
            outputs[f'score{i + 1}'] = _loss_map(s, size)
            outputs[f'boundary{i + 1}'] = _loss_map(head(f), size)
        return outputs


def _loss_map(x: Tensor, size: tuple[int, int] | Any) -> Tensor:
    """A training output at input resolution, fp32 and NCHW-contiguous.

    The loss reads these full-resolution maps several times; casting and reordering the small
    map before the upsample (instead of a bf16 channels-last map after it) makes every later
    read and its backward pass a plain contiguous fp32 one.
    """
    return upsample_to(x.float().contiguous(), size)


def build_mfaranet(config: ModelConfig | None = None, **options: Any) -> MFARANet:
    """Build MFARANet from a ``ModelConfig`` and/or keyword options.

    Example: ``build_mfaranet(num_classes=11, equalizers=True)``.

    Args:
        config: Base configuration (defaults to ``ModelConfig()``).
        **options: ``ModelConfig`` fields overriding ``config``.

    Raises:
        ConfigError: An option is unknown or invalid.
    """
    base = config_from_dict(ModelConfig, options, 'model.') if config is None else config
    if config is not None and options:
        merged = {**config_to_dict(config), **options}
        base = config_from_dict(ModelConfig, merged, 'model.')
    return MFARANet(base)
