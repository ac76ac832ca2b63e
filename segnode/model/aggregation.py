"""MFAM: multi-level feature aggregation over a top-down and a bottom-up pyramid.

Stages are numbered 1..4 (strides 4, 8, 16, 32) as in the paper (docs/model.md, "MFAM")::

    c_i = CBR1(C_i)                                  laterals, 128 channels
    u4 = c4;  u_k = CBR3(up(u_{k+1}) + c_k)          top-down   (k = 3, 2, 1)
    d1 = c1;  d_k = CBR3(down(d_{k-1}) + c_k)        bottom-up  (k = 2, 3, 4), bilinear down
    F1 = u1;  F2 = CBR3(u2 + d2);  F3 = CBR3(u3 + d3);  F4 = d4   (asymmetric merge)

With Scale Equalizers every input of every sum is equalized (sites a-c of docs/model.md,
"Sites"). ``c2`` and ``c3`` enter two sums unchanged and share one equalizer, so 14 distinct
equalizers serve 16 sum inputs. ``depth`` orders the measuring: an equalizer is measured after
the ones its input depends on.
"""

from __future__ import annotations

from torch import nn, Tensor

from segnode.model.layers import ConvBNReLU, resize_to
from segnode.model.scale_equalizer import ScaleEqualizer

__all__ = ['EQUALIZER_DEPTHS', 'MFAM']

# name -> measuring depth. uK_up: up(u_{K+1}) entering u_K; dK_down: down(d_{K-1}) entering
# d_K; cK: lateral c_K (shared by both pyramids); uK_cK / dK_cK: a lateral used by one pyramid;
# fK_uK / fK_dK: the inputs of merge F_K.
EQUALIZER_DEPTHS = {
    'u3_up': 0, 'c3': 0, 'c2': 0, 'u1_c1': 0, 'd2_down': 0, 'd4_c4': 0,
    'u2_up': 1, 'd3_down': 1, 'f3_u3': 1, 'f2_d2': 1,
    'u1_up': 2, 'd4_down': 2, 'f2_u2': 2, 'f3_d3': 2,
}  # fmt: skip


class MFAM(nn.Module):
    """Dual-pyramid aggregation of the four backbone stages to 128 channels each.

    Args:
        in_channels: Channels of C1..C4.
        width: Decoder width (128 in MFARANet).
        equalizers: Insert Scale Equalizers at every fusion input.
        per_channel: Per-channel equalizer constants instead of one scalar pair.
    """

    def __init__(
        self,
        in_channels: tuple[int, ...] = (64, 128, 256, 512),
        width: int = 128,
        *,
        equalizers: bool = True,
        per_channel: bool = False,
    ) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(ConvBNReLU(c, width, 1) for c in in_channels)
        self.top_down = nn.ModuleList(ConvBNReLU(width, width, 3) for _ in range(3))  # u1 u2 u3
        self.bottom_up = nn.ModuleList(ConvBNReLU(width, width, 3) for _ in range(3))  # d2 d3 d4
        self.merges = nn.ModuleList(ConvBNReLU(width, width, 3) for _ in range(2))  # F2 F3
        channels = width if per_channel else None
        self.equalizers = nn.ModuleDict(
            {
                name: ScaleEqualizer(channels, depth) if equalizers else nn.Identity()
                for name, depth in EQUALIZER_DEPTHS.items()
            }
        )

    def forward(self, feats: tuple[Tensor, ...], pruned: bool = False) -> list[Tensor]:
        """Return [F1, F2, F3, F4] (or [F1, F2] when ``pruned``), 128 channels each."""
        eq = self.equalizers
        c1, c2, c3, c4 = (lat(f) for lat, f in zip(self.laterals, feats, strict=True))
        c2e, c3e = eq['c2'](c2), eq['c3'](c3)
        # top-down: u4 = c4
        u3 = self.top_down[2](eq['u3_up'](resize_to(c4, c3)) + c3e)  # (N, 128, H/16, W/16)
        u2 = self.top_down[1](eq['u2_up'](resize_to(u3, c2)) + c2e)  # (N, 128, H/8, W/8)
        u1 = self.top_down[0](eq['u1_up'](resize_to(u2, c1)) + eq['u1_c1'](c1))  # /4
        # bottom-up: d1 = c1
        d2 = self.bottom_up[0](eq['d2_down'](resize_to(c1, c2)) + c2e)  # (N, 128, H/8, W/8)
        f2 = self.merges[0](eq['f2_u2'](u2) + eq['f2_d2'](d2))
        if pruned:
            return [u1, f2]
        d3 = self.bottom_up[1](eq['d3_down'](resize_to(d2, c3)) + c3e)  # /16
        d4 = self.bottom_up[2](eq['d4_down'](resize_to(d3, c4)) + eq['d4_c4'](c4))  # /32
        f3 = self.merges[1](eq['f3_u3'](u3) + eq['f3_d3'](d3))
        return [u1, f2, f3, d4]
