"""Fold Scale Equalizers (and BatchNorm) into MFARANet's weights for deployment.

The constructions (docs/model.md, "Folding") are all exact:

* Sum fusions (sites a-c): the consumer sees eq_a(p) + eq_b(q) = p/s_a + q/s_b - m with
  m = mu_a/s_a + mu_b/s_b. Each 1/s is pushed upstream into the producer's last BN (it commutes
  with ReLU, since s > 0, and with bilinear resizing). A producer that feeds two fusions takes
  one scale in its BN and keeps an explicit scalar multiply s_1/s_2 on its other use. The shift
  goes into the consumer: its 3x3 conv pads with m instead of zero (the constant-padding fold,
  exact at the borders too) and its BN running mean absorbs S = m * sum(W).
* Aligned features (site d): scale and shift go straight into the per-branch consumers: the
  score and boundary heads (1x1 with bias: W/s, b - S) and the attention's 3x3 conv (W/s,
  padding with mu, S into its BN).

Identity equalizers (official checkpoints) fold to nothing at all.
"""

from __future__ import annotations

import copy

import torch
from torch import nn, Tensor
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from segnode.model.aggregation import MFAM
from segnode.model.mfaranet import MFARANet
from segnode.model.scale_equalizer import ScaleEqualizer

__all__ = [
    'PaddedConv2d',
    'Scale',
    'count_residual_scales',
    'fold_affine_into_conv_bn',
    'fold_affine_into_head',
    'fold_batchnorm',
    'fold_equalizers',
    'scale_bn_output',
]


class Scale(nn.Module):
    """Multiply by a constant (scalar or per channel): what remains of a shared producer's fold."""

    def __init__(self, factor: Tensor) -> None:
        super().__init__()
        self.register_buffer('factor', factor.detach().clone())

    factor: Tensor

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x * factor`` in the dtype of ``x``."""
        factor = self.factor.view(1, -1, 1, 1) if self.factor.dim() else self.factor
        return x * factor.to(x.dtype)


class PaddedConv2d(nn.Module):
    """A zero-padded conv turned into: pad with a constant, then conv without padding.

    The constant-padding fold of docs/model.md, "Folding".
    """

    def __init__(self, conv: nn.Conv2d, pad_value: Tensor) -> None:
        super().__init__()
        if not isinstance(conv.padding, tuple) or conv.padding_mode != 'zeros':
            raise ValueError('PaddedConv2d needs a zero-padded conv with explicit padding')
        ph, pw = conv.padding
        self.pad = (pw, pw, ph, ph)
        self.conv = conv
        conv.padding = (0, 0)
        # a scalar is a graph constant (no data-dependent read when exporting)
        self.fill = float(pad_value) if pad_value.dim() == 0 else None
        self.register_buffer('pad_value', pad_value.detach().clone().view(1, -1, 1, 1))

    pad_value: Tensor

    def forward(self, x: Tensor) -> Tensor:
        """Pad with the constant (per channel if it is a vector), then convolve."""
        if self.fill is not None:
            x = F.pad(x, self.pad, value=self.fill)
        else:
            value = self.pad_value.to(x.dtype)
            x = F.pad(x - value, self.pad) + value
        out: Tensor = self.conv(x)
        return out


def _constants(eq: nn.Module) -> tuple[Tensor, Tensor]:
    assert isinstance(eq, ScaleEqualizer), 'only ScaleEqualizer modules can be folded'
    return eq.mean.detach().double(), eq.std.detach().double()


def _per_input_channel(v: Tensor, cin: int) -> Tensor:
    return v.expand(cin) if v.dim() == 0 else v


@torch.no_grad()
def scale_bn_output(bn: nn.BatchNorm2d, factor: Tensor) -> None:
    """Make the BN's output ``factor`` times larger (factor > 0, scalar or per channel)."""
    assert bn.weight is not None and bn.bias is not None
    f = _per_input_channel(factor, bn.num_features).to(bn.weight.dtype)
    bn.weight.mul_(f)
    bn.bias.mul_(f)


