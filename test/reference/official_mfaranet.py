"""Independent reference of the official MFARANet inference network (test-only).

This module re-creates the network of the official ``MFARANet`` class
(github.com/Yanhua-Zhang/MFARANet, configured as in every released config: deep-stem
ResNet-18, ``use_dilation=True``, no PPM, no aux head, four branches) from the description
of the official code in docs/model.md ("Architecture", "Official-code quirks", "Measured",
"Official checkpoints"). It is used only by tests,
to check that the checkpoint importer and the project's own model reproduce the official
logits.

It is deliberately independent of ``segnode.model``: nothing is imported from there, and the
flow warp uses the official SFNet-style grid construction (``torch.linspace`` base grid and a
``torch.tensor([[[[w, h]]]])`` normaliser), which the production model must not use because
it breaks dynamic-shape export.

Module names and indices match the official class exactly, so ``state_dict()`` keys are the
ones of the official layout (docs/model.md, "Official checkpoints"; without the DDP
``module.`` prefix).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn, Tensor
import torch.nn.functional as F

__all__ = [
    'NUM_BATCHES_TRACKED',
    'PARAMS_11',
    'PARAMS_19',
    'PARAMS_19_WITH_BOUNDARY',
    'STATE_DICT_ENTRIES_19',
    'BasicBlock',
    'FlowPredictor',
    'OfficialMFARANet',
    'count_params',
    'from_scale_choice_layout',
    'load_reference_state_dict',
    'make_official_checkpoint',
    'official_warp_grid',
    'to_scale_choice_layout',
]

#: Parameters of the inference network (boundary heads excluded), K = 19 (docs/model.md).
PARAMS_19 = 12_996_748
#: Parameters of the inference network (boundary heads excluded), K = 11 (docs/model.md).
PARAMS_11 = 12_990_572
#: Parameters including the four training-only boundary heads, K = 19 (docs/model.md).
PARAMS_19_WITH_BOUNDARY = 12_997_264
#: state_dict entries of the official class with boundary heads, K = 19 (docs/model.md).
STATE_DICT_ENTRIES_19 = 263
#: Number of BatchNorm layers, i.e. of ``num_batches_tracked`` entries (docs/model.md).
NUM_BATCHES_TRACKED = 39

FAM_DIM = 128
STAGE_CHANNELS = (64, 128, 256, 512)
LAYOUTS = ('MFARANet', 'Scale_Choice')


def _resize(x: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """Bilinear resize with ``align_corners=True``, the official convention everywhere."""
    return F.interpolate(x, size=tuple(size), mode='bilinear', align_corners=True)


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """Bias-free 3x3 convolution whose padding equals its dilation."""
    return nn.Conv2d(
        in_ch,
        out_ch,
        kernel_size=3,
        stride=stride,
        padding=dilation,
        dilation=dilation,
        bias=False,
    )


def _cbr(in_ch: int, out_ch: int, kernel_size: int) -> nn.Sequential:
    """Conv (no bias, 'same' padding) -> BN -> ReLU, with official indices 0, 1, 2."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """ResNet BasicBlock of the deep-stem backbone; only ``conv2`` is dilated.

    Args:
        inplanes: Input channels.
        planes: Output channels.
        stride: Stride of ``conv1`` (and of the downsample convolution).
        dilation: Dilation (= padding) of ``conv2``.
        downsample: Optional ``Sequential(conv1x1, BN)`` for the residual path.
    """

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Sequential | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride=stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """Residual block forward pass."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def _make_layer(inplanes: int, planes: int, stride: int, dilation: int) -> nn.Sequential:
    """Two BasicBlocks; block 0 always has a 1x1 downsample (true for all four stages)."""
    downsample = nn.Sequential(
        nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(planes),
    )
    return nn.Sequential(
        BasicBlock(inplanes, planes, stride=stride, dilation=dilation, downsample=downsample),
        BasicBlock(planes, planes, dilation=dilation),
    )


