"""Training-state files for exact resume: written atomically, the last K kept.

A state file (``<out_dir>/state/iter_0001000.pt``) holds the model (with its equalizer
constants, so resuming never measures them again), optimiser, schedule, gradient scaler, the
RNG states of Python, NumPy and torch (CPU and CUDA), the iteration, the sampler position, the
best validation mIoU and the config. It loads with ``weights_only=True``; a state written before a
rename is read with the current names of its config keys and equalizer provenance.
"""

from __future__ import annotations

from pathlib import Path
import random
import shutil
from typing import Any

import numpy as np
import torch

from segnode.errors import CheckpointError
from segnode.files import atomic_write
from segnode.model.checkpoint import atomic_save, load_tensors_file
from segnode.model.checkpoint_meta import current_provenance
from segnode.train.config import current_keys

__all__ = [
    'copy_state',
    'get_rng_state',
    'latest_state',
    'load_state',
    'prune_states',
    'save_state',
    'set_rng_state',
    'state_path',
]

FORMAT = 'segnode-train-state'
VERSION = 1


def get_rng_state() -> dict[str, Any]:
    """The RNG states of Python, NumPy and torch, as weights_only-loadable data."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        'python': random.getstate(),
        'numpy': {
            'kind': str(kind),
            'keys': torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            'pos': int(pos),
            'has_gauss': int(has_gauss),
            'cached_gaussian': float(cached),
        },
        'torch': torch.get_rng_state(),
        'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``get_rng_state`` returned."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    n = state['numpy']
    keys = n['keys'].numpy().astype(np.uint32)
    np.random.set_state((n['kind'], keys, n['pos'], n['has_gauss'], n['cached_gaussian']))
    torch.set_rng_state(state['torch'])
    if state['cuda'] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def state_path(out_dir: str | Path, iteration: int) -> Path:
    """Where the state after ``iteration`` optimiser steps is written."""
    return Path(out_dir) / 'state' / f'iter_{iteration:07d}.pt'


def save_state(out_dir: str | Path, iteration: int, state: dict[str, Any], keep_last: int) -> Path:
    """Write a training state atomically and delete all but the ``keep_last`` newest."""
    path = state_path(out_dir, iteration)
    atomic_save({'format': FORMAT, 'version': VERSION, 'iteration': iteration, **state}, path)
    prune_states(out_dir, keep_last)
    return path


def copy_state(path: str | Path, folder: str | Path) -> Path:
    """Copy a written state file atomically into ``<folder>/state/``, keeping only it there.

    ``folder`` is a second home for the latest state (``state_copy``), outside the work tree,
    so that a run survives its run folder being deleted; ``latest_state(folder)`` finds it.
    """
    path = Path(path)
    target = Path(folder) / 'state' / path.name
    atomic_write(target, lambda tmp: shutil.copyfile(path, tmp))
    prune_states(folder, 1)
    return target


def prune_states(out_dir: str | Path, keep_last: int) -> None:
    """Delete all but the ``keep_last`` newest state files."""
    files = sorted((Path(out_dir) / 'state').glob('iter_*.pt'))
    for old in files[: max(len(files) - keep_last, 0)]:
        old.unlink(missing_ok=True)


def latest_state(out_dir: str | Path) -> Path | None:
    """The newest state file of a run folder, or None."""
    files = sorted((Path(out_dir) / 'state').glob('iter_*.pt'))
    return files[-1] if files else None


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a training-state file.

    Raises:
        CheckpointError: Missing, unreadable or not a segnode training state.
    """
    path = Path(path)
    state = load_tensors_file(path, 'training state')
    if not isinstance(state, dict) or state.get('format') != FORMAT:
        raise CheckpointError(
            f'{path} is not a segnode training state (model checkpoints cannot be resumed; '
            'pass a state/iter_*.pt file or resume=auto)'
        )
    if state.get('version') != VERSION:
        raise CheckpointError(f'{path}: training-state version {state.get("version")} unsupported')
    if isinstance(state.get('equalizers'), dict):
        state['equalizers'] = current_provenance(state['equalizers'])
    if isinstance(state.get('config'), dict):
        state['config'] = current_keys(state['config'])
    return state
