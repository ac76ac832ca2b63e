"""Import the released official MFARANet checkpoints (docs/model.md, "Official checkpoints").

Official files are ``{'epoch', 'state_dict', 'optimizer'}`` from a DDP model: every key starts
with ``module.``. Two key layouts exist: the ``MFARANet`` class and ``MFARANet_Scale_Choice``
(stages wrapped as ``layerK.0.<block>``, attention named ``ASFM_attentions``). The loss module
(``criterion.*``) and the unused ``aux_head.*`` are dropped, and so are the training-only
boundary heads unless asked for. Every other key must map onto ours; anything left over is an
error, never silently skipped (the official inference loads with ``strict=False`` and can skip
the whole backbone). Equalizers are inserted as identity (mu = 0, sigma = 1), which reproduces
the official network exactly.
"""

from __future__ import annotations

from pathlib import Path
import re
from typing import Any

import torch
from torch import Tensor

from segnode.errors import CheckpointError
from segnode.model.checkpoint import FORMAT, has_segnode_keys, load_tensors_file
from segnode.model.mfaranet import build_mfaranet, MFARANet

__all__ = ['convert_official_state', 'load_official']

# official prefix -> ours, tried in order (first match wins)
_PREFIXES = (
    (r'layer([0-4])\.', r'backbone.layer\1.'),
    (r'channel_changes\.', 'mfam.laterals.'),
    (r'feature_fuses_up\.', 'mfam.top_down.'),
    (r'feature_fuses_down\.', 'mfam.bottom_up.'),
    (r'stage_fuses\.', 'mfam.merges.'),
    (r'multi_loss_head\.(\d)\.0\.', r'score_heads.\1.'),
    (r'boundary_heads\.(\d)\.0\.', r'boundary_heads.\1.'),
    (r'stages_offset\.(\d)\.channel_change1\.', r'ram.flows.\1.coarse_proj.'),
    (r'stages_offset\.(\d)\.channel_change2\.', r'ram.flows.\1.fine_proj.'),
    (r'stages_offset\.(\d)\.offset_map\.', r'ram.flows.\1.flow.'),
    (r'HMSA_attentions\.', 'asfm.attentions.'),
)
_DROPPED = ('criterion.', 'aux_head.')


def _detect_layout(keys: set[str]) -> str:
    if (
        any(
            k.startswith('HMSA_attentions.0.3.') or k.startswith('ASFM_attentions.0.3.')
            for k in keys
        )
        or 'channel_changes.0.1.weight' not in keys
    ):
        raise CheckpointError(
            'this looks like a model_MFARANet_Speed checkpoint (decoder BN removed); its keys '
            'are not compatible with MFARANet and it cannot be imported'
        )  # fmt: skip
    if any(k.startswith('ASFM_attentions.') for k in keys) or any(
        re.match(r'layer[1-4]\.0\.0\.', k) for k in keys
    ):
        return 'MFARANet_Scale_Choice'
    return 'MFARANet'


def convert_official_state(
    state: dict[str, Tensor], keep_boundary: bool = False
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Map an official state_dict (with or without ``module.``) onto segnode's key names.

    Returns:
        The mapped state and a report: ``layout``, ``num_classes``, ``dropped`` key counts.

    Raises:
        CheckpointError: An unknown layout, or keys that map to nothing.
    """
    state = {k.removeprefix('module.'): v for k, v in state.items()}
    layout = _detect_layout(set(state))
    mapped: dict[str, Tensor] = {}
    dropped: dict[str, int] = {}
    unmapped: list[str] = []
    for key, value in state.items():
        drop = next((p for p in _DROPPED if key.startswith(p)), None)
        if drop is None and key.startswith('boundary_heads.') and not keep_boundary:
            drop = 'boundary_heads.'
        if drop is not None:
            dropped[drop] = dropped.get(drop, 0) + 1
            continue
        if layout == 'MFARANet_Scale_Choice':
            key = re.sub(r'^layer([1-4])\.0\.', r'layer\1.', key)
            key = re.sub(r'^ASFM_attentions\.', 'HMSA_attentions.', key)
        for pattern, repl in _PREFIXES:
            new, n = re.subn('^' + pattern, repl, key)
            if n:
                mapped[new] = value
                break
        else:
            unmapped.append(key)
    if unmapped:
        raise CheckpointError(
            f'{len(unmapped)} official keys have no counterpart in segnode: {unmapped[:8]}'
        )
    if 'score_heads.0.weight' not in mapped:
        raise CheckpointError('no score head (multi_loss_head.0.0.weight) in the checkpoint')
    k = int(mapped['score_heads.0.weight'].shape[0])
    return mapped, {'layout': layout, 'num_classes': k, 'dropped': dropped}


def load_official(
    path: str | Path, keep_boundary: bool = False
) -> tuple[MFARANet, dict[str, Any]]:
    """Read an official checkpoint into an MFARANet with identity equalizers.

    Returns:
        The eval-mode model (fp32) and the conversion report.

    Raises:
        CheckpointError: Unreadable file, unknown layout, unmapped or missing keys, or shapes
            that do not fit.
    """
    path = Path(path)
    raw = load_tensors_file(path, 'official checkpoint')
    if isinstance(raw, dict) and raw.get('format') == FORMAT:
        raise CheckpointError(
            f'{path} is already a segnode checkpoint: use it as it is (segnode info {path})'
        )
    if isinstance(raw, dict) and isinstance(raw.get('state_dict'), dict):
        raw = raw['state_dict']
    if has_segnode_keys(raw):
        raise CheckpointError(
            f'{path} holds segnode key names, not official ones: nothing to convert '
            '(write it with segnode.model.checkpoint.save_checkpoint to add the metadata)'
        )
    if not isinstance(raw, dict) or not all(isinstance(v, Tensor) for v in raw.values()):
        raise CheckpointError(f'{path} holds no state_dict of tensors')
    mapped, report = convert_official_state(raw, keep_boundary)
    model = build_mfaranet(
        num_classes=report['num_classes'], equalizers=True, boundary_heads=keep_boundary
    )
    expected = model.state_dict()
    for key, value in expected.items():  # the one sanctioned way to get identity constants
        if '.equalizers.' in f'.{key}':
            mapped[key] = (
                torch.zeros_like(value) if key.endswith('.mean') else torch.ones_like(value)
            )
    missing = sorted(set(expected) - set(mapped))
    if missing:
        raise CheckpointError(f'{path}: {len(missing)} model keys missing, e.g. {missing[:8]}')
    for key, value in mapped.items():
        if key not in expected:
            raise CheckpointError(f'{path}: key {key} does not exist in MFARANet')
        if value.shape != expected[key].shape:
            raise CheckpointError(
                f'{path}: {key} has shape {tuple(value.shape)}, MFARANet expects '
                f'{tuple(expected[key].shape)}'
            )
    model.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in mapped.items()}
    )
    model.equalizer_provenance = {
        'state': 'identity',
        'note': 'official checkpoint trained without equalizers; mu=0, sigma=1 written on import',
    }
    report['source'] = str(path)
    return model.eval(), report