def official_warp_grid(flow: Tensor, fine: Tensor) -> Tensor:
    """Builds the sampling grid exactly like the official (SFNet-style) code.

    The base grid comes from ``torch.linspace(-1, 1, n)`` created on the CPU (x over the
    width first, then y over the height) and the flow, permuted to ``(N, h, w, 2)``, is
    divided by a tensor ``[[[[w, h]]]]`` built from the fine map's size: no factor 1/2 and
    no ``(n - 1) / 2``.

    Args:
        flow: Flow field ``(N, 2, h, w)``; channel 0 is x, channel 1 is y.
        fine: The fine feature map ``(N, C, h, w)`` that fixes the grid size, dtype, device.

    Returns:
        Grid ``(N, h, w, 2)`` for ``F.grid_sample(..., align_corners=True)``.
    """
    n, _, h, w = fine.size()
    xs = torch.linspace(-1.0, 1.0, w)
    ys = torch.linspace(-1.0, 1.0, h)
    base = torch.stack((xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)), dim=2)
    base = base.unsqueeze(0).repeat(n, 1, 1, 1).type_as(fine).to(fine.device)
    norm = torch.tensor([[[[w, h]]]]).type_as(fine).to(fine.device)
    return base + flow.permute(0, 2, 3, 1) / norm


def _warp(x: Tensor, grid: Tensor) -> Tensor:
    """Samples ``x`` at ``grid`` (bilinear, zero padding, ``align_corners=True``)."""
    return F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=True)


