"""Deep-stem ResNet-18 with dilated layer3/layer4 (output stride 32), as in MFARANet.

Module names follow the official code so state_dict keys map one to one:
``layer0`` (deep stem + BN + ReLU + max-pool) and ``layer1`` .. ``layer4``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn, Tensor

from segnode.errors import CheckpointError

__all__ = ['BasicBlock', 'DeepStemResNet18', 'load_imagenet_backbone']


def conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution without bias, padded to keep the size (at stride 1)."""
    return nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """ResNet basic block; only ``conv2`` is dilated (the dilation quirk of docs/model.md)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(cout, cout, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        """Residual block forward."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        result: Tensor = self.relu(out + identity)
        return result


def _stage(cin: int, cout: int, stride: int, dilation: int) -> nn.Sequential:
    return nn.Sequential(
        BasicBlock(cin, cout, stride, dilation), BasicBlock(cout, cout, 1, dilation)
    )


class DeepStemResNet18(nn.Module):
    """The ResNet-18 backbone of MFARANet.

    Returns the four stage outputs C1..C4: 64 channels at /4, 128 at /8, 256 at /16 and
    512 at /32. The stem is three 3x3 convs (64, 64, 128 channels; the 128-channel BN and ReLU
    follow as ``layer0.1``/``layer0.2``), so layer1 starts from 128 channels and its first
    block has a 1x1 downsample.
    """

    channels = (64, 128, 256, 512)

    def __init__(self) -> None:
        super().__init__()
        stem = nn.Sequential(
            conv3x3(3, 64, stride=2),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            conv3x3(64, 64),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            conv3x3(64, 128),
        )
        self.layer0 = nn.Sequential(
            stem, nn.BatchNorm2d(128), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
        )
        self.layer1 = _stage(128, 64, stride=1, dilation=1)
        self.layer2 = _stage(64, 128, stride=2, dilation=1)
        self.layer3 = _stage(128, 256, stride=2, dilation=2)
        self.layer4 = _stage(256, 512, stride=2, dilation=4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Return (C1, C2, C3, C4) at strides 4, 8, 16 and 32."""
        c1 = self.layer1(self.layer0(x))  # (N, 64, H/4, W/4)
        c2 = self.layer2(c1)  # (N, 128, H/8, W/8)
        c3 = self.layer3(c2)  # (N, 256, H/16, W/16)
        c4 = self.layer4(c3)  # (N, 512, H/32, W/32)
        return c1, c2, c3, c4


def _map_imagenet_key(key: str) -> str | None:
    """Map a deep-stem or torchvision ResNet-18 key to ours; None for keys to drop."""
    if key.startswith('fc.'):
        return None
    if key.startswith('conv1.'):  # deep stem: conv1.{0,1,3,4,6}.*
        return 'layer0.0.' + key[len('conv1.') :]
    if key.startswith('bn1.'):
        return 'layer0.1.' + key[len('bn1.') :]
    return key


def load_imagenet_backbone(backbone: DeepStemResNet18, path: str | Path) -> list[str]:
    """Initialise the backbone from an ImageNet checkpoint the user provides.

    Accepts the deep-stem ``resnet18-deep-inplane128.pth`` (SFNet) layout. A torchvision
    ResNet-18 (7x7 stem, 64-channel layer1 input) is accepted too: its layer1..layer4 weights
    load, except layer1's first block (whose input width differs), and the stem stays randomly
    initialised. Nothing is ever downloaded.

    Returns:
        The keys of the backbone that stayed at their random initialisation.

    Raises:
        CheckpointError: The file is unreadable or a shared key has the wrong shape.
    """
    try:
        raw = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(f'cannot read ImageNet weights {path}: {err}') from err
    if isinstance(raw, dict) and 'state_dict' in raw:
        raw = raw['state_dict']
    if not isinstance(raw, dict):
        raise CheckpointError(f'{path}: expected a state_dict, got {type(raw).__name__}')
    state = {str(k).removeprefix('module.'): v for k, v in raw.items()}
    torchvision_stem = 'conv1.weight' in state
    ours = backbone.state_dict()
    loaded: dict[str, Tensor] = {}
    for key, value in state.items():
        if torchvision_stem and (
            key.startswith(('conv1.', 'bn1.')) or key.startswith('layer1.0.')
        ):
            continue
        target = _map_imagenet_key(key)
        if target is None:
            continue
        if target not in ours:
            raise CheckpointError(f'{path}: unexpected key {key!r} for a ResNet-18 backbone')
        if ours[target].shape != value.shape:
            raise CheckpointError(
                f'{path}: {key!r} has shape {tuple(value.shape)}, '
                f'the backbone expects {tuple(ours[target].shape)}'
            )
        loaded[target] = value
    if not loaded:
        raise CheckpointError(f'{path}: no ResNet-18 weights found')
    backbone.load_state_dict(loaded, strict=False)
    return sorted(set(ours) - set(loaded))
