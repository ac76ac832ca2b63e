"""Model, optimiser and schedule of a training run (build -> backbone -> seeded decoder)."""

from __future__ import annotations

import logging
from typing import Any

import torch

import segnode.cpu as cpu
from segnode.data.dataset import SegmentationDataset
from segnode.errors import CheckpointError
from segnode.model.backbone import load_imagenet_backbone
from segnode.model.checkpoint import read_checkpoint
from segnode.model.mfaranet import build_mfaranet, MFARANet
from segnode.train.class_weights import class_weights, label_frequencies
from segnode.train.config import TrainConfig
from segnode.train.losses import MJSLoss
from segnode.train.state import load_state

__all__ = [
    'build_criterion',
    'build_optimizer',
    'build_training_model',
    'emulated_amp',
    'poly_schedule',
]

_LOG = logging.getLogger('segnode.train')


def build_training_model(
    cfg: TrainConfig, num_classes: int, *, load_weights: bool = True
) -> MFARANet:
    """The MFARANet to train: boundary heads, a decoder seeded by ``cfg.seed``, a backbone.

    The backbone is loaded from ``cfg.pretrained`` (deep-stem or torchvision ResNet-18) when
    given, or the whole network from the segnode checkpoint ``cfg.init``; otherwise it trains
    from scratch. Equalizers stay unmeasured unless ``cfg.init`` brings measured ones
    (``model.equalizer_provenance['state'] == 'measured'``). ``load_weights=False`` skips
    both (a resumed run takes its weights from the training state).
    """
    torch.manual_seed(cfg.seed)
    model = build_mfaranet(
        num_classes=num_classes,
        width=cfg.width,
        equalizers=cfg.equalizers,
        per_channel_equalizers=cfg.per_channel_equalizers,
        boundary_heads=True,
    )
    if not load_weights:
        return model
    if cfg.pretrained:
        random_keys = load_imagenet_backbone(model.backbone, cfg.pretrained)
        _LOG.info(
            'ImageNet backbone from %s (%d backbone tensors left at random init)',
            cfg.pretrained,
            len(random_keys),
        )
    elif cfg.init:
        _init_from_checkpoint(model, cfg.init)
    else:
        _LOG.info('no ImageNet weights given (pretrained=): random initialisation')
    return model


def _read_init(path: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights and equalizer provenance of a segnode checkpoint or a training-state file."""
    try:
        state, meta = read_checkpoint(path)
        return state, dict(meta.get('equalizers') or {})
    except CheckpointError as not_checkpoint:
        try:
            saved = load_state(path)  # a state/iter_*.pt file: a run cut short still seeds one
        except CheckpointError:
            raise not_checkpoint from None
        return saved['model'], dict(saved.get('equalizers') or {})


def _init_from_checkpoint(model: MFARANet, path: str) -> None:
    """Copy every tensor of a checkpoint or training state whose name and shape match.

    Raises:
        CheckpointError: Unreadable file, or one that shares no tensor with the model.
    """
    state, equalizers = _read_init(path)
    own = model.state_dict()
    loaded = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    if not loaded:
        raise CheckpointError(f'{path} shares no tensor with this model (width or layout differs)')
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in loaded.items()}, strict=False)
    fresh = sorted(set(own) - set(loaded))
    if any('equalizers.' in k for k in fresh) or not isinstance(equalizers.get('state'), str):
        equalizers = {'state': 'unmeasured'}
    model.equalizer_provenance = equalizers
    _LOG.info(
        'initialised from %s: %d tensors loaded, %d left at fresh init%s; equalizers %s',
        path,
        len(loaded),
        len(fresh),
        f' ({", ".join(fresh[:3])}{", ..." if len(fresh) > 3 else ""})' if fresh else '',
        equalizers['state'],
    )


def emulated_amp(amp: str, device: torch.device) -> str:
    """Why ``amp`` would be slow on ``device``: bf16 on a CPU without native bf16; else ''.

    There torch emulates bf16 and a training step is several times slower than in fp32 (0.08
    against 0.63 images/s at 360x480 on an AVX2-only 2-core EPYC, bench/train_step.py).
    """
    if amp == 'bf16' and device.type == 'cpu' and not cpu.native_bf16():
        return (
            'amp=bf16 on a CPU without avx512_bf16 or amx_bf16: torch emulates bf16 here, '
            'several times slower than fp32; use amp=none (docs/training.md)'
        )
    return ''


def build_criterion(cfg: TrainConfig, train: SegmentationDataset) -> MJSLoss:
    """The MJS loss of ``cfg``, with class weights from ``train``'s labels if configured."""
    weights = None
    if cfg.class_weights != 'none':
        spec = train.spec
        labels = (spec.decode(label) for _, label in train.pairs)
        frequencies = label_frequencies(labels, spec.table.num_classes)
        weights = class_weights(cfg.class_weights, frequencies)
        assert weights is not None
        shown = ', '.join(
            f'{name} {w:.2f}' for name, w in zip(spec.table.names, weights.tolist(), strict=True)
        )
        _LOG.info('class weights (%s, %d label files): %s', cfg.class_weights, len(train), shown)
    return MJSLoss(
        cfg.ohem_thresh,
        cfg.ohem_min_kept,
        cfg.boundary_weight,
        cfg.attention_weight,
        cfg.attention_thresh,
        weights,
    )


def build_optimizer(model: MFARANet, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD: backbone at ``lr``, everything else at ``lr * head_lr_mult``, decay on all."""
    backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    ids = {id(p) for p in backbone}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    groups = [
        {'params': backbone, 'lr': cfg.lr, 'name': 'backbone'},
        {'params': rest, 'lr': cfg.lr * cfg.head_lr_mult, 'name': 'decoder'},
    ]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def poly_schedule(
    optimizer: torch.optim.Optimizer, max_iters: int, power: float, warmup_iters: int = 0
) -> torch.optim.lr_scheduler.LambdaLR:
    """LR x (1 - iteration / max_iters) ** power, stepped once per iteration.

    With ``warmup_iters``, the factor also ramps linearly from 1 / warmup_iters to 1 over the
    first ``warmup_iters`` iterations.
    """

    def factor(iteration: int) -> float:
        poly = max(0.0, 1.0 - iteration / max_iters) ** power
        if iteration < warmup_iters:
            poly *= (iteration + 1) / warmup_iters
        return float(poly)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