@torch.no_grad()
def fold_affine_into_conv_bn(
    block: nn.Sequential, index: int, pad_value: Tensor, shift: Tensor, scale: Tensor
) -> None:
    """Fold x -> (x - shift) * scale before the conv ``block[index]`` (followed by a BN).

    The conv (bias-free) takes ``W * scale`` per input channel and becomes a PaddedConv2d
    padding with ``pad_value`` (the raw value that maps to 0; pass ``shift``) when that is
    not 0; the eval-mode BN at ``index + 1`` absorbs S[o] = sum_c W'[o, c] * shift_c through
    its running mean. Exact for any stride and dilation, borders included.
    """
    conv, bn = block[index], block[index + 1]
    assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
    assert bn.running_mean is not None and conv.bias is None
    cin = conv.in_channels
    scale_c, shift_c = _per_input_channel(scale, cin), _per_input_channel(shift, cin)
    weight = conv.weight.double() * scale_c.view(1, -1, 1, 1)
    s_total = (weight.sum(dim=(2, 3)) * shift_c.view(1, -1)).sum(dim=1)  # S[o]
    conv.weight.copy_(weight.to(conv.weight.dtype))
    bn.running_mean.add_(s_total.to(bn.running_mean.dtype))
    if bool((pad_value != 0).any()):
        block[index] = PaddedConv2d(conv, pad_value.to(conv.weight.dtype))


@torch.no_grad()
def fold_affine_into_head(head: nn.Conv2d, mean: Tensor, std: Tensor) -> None:
    """Fold (x - mean) / std into a 1x1 conv with bias: W/s, b - sum(W mean / s)."""
    assert head.bias is not None and head.kernel_size == (1, 1)
    cin = head.in_channels
    inv = 1.0 / _per_input_channel(std, cin)
    weight = head.weight.double() * inv.view(1, -1, 1, 1)
    bias = head.bias.double() - (weight.sum(dim=(2, 3)) * _per_input_channel(mean, cin)).sum(1)
    head.weight.copy_(weight.to(head.weight.dtype))
    head.bias.copy_(bias.to(head.bias.dtype))


# producer BN -> (the equalizer folded into it, the equalizer left with a residual multiply)
_PRODUCERS = {
    ('laterals', 0): ('u1_c1', 'd2_down'),
    ('laterals', 1): ('c2', None),
    ('laterals', 2): ('c3', None),
    ('laterals', 3): ('u3_up', 'd4_c4'),
    ('top_down', 2): ('u2_up', 'f3_u3'),  # u3
    ('top_down', 1): ('u1_up', 'f2_u2'),  # u2
    ('bottom_up', 0): ('d3_down', 'f2_d2'),  # d2
    ('bottom_up', 1): ('d4_down', 'f3_d3'),  # d3
}
# consumer CBR3 -> the equalizers of its two inputs
_CONSUMERS = {
    ('top_down', 2): ('u3_up', 'c3'),
    ('top_down', 1): ('u2_up', 'c2'),
    ('top_down', 0): ('u1_up', 'u1_c1'),
    ('bottom_up', 0): ('d2_down', 'c2'),
    ('bottom_up', 1): ('d3_down', 'c3'),
    ('bottom_up', 2): ('d4_down', 'd4_c4'),
    ('merges', 0): ('f2_u2', 'f2_d2'),
    ('merges', 1): ('f3_u3', 'f3_d3'),
}


def _block(mfam: MFAM, where: tuple[str, int]) -> nn.Sequential:
    block = getattr(mfam, where[0])[where[1]]
    assert isinstance(block, nn.Sequential)
    return block


