"""segnode's own checkpoint format: weights plus everything needed to describe them.

A checkpoint is ``torch.save`` of a plain dict (loadable with ``weights_only=True``)::

    {'format': 'segnode-checkpoint', 'version': 1,
     'state_dict': {...},            # unfolded weights; equalizer constants are buffers
     'meta': {'model': ModelConfig fields, 'classes': {'names', 'palette'}, 'dataset',
              'equalizers': provenance ('state': none|unmeasured|identity|measured, ...),
              'recipe', 'metrics', 'source', 'git_revision', 'created', 'folded': False}}

Writes are atomic (temporary file, then rename): a crash never leaves a half-written file.

Reading checks everything before a model is built (``checkpoint_meta``): the metadata schema,
every tensor's values and shapes, and the weights' SHA-256. A file without
``meta.weights_sha256`` is refused: every checkpoint segnode writes records it, so one without
it predates the hash or was altered; :func:`rehash_checkpoint` (``segnode rehash``) re-saves a
trusted old file with it (docs/model.md, "Checkpoint integrity"). Equalizer provenance stored
under older names is read under the current ones (``checkpoint_meta.current_provenance``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import datetime
import hashlib
from pathlib import Path
import pickle
import re
import subprocess
from typing import Any
import warnings
import zipfile

import torch
from torch import Tensor

from segnode.config import config_from_dict, config_to_dict, ModelConfig
from segnode.errors import CheckpointError, one_line
from segnode.files import atomic_write
from segnode.model import fold as folding
from segnode.model.checkpoint_meta import (
    check_meta,
    check_shapes,
    check_tensors,
    current_provenance,
    expected_state,
)
from segnode.model.mfaranet import MFARANet

__all__ = [
    'FORMAT',
    'atomic_save',
    'build_from_checkpoint',
    'git_revision',
    'has_segnode_keys',
    'load_tensors_file',
    'load_model',
    'read_checkpoint',
    'rehash_checkpoint',
    'save_checkpoint',
    'state_sha256',
]

FORMAT = 'segnode-checkpoint'
VERSION = 1
_SEGNODE_PREFIXES = ('backbone.', 'mfam.', 'ram.', 'asfm.', 'score_heads.')


def git_revision() -> str:
    """The source tree's git revision (with ``-dirty``), or ``'unknown'`` outside a checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(
            ['git', 'describe', '--always', '--dirty', '--abbrev=12'],
            cwd=root, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    return rev or 'unknown'


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def state_sha256(state: Mapping[str, Tensor]) -> str:
    """SHA-256 of a state dict: every tensor's name, dtype, shape and bytes, in name order.

    Recorded as ``meta['weights_sha256']`` when a checkpoint is saved and checked when it is
    read, so a flipped byte inside the weights is refused instead of loaded.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f'{name}:{t.dtype}:{tuple(t.shape)}'.encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(
    model: MFARANet,
    path: str | Path,
    *,
    class_names: Sequence[str],
    palette: Sequence[Sequence[int]],
    dataset: str,
    recipe: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    source: str = '',
    half: bool = False,
) -> dict[str, Any]:
    """Write ``model`` (unfolded) with its metadata; returns the metadata.

    Args:
        model: The model; its ``equalizer_provenance`` is stored.
        path: Destination file.
        class_names: K names, in class-id order.
        palette: K RGB colours.
        dataset: Dataset the weights were trained on (e.g. ``'camvid'``).
        recipe: Training recipe (config, schedule, seeds).
        metrics: Measured results (e.g. ``{'val_miou': ...}``).
        source: Where the weights came from (training run, converted file).
        half: Store floating-point tensors as fp16 (the shipped default model).
    """
    k = model.config.num_classes
    if len(class_names) != k or len(palette) != k:
        raise CheckpointError(
            f'{k} classes but {len(class_names)} names and {len(palette)} palette colours'
        )
    if model.folded:
        raise CheckpointError('refusing to save a folded model: save the unfolded one')
    state = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
        for k, v in model.state_dict().items()
    }
    meta = {
        'model': config_to_dict(model.config),
        'classes': {'names': list(class_names), 'palette': [list(c) for c in palette]},
        'dataset': dataset,
        'equalizers': dict(model.equalizer_provenance),
        'recipe': dict(recipe or {}),
        'metrics': dict(metrics or {}),
        'source': source,
        'git_revision': git_revision(),
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'folded': False,
        'dtype': 'float16' if half else 'float32',
        'weights_sha256': state_sha256(state),
    }
    atomic_save({'format': FORMAT, 'version': VERSION, 'state_dict': state, 'meta': meta}, path)
    return meta


def read_checkpoint(
    path: str | Path, *, allow_unverified: bool = False
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read and validate a segnode checkpoint; returns ``(state_dict, meta)``.

    Before anything is built: the metadata schema, every tensor (finite, bounded, its shape
    that of the architecture ``meta.model`` describes) and the recorded weights' SHA-256.
    ``meta['equalizers']`` comes with the current names (a file written before a rename keeps
    the old ones).

    Args:
        path: The checkpoint.
        allow_unverified: Accept a file without ``meta.weights_sha256`` (a trusted old file;
            :func:`rehash_checkpoint` re-saves one with the hash).

    Raises:
        CheckpointError: Missing or unreadable file, an official (unconverted) checkpoint,
            a file that is not a segnode checkpoint, or one whose metadata, tensors or hash
            are wrong (one line naming the field).
    """
    state, meta = _read_stored(Path(path), allow_unverified)
    if isinstance(meta.get('equalizers'), Mapping):
        meta = {**meta, 'equalizers': current_provenance(meta['equalizers'])}
    return state, meta


