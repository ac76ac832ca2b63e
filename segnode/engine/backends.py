"""The backend table: each backend is a module with the same four functions.

``check(options)`` raises :class:`~segnode.errors.EngineUnavailable` when the backend cannot
run here; ``build(graph, example, options)`` returns a runner built in memory;
``export(graph, example, path, options)`` writes an artefact to ``path`` (a temporary file the
caller renames); ``load(path, options, example)`` runs a saved artefact. ``NAME`` is the
backend's name in :data:`segnode.config.BACKENDS`, ``MASK_DTYPE`` the dtype its graph ends in,
``SUFFIX`` its artefact's file suffix and ``PRECISIONS`` what ``precision: auto`` measures on
each device type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Protocol

import torch
from torch import nn, Tensor

from segnode.engine import compiled, eager, onnx
from segnode.engine.base import BuildOptions, Runner
from segnode.engine.tensorrt import backend as tensorrt

__all__ = ['AUTO_ORDER', 'BACKEND_TABLE', 'Backend']


class Backend(Protocol):
    """What every backend module provides."""

    NAME: str
    MASK_DTYPE: torch.dtype
    SUFFIX: str
    PRECISIONS: dict[str, tuple[str, ...]]

    def check(self, options: BuildOptions) -> None:
        """Raise ``EngineUnavailable`` when the backend cannot run with ``options``."""
        ...

    def build(self, graph: nn.Module, example: Tensor, options: BuildOptions) -> Runner:
        """Build a runner in memory."""
        ...

    def export(self, graph: nn.Module, example: Tensor, path: Path, options: BuildOptions) -> None:
        """Write an artefact to ``path``."""
        ...

    def load(self, path: Path, options: BuildOptions, example: Tensor) -> Runner:
        """Run a saved artefact."""
        ...


BACKEND_TABLE: dict[str, Backend] = {
    tensorrt.NAME: tensorrt,
    compiled.NAME: compiled,
    onnx.NAME: onnx,
    eager.NAME: eager,
}

AUTO_ORDER: Final = {
    'cuda': ('tensorrt', 'torch-compile', 'onnxruntime', 'eager'),
    # TensorRT cannot run on a CPU; Inductor beat onnxruntime there (docs/benchmarks.md) but
    # compiles for about a minute at 512x1024 where onnxruntime exports in seconds.
    'cpu': ('torch-compile', 'onnxruntime', 'eager'),
}