class FlowPredictor(nn.Module):
    """Official ``warp_grid`` module: predicts the flow between a fine and a coarse map.

    Args:
        in_channels: Channels of both inputs (128).
        mid_channels: Channels after each 1x1 reduction (64).
    """

    def __init__(self, in_channels: int = FAM_DIM, mid_channels: int = FAM_DIM // 2) -> None:
        super().__init__()
        self.channel_change1 = nn.Conv2d(in_channels, mid_channels, kernel_size=1, bias=False)
        self.channel_change2 = nn.Conv2d(in_channels, mid_channels, kernel_size=1, bias=False)
        self.offset_map = nn.Conv2d(2 * mid_channels, 2, kernel_size=3, padding=1, bias=False)

    def flow(self, fine: Tensor, coarse: Tensor) -> Tensor:
        """Flow ``(N, 2, h, w)`` in pixels-ish units at the fine size.

        Args:
            fine: Fine map ``(N, 128, h, w)``; reduced by ``channel_change2``.
            coarse: Coarse map ``(N, 128, h', w')``; reduced by ``channel_change1`` and then
                upsampled to ``(h, w)``.

        Returns:
            The flow field.
        """
        coarse_up = _resize(self.channel_change1(coarse), fine.shape[-2:])
        return self.offset_map(torch.cat([self.channel_change2(fine), coarse_up], dim=1))

    def forward(self, fine: Tensor, coarse: Tensor) -> Tensor:
        """Sampling grid ``(N, h, w, 2)`` that warps a coarser map onto the fine map's grid."""
        return official_warp_grid(self.flow(fine, coarse), fine)


class OfficialMFARANet(nn.Module):
    """Official MFARANet inference network with the official module names and indices.

    Args:
        num_classes: Number of classes K.
        with_boundary: Create the training-only ``boundary_heads`` (present in official
            checkpoints; never used by ``forward``).
    """

    def __init__(self, num_classes: int = 19, with_boundary: bool = True) -> None:
        super().__init__()
        self.num_classes = num_classes
        stem = nn.Sequential(
            _conv3x3(3, 64, stride=2),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            _conv3x3(64, 64),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            _conv3x3(64, 128),
        )
        self.layer0 = nn.Sequential(
            stem,
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        self.layer1 = _make_layer(128, 64, stride=1, dilation=1)
        self.layer2 = _make_layer(64, 128, stride=2, dilation=1)
        self.layer3 = _make_layer(128, 256, stride=2, dilation=2)
        self.layer4 = _make_layer(256, 512, stride=2, dilation=4)

        self.channel_changes = nn.ModuleList(_cbr(c, FAM_DIM, 1) for c in STAGE_CHANNELS)
        self.feature_fuses_up = nn.ModuleList(_cbr(FAM_DIM, FAM_DIM, 3) for _ in range(3))
        self.feature_fuses_down = nn.ModuleList(_cbr(FAM_DIM, FAM_DIM, 3) for _ in range(3))
        self.stage_fuses = nn.ModuleList(_cbr(FAM_DIM, FAM_DIM, 3) for _ in range(2))
        self.multi_loss_head = nn.ModuleList(
            nn.Sequential(nn.Conv2d(FAM_DIM, num_classes, kernel_size=1, bias=True))
            for _ in range(4)
        )
        self.stages_offset = nn.ModuleList(FlowPredictor() for _ in range(3))
        self.HMSA_attentions = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(FAM_DIM, FAM_DIM // 2, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(FAM_DIM // 2),
                nn.ReLU(inplace=True),
                nn.Dropout(0.5),
                nn.Conv2d(FAM_DIM // 2, num_classes, kernel_size=1, bias=False),
                nn.Sigmoid(),
            )
            for _ in range(4)
        )
        if with_boundary:
            self.boundary_heads = nn.ModuleList(
                nn.Sequential(nn.Conv2d(FAM_DIM, 1, kernel_size=1, bias=True)) for _ in range(4)
            )

    def backbone(self, x: Tensor) -> list[Tensor]:
        """Returns C1..C4: 64 ch @/4, 128 @/8, 256 @/16, 512 @/32."""
        c1 = self.layer1(self.layer0(x))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return [c1, c2, c3, c4]

    def mfam(self, stages: list[Tensor]) -> list[Tensor]:
        """Dual-pyramid aggregation; returns F1..F4 (128 ch @ /4 /8 /16 /32)."""
        c = [lateral(s) for lateral, s in zip(self.channel_changes, stages)]
        # Top-down: u4 = c4, u_k = CBR3(up(u_{k+1}) + c_k); index k serves stage k + 1.
        up: list[Tensor] = [c[0], c[1], c[2], c[3]]
        for k in (2, 1, 0):
            up[k] = self.feature_fuses_up[k](_resize(up[k + 1], c[k].shape[-2:]) + c[k])
        # Bottom-up: d1 = c1, d_k = CBR3(resize(d_{k-1}) + c_k); index k serves stage k + 2.
        down: list[Tensor] = [c[0], c[1], c[2], c[3]]
        for k in (1, 2, 3):
            down[k] = self.feature_fuses_down[k - 1](_resize(down[k - 1], c[k].shape[-2:]) + c[k])
        f2 = self.stage_fuses[0](up[1] + down[1])
        f3 = self.stage_fuses[1](up[2] + down[2])
        return [up[0], f2, f3, down[3]]

    def grids(self, feats: list[Tensor]) -> list[Tensor]:
        """All three grids, from the un-warped MFAM outputs: grid_k from (F_k, F_{k+1})."""
        return [self.stages_offset[k](feats[k], feats[k + 1]) for k in range(3)]

    def ram(self, feats: list[Tensor], grids: list[Tensor] | None = None) -> list[Tensor]:
        """Recursive alignment; returns F̂1..F̂4, all at /4 (six ``grid_sample`` calls).

        Args:
            feats: F1..F4 from :meth:`mfam`.
            grids: The three grids from :meth:`grids`; computed from ``feats`` when omitted.

        Returns:
            F̂1 = F1, F̂2 = warp(F2, g0), F̂3 = warp(warp(F3, g1), g0),
            F̂4 = warp(warp(warp(F4, g2), g1), g0).
        """
        if grids is None:
            grids = self.grids(feats)
        aligned = [feats[0]]
        for i in range(1, 4):
            f = feats[i]
            for k in reversed(range(i)):
                f = _warp(f, grids[k])
            aligned.append(f)
        return aligned

    def fuse(self, aligned: list[Tensor]) -> Tensor:
        """ASFM: sum_i head_i(F̂i) * sigmoid-attention_i(F̂i), at /4."""
        fused = self.multi_loss_head[0](aligned[0]) * self.HMSA_attentions[0](aligned[0])
        for i in range(1, 4):
            fused = fused + self.multi_loss_head[i](aligned[i]) * self.HMSA_attentions[i](
                aligned[i]
            )
        return fused

    def forward_features(self, x: Tensor) -> dict[str, list[Tensor] | Tensor]:
        """Runs the network and returns every intermediate result.

        Args:
            x: Normalised RGB images ``(N, 3, H, W)``.

        Returns:
            Dict with ``'stages'`` (C1..C4), ``'feats'`` (F1..F4), ``'flows'`` (three
            ``(N, 2, h, w)`` flows), ``'grids'``, ``'aligned'`` (F̂1..F̂4), ``'scores'``
            (s_i), ``'attentions'`` (a_i), ``'fused'`` (/4) and ``'logits'`` (N, K, H, W).
        """
        stages = self.backbone(x)
        feats = self.mfam(stages)
        flows = [self.stages_offset[k].flow(feats[k], feats[k + 1]) for k in range(3)]
        grids = [official_warp_grid(flows[k], feats[k]) for k in range(3)]
        aligned = self.ram(feats, grids)
        fused = self.fuse(aligned)
        return {
            'stages': stages,
            'feats': feats,
            'flows': flows,
            'grids': grids,
            'aligned': aligned,
            'scores': [head(a) for head, a in zip(self.multi_loss_head, aligned)],
            'attentions': [att(a) for att, a in zip(self.HMSA_attentions, aligned)],
            'fused': fused,
            'logits': _resize(fused, x.shape[-2:]),
        }

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, K, H, W)`` of the official eval-mode forward pass.

        Args:
            x: Normalised RGB images ``(N, 3, H, W)`` (sides of at least 32 px).

        Returns:
            The logits, bilinearly upsampled (``align_corners=True``) to the input size.
        """
        fused = self.fuse(self.ram(self.mfam(self.backbone(x))))
        return _resize(fused, x.shape[-2:])


def count_params(model: nn.Module, include_boundary: bool = False) -> int:
    """Counts parameters, by default without the training-only boundary heads.

    Args:
        model: The model.
        include_boundary: Also count ``boundary_heads.*``.

    Returns:
        Number of parameter elements.
    """
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if include_boundary or not name.startswith('boundary_heads.')
    )


def _split_prefix(key: str) -> tuple[str, str]:
    prefix = 'module.' if key.startswith('module.') else ''
    return prefix, key[len(prefix) :]


def to_scale_choice_layout(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Renames ``MFARANet`` keys to the ``MFARANet_Scale_Choice`` layout.

    ``layerK.`` -> ``layerK.0.`` (K = 1..4) and ``HMSA_attentions`` -> ``ASFM_attentions``;
    a leading ``module.`` is kept. The inverse of importer rule 3 (docs/model.md, "Official
    checkpoints").

    Args:
        state_dict: Keys in the ``MFARANet`` layout.

    Returns:
        A new dict with the same tensors under Scale_Choice names, in the same order.
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        prefix, rest = _split_prefix(key)
        for k in range(1, 5):
            if rest.startswith(f'layer{k}.'):
                rest = f'layer{k}.0.' + rest[len(f'layer{k}.') :]
                break
        if rest.startswith('HMSA_attentions.'):
            rest = 'ASFM_attentions.' + rest[len('HMSA_attentions.') :]
        out[prefix + rest] = value
    return out


def from_scale_choice_layout(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Inverse of :func:`to_scale_choice_layout` (importer rule 3 of docs/model.md).

    Args:
        state_dict: Keys in the ``MFARANet_Scale_Choice`` layout.

    Returns:
        A new dict with ``MFARANet`` names.
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        prefix, rest = _split_prefix(key)
        for k in range(1, 5):
            if rest.startswith(f'layer{k}.0.'):
                rest = f'layer{k}.' + rest[len(f'layer{k}.0.') :]
                break
        if rest.startswith('ASFM_attentions.'):
            rest = 'HMSA_attentions.' + rest[len('ASFM_attentions.') :]
        out[prefix + rest] = value
    return out


def load_reference_state_dict(path: str | Path, keep_boundary: bool = True) -> dict[str, Tensor]:
    """Reads an official-format checkpoint into :class:`OfficialMFARANet` key names.

    Strips ``module.``, maps the Scale_Choice layout back, drops ``criterion.*`` and
    ``aux_head.*`` (and ``boundary_heads.*`` unless ``keep_boundary``).

    Args:
        path: Checkpoint written by :func:`make_official_checkpoint` (or an official one).
        keep_boundary: Keep the boundary head weights.

    Returns:
        A state_dict loadable strictly into ``OfficialMFARANet(K, with_boundary=...)``.
    """
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    sd = {k.removeprefix('module.'): v for k, v in ckpt['state_dict'].items()}
    if any(k.startswith('ASFM_attentions.') for k in sd):
        sd = from_scale_choice_layout(sd)
    drop = ('criterion.', 'aux_head.') + (() if keep_boundary else ('boundary_heads.',))
    return {k: v for k, v in sd.items() if not k.startswith(drop)}


def _bn_layers(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


@torch.no_grad()
def _calibrate_bn(model: OfficialMFARANet, x: Tensor) -> None:
    """Sets every BN's running stats to the batch statistics of one forward pass on ``x``."""
    saved = [(bn, bn.momentum) for bn in _bn_layers(model)]
    for bn, _ in saved:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: after one batch, stats = batch stats
    model.train()
    model(x)
    for bn, momentum in saved:
        bn.momentum = momentum
    model.eval()


@torch.no_grad()
def _randomise(model: OfficialMFARANet, gen: torch.Generator, flow_std_px: float) -> None:
    """Random, non-trivial weights with O(1) activations and flows of a few pixels."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            m.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=gen)
            if m.bias is not None:
                m.bias.normal_(0.0, 0.1, generator=gen)
    # Score heads and the attention's last conv: unit-gain outputs (logits of O(1)).
    for head in model.multi_loss_head:
        head[0].weight.normal_(0.0, (1.0 / FAM_DIM) ** 0.5, generator=gen)
    for att in model.HMSA_attentions:
        att[4].weight.normal_(0.0, (1.0 / (FAM_DIM // 2)) ** 0.5, generator=gen)

    # Non-trivial BN affine parameters; running stats are calibrated to real statistics next.
    for bn in _bn_layers(model):
        bn.weight.copy_(torch.empty(bn.num_features).uniform_(0.6, 1.4, generator=gen))
        bn.bias.copy_(0.2 * torch.randn(bn.num_features, generator=gen))

    x = torch.randn(1, 3, 128, 256, generator=gen)
    _calibrate_bn(model, x)
    _scale_flows(model, x, flow_std_px)
    _calibrate_bn(model, x)  # the attention BNs now see features warped by realistic flows

    # Make BN eval non-trivial: perturb the running stats around the calibrated values.
    for bn in _bn_layers(model):
        c = bn.num_features
        std = (bn.running_var + bn.eps).sqrt()
        bn.running_mean.add_(0.05 * std * torch.randn(c, generator=gen))
        bn.running_var.mul_(torch.empty(c).uniform_(0.8, 1.25, generator=gen))
        bn.num_batches_tracked.fill_(int(torch.randint(1_000, 100_000, (1,), generator=gen)))
    _scale_flows(model, x, flow_std_px)


@torch.no_grad()
def _scale_flows(model: OfficialMFARANet, x: Tensor, flow_std_px: float) -> None:
    """Scales each ``offset_map`` so its flow on ``x`` has standard deviation ``flow_std_px``."""
    model.eval()
    feats = model.mfam(model.backbone(x))
    for k, pred in enumerate(model.stages_offset):
        std = float(pred.flow(feats[k], feats[k + 1]).std())
        pred.offset_map.weight.mul_(flow_std_px / max(std, 1e-12))


def make_official_checkpoint(
    path: str | Path,
    num_classes: int = 19,
    seed: int = 0,
    layout: str = 'MFARANet',
    with_criterion: bool = True,
    with_boundary: bool = True,
    flow_std_px: float = 2.0,
) -> OfficialMFARANet:
    """Builds a randomly initialised reference and saves it like an official checkpoint.

    The file is ``torch.save({'epoch': 200, 'state_dict': {'module.' + k: v}, 'optimizer':
    {}})``, as written by the official DDP training loop. Weights are seeded; every BN gets
    random running stats (positive variances) and affine parameters, convolutions are scaled
    so activations stay O(1) (BN running stats are calibrated on a random 1x3x128x256 input,
    then perturbed), and each flow predictor yields flows of about ``flow_std_px`` pixels
    standard deviation on that input (somewhat more on larger inputs).

    Args:
        path: Output file.
        num_classes: Number of classes K.
        seed: Seed of the private random generator (the global RNG state is not changed).
        layout: ``'MFARANet'`` or ``'Scale_Choice'`` (``layerK.0.*``, ``ASFM_attentions.*``).
        with_criterion: Add ``module.criterion.nll_loss.weight`` of shape ``(K,)``.
        with_boundary: Create and save the ``boundary_heads``.
        flow_std_px: Target standard deviation of the predicted flows.

    Returns:
        The reference model in eval mode, holding exactly the saved weights.

    Raises:
        ValueError: For an unknown ``layout``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f'unknown layout {layout!r}, expected one of {LAYOUTS}')
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = OfficialMFARANet(num_classes=num_classes, with_boundary=with_boundary)
        _randomise(model, gen, flow_std_px)  # train-mode dropout draws from the global RNG
    model.eval()

    sd: dict[str, Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if layout == 'Scale_Choice':
        sd = to_scale_choice_layout(sd)
    state_dict = {'module.' + k: v for k, v in sd.items()}
    if with_criterion:
        weight = torch.empty(num_classes).uniform_(0.8, 1.2, generator=gen)
        state_dict['module.criterion.nll_loss.weight'] = weight
    torch.save({'epoch': 200, 'state_dict': state_dict, 'optimizer': {}}, Path(path))
    return model