def _fold_mfam(mfam: MFAM) -> None:
    consts = {name: _constants(eq) for name, eq in mfam.equalizers.items()}
    for where, (a, b) in _CONSUMERS.items():
        shift = consts[a][0] / consts[a][1] + consts[b][0] / consts[b][1]  # m
        fold_affine_into_conv_bn(_block(mfam, where), 0, shift, shift, torch.ones_like(shift))
    for where, (folded, residual) in _PRODUCERS.items():
        std = consts[folded][1]
        if bool((std != 1).any()):
            bn = _block(mfam, where)[1]
            assert isinstance(bn, nn.BatchNorm2d)
            scale_bn_output(bn, 1.0 / std)
        mfam.equalizers[folded] = nn.Identity()
        if residual is not None:
            factor = std / consts[residual][1]
            keep = bool((factor != 1).any())
            producer_bn = _block(mfam, where)[1]
            assert isinstance(producer_bn, nn.BatchNorm2d)
            factor = factor.to(producer_bn.weight.dtype)
            mfam.equalizers[residual] = Scale(factor) if keep else nn.Identity()


def _fold_aligned(model: MFARANet) -> None:
    for i, eq in enumerate(model.equalizers):
        mean, std = _constants(eq)
        heads = [model.score_heads[i]]
        if model.boundary_heads is not None:
            heads.append(model.boundary_heads[i])
        for head in heads:
            assert isinstance(head, nn.Conv2d)
            fold_affine_into_head(head, mean, std)
        attention = model.asfm.attentions[i]
        assert isinstance(attention, nn.Sequential)
        fold_affine_into_conv_bn(attention, 0, mean, mean, 1.0 / std)
        model.equalizers[i] = nn.Identity()


def fold_equalizers(model: MFARANet, inplace: bool = False) -> MFARANet:
    """Return an eval-mode MFARANet without equalizer ops and with the same logits.

    Exact in real arithmetic at every pixel, borders included (constant padding). A model
    built without equalizers is returned unchanged (as an eval-mode copy unless ``inplace``).
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    model.folded = True
    if not any(isinstance(m, ScaleEqualizer) for m in model.modules()):
        return model
    _fold_mfam(model.mfam)
    _fold_aligned(model)
    return model


def count_residual_scales(model: nn.Module) -> int:
    """Number of scalar (or per-channel) multiplies a fold had to leave in the graph."""
    return sum(isinstance(m, Scale) for m in model.modules())


def _fuse_pair(conv: nn.Module, bn: nn.BatchNorm2d) -> nn.Module:
    if isinstance(conv, PaddedConv2d):
        conv.conv = fuse_conv_bn_eval(conv.conv, bn)
        return conv
    assert isinstance(conv, nn.Conv2d)
    return fuse_conv_bn_eval(conv, bn)


@torch.no_grad()
def fold_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Fuse every eval-mode BatchNorm2d into the convolution before it.

    Handles conv/BN pairs that are neighbours in an ``nn.Sequential``, the ``conv``/``bn``
    attribute pairs of ResNet blocks, and the deep stem whose last conv sits in an inner
    ``Sequential`` with its BN outside.
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            if len(module) > 1 and isinstance(module[0], nn.Sequential):  # deep stem
                inner = module[0]
                if isinstance(inner[-1], nn.Conv2d) and isinstance(module[1], nn.BatchNorm2d):
                    inner[-1] = _fuse_pair(inner[-1], module[1])
                    module[1] = nn.Identity()
            for i in range(len(module) - 1):
                conv, bn = module[i], module[i + 1]
                if isinstance(conv, (nn.Conv2d, PaddedConv2d)) and isinstance(bn, nn.BatchNorm2d):
                    module[i] = _fuse_pair(conv, bn)
                    module[i + 1] = nn.Identity()
        for conv_name, bn_name in (('conv1', 'bn1'), ('conv2', 'bn2')):
            block_conv = getattr(module, conv_name, None)
            block_bn = getattr(module, bn_name, None)
            if isinstance(block_conv, nn.Conv2d) and isinstance(block_bn, nn.BatchNorm2d):
                setattr(module, conv_name, _fuse_pair(block_conv, block_bn))
                setattr(module, bn_name, nn.Identity())
    return model