def _read_stored(path: Path, allow_unverified: bool) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read and validate a checkpoint; its metadata as stored (see ``read_checkpoint``)."""
    raw = load_tensors_file(path, 'checkpoint')
    if not isinstance(raw, dict) or raw.get('format') != FORMAT:
        if has_segnode_keys(raw) or has_segnode_keys(_get(raw, 'state_dict')):
            raise CheckpointError(
                f'{path} holds bare segnode weights without the metadata a checkpoint carries '
                '(classes, palette); write one with segnode.model.checkpoint.save_checkpoint'
            )
        if isinstance(raw, dict) and 'state_dict' in raw:
            raise CheckpointError(
                f'{path} looks like an official MFARANet checkpoint; convert it first: '
                f'segnode convert-official {path} OUT.pt'
            )
        raise CheckpointError(f'{path} is not a segnode checkpoint')
    if raw.get('version') != VERSION:
        raise CheckpointError(f'{path}: checkpoint version {raw.get("version")} unsupported')
    state, meta = raw.get('state_dict'), raw.get('meta')
    if not isinstance(state, dict) or not isinstance(meta, dict):
        raise CheckpointError(f'{path}: a segnode checkpoint needs a state_dict and a meta dict')
    check_tensors(state, str(path))
    config = check_meta(meta, str(path))
    check_shapes(expected_state(config), state, str(path))
    recorded = meta.get('weights_sha256')
    if recorded is None:
        if allow_unverified:
            return state, meta
        raise CheckpointError(
            f'{path} has no meta.weights_sha256, so its weights are unverified: every checkpoint '
            'segnode writes records it, so this file predates the hash or was altered. If you '
            f'trust it, re-save it with the hash: segnode rehash {path} OUT.pt'
        )
    if recorded != state_sha256(state):
        raise CheckpointError(
            f'{path}: the weights do not match the sha256 recorded when the file was saved '
            '(the file is corrupt or was altered)'
        )
    return state, meta


def has_segnode_keys(state: Any) -> bool:
    """Whether ``state`` is a dict of tensors named the way segnode's MFARANet names them."""
    return (
        isinstance(state, dict)
        and bool(state)
        and all(isinstance(v, Tensor) for v in state.values())
        and any(str(k).startswith(_SEGNODE_PREFIXES) for k in state)
    )


def _get(raw: Any, key: str) -> Any:
    return raw.get(key) if isinstance(raw, dict) else None


