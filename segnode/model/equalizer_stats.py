"""Scale Equalizer statistics, measured one depth level at a time (docs/model.md).

BatchNorm runs in train mode (what the first training iterations see) with its running
statistics restored afterwards; dropout is off; statistics are float64 and merged exactly
across batches and DDP ranks; the RNG state is restored, so measuring leaves the model and
the training run exactly as they were except for the equalizer constants.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
import datetime
from typing import Any

import torch
from torch import nn, Tensor

from segnode.model.scale_equalizer import ScaleEqualizer

__all__ = ['equalizers_of', 'measure_equalizers']

BatchSource = Callable[[], Iterable[Tensor]] | Sequence[Tensor]
_NORMS = (nn.modules.batchnorm._BatchNorm,)
_DROPOUTS = (nn.Dropout, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def equalizers_of(model: nn.Module) -> dict[str, ScaleEqualizer]:
    """Distinct equalizers of ``model`` by qualified name, in module order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, ScaleEqualizer)}


def _batches(source: BatchSource) -> Iterable[Tensor]:
    return source() if callable(source) else source


@torch.no_grad()
def measure_equalizers(
    model: nn.Module,
    batches: BatchSource,
    *,
    description: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Measure every equalizer's mean and std on training batches and freeze them.

    Args:
        model: A model containing ``ScaleEqualizer`` modules (constants are reset first).
        batches: The same normalised float batches (N, 3, H, W) on every call: a sequence, or
            a function returning a fresh iterable (e.g. a loader with a fixed seed).
        description: How the batches were made (dataset, split, augmentation, batch size);
            stored in the provenance.

    Returns:
        The provenance: per-equalizer ``mean``, ``std`` and ``count``, the description, the
        number of levels and passes, and a UTC timestamp. Also stored on
        ``model.equalizer_provenance`` when the model has that attribute.

    Raises:
        ValueError: The model has no equalizers, a pass saw no batch, or an input is dead.
    """
    eqs = equalizers_of(model)
    if not eqs:
        raise ValueError('the model has no scale equalizers to measure')
    device = next(model.parameters()).device
    was_training = model.training
    norm_state = {
        name: {k: v.clone() for k, v in m.state_dict().items()}
        for name, m in model.named_modules()
        if isinstance(m, _NORMS)
    }
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    for eq in eqs.values():
        eq.mean.zero_()
        eq.std.fill_(1.0)
    model.train()
    for m in model.modules():
        if isinstance(m, _DROPOUTS):
            m.eval()
    stats: dict[str, dict[str, Any]] = {}
    levels = sorted({eq.depth for eq in eqs.values()})
    done = False
    try:
        for level in levels:
            active = {n: eq for n, eq in eqs.items() if eq.depth == level}
            for eq in active.values():
                eq.start_recording()
            seen = 0
            with torch.autocast(device.type, enabled=False):
                for x in _batches(batches):
                    model(x.to(device=device, dtype=torch.float32))
                    seen += 1
            if seen == 0:
                raise ValueError('measuring the equalizer statistics got no batches')
            for name, eq in active.items():
                moments = eq.finish_recording()
                stats[name] = {
                    'mean': eq.mean.tolist(),
                    'std': eq.std.tolist(),
                    'count': moments.count.tolist(),
                    'depth': level,
                }
        done = True
    finally:
        for eq in eqs.values():
            eq.moments = None
            if not done:  # never leave a half-measured model behind
                eq.mean.zero_()
                eq.std.fill_(1.0)
        modules = dict(model.named_modules())
        for name, state in norm_state.items():
            modules[name].load_state_dict(state)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        model.train(was_training)
    provenance = {
        'state': 'measured',
        'levels': len(levels),
        'batches_per_pass': seen,
        'measured_at': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'data': dict(description or {}),
        'equalizers': stats,
    }
    if hasattr(model, 'equalizer_provenance'):
        setattr(model, 'equalizer_provenance', provenance)  # attribute of MFARANet only
    return provenance