def load_tensors_file(path: Path, what: str) -> Any:
    """``torch.load`` with ``weights_only=True``, every failure as a one-line CheckpointError.

    Args:
        path: The file.
        what: What it should be (``'checkpoint'``, ``'training state'``), for messages.
    """
    if path.is_dir():
        raise CheckpointError(f'{what} {path} is a directory, not a file')
    if not path.is_file():
        raise CheckpointError(f'{what} not found: {path}')
    if path.stat().st_size == 0:
        raise CheckpointError(f'{what} {path} is empty (0 bytes)')
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                damaged = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise CheckpointError(f'{what} {path} is a damaged zip archive: {err}') from err
        if damaged is not None:
            raise CheckpointError(
                f'{what} {path} is corrupt: the CRC of {damaged} does not match its data'
            )
    try:
        with warnings.catch_warnings():  # a raw pickle's protocol warning: refused below anyway
            warnings.filterwarnings('ignore', 'Detected pickle protocol', UserWarning)
            return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r'Unsupported global: GLOBAL (\S+)', str(err))
        if found:
            raise CheckpointError(
                f'{what} {path} holds Python objects besides tensors and plain data '
                f'({found.group(1)}: code that would run on loading); refused'
            ) from None
        raise CheckpointError(
            f'{what} {path} is not a PyTorch file (its pickle data is not a torch.save file)'
        ) from None
    except Exception as err:  # noqa: BLE001 - torch raises many types for corrupt files
        if not zipfile.is_zipfile(path):
            raise CheckpointError(
                f'{what} {path} is not a PyTorch file (neither a zip archive nor a legacy '
                'torch.save file)'
            ) from None
        reason = one_line(err)
        raise CheckpointError(
            f'cannot read {what} {path}: {reason} (truncated or corrupt?)'
        ) from None


def build_from_checkpoint(
    path: str | Path,
    *,
    num_classes: int | None = None,
    boundary_heads: bool = False,
    pruned: bool | None = None,
) -> tuple[MFARANet, dict[str, Any]]:
    """Build the model a checkpoint describes and load its weights strictly (fp32).

    Args:
        path: Checkpoint file.
        num_classes: Refuse a checkpoint with another class count.
        boundary_heads: Keep the training-only boundary heads (resume training); dropped
            otherwise.
        pruned: Override the pruned-inference option.
    """
    path = Path(path)
    state, meta = read_checkpoint(path)
    config = config_from_dict(ModelConfig, meta['model'], 'meta.model.')  # checked on reading
    if num_classes is not None and config.num_classes != num_classes:
        raise CheckpointError(
            f'{path} has {config.num_classes} classes, {num_classes} were expected'
        )
    if boundary_heads and not config.boundary_heads:
        raise CheckpointError(f'{path} has no boundary heads to resume training with')
    if not boundary_heads:
        state = {k: v for k, v in state.items() if not k.startswith('boundary_heads.')}
    overrides: dict[str, Any] = {'boundary_heads': boundary_heads}
    if pruned is not None:
        overrides['pruned'] = pruned
    config = config_from_dict(ModelConfig, {**config_to_dict(config), **overrides})
    check_shapes(expected_state(config), state, str(path))  # before building anything
    model = MFARANet(config)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    model.equalizer_provenance = dict(meta.get('equalizers', {'state': 'unknown'}))
    return model.eval(), meta


def rehash_checkpoint(src: str | Path, dst: str | Path) -> tuple[dict[str, Any], bool]:
    """Re-save a trusted checkpoint that has no ``meta.weights_sha256`` with the hash.

    Every other check still applies (metadata, tensor values and shapes); the weights and the
    metadata are written unchanged, with the hash of the weights as they are now. The hash
    cannot tell whether they were altered before: re-save only a file you trust.

    Returns:
        The metadata written, and whether ``src`` already had a (verified) hash.
    """
    state, meta = _read_stored(Path(src), allow_unverified=True)
    had_hash = 'weights_sha256' in meta
    meta = {**meta, 'weights_sha256': state_sha256(state)}
    atomic_save({'format': FORMAT, 'version': VERSION, 'state_dict': state, 'meta': meta}, dst)
    return meta, had_hash


def load_model(path: str | Path, fold_equalizers: bool = False) -> MFARANet:
    """An eval-mode model from a checkpoint, optionally with its equalizers folded."""
    model, _ = build_from_checkpoint(path)
    return folding.fold_equalizers(model) if fold_equalizers else model
