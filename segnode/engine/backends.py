"""The backend table: each backend is a module with the same four functions.

``check(options)`` raises :class:`~segnode.errors.EngineUnavailable` when the backend cannot
run here; ``build(graph, example, options)`` returns a runner built in memory;
``export(graph, example, path, options)`` writes an artifact to ``path`` (a temporary file the
caller renames); ``load(path, options, example)`` runs a saved artifact. ``NAME`` is the
backend's name in :data:`segnode.config.BACKENDS`, ``MASK_DTYPE`` the dtype its graph ends in,
``SUFFIX`` its artifact's file suffix and ``PRECISIONS`` what ``precision: auto`` measures on
each device type. What else differs between backends is an attribute here too, so that a new
backend changes its own module and this table only: ``TITLE`` (its name in messages),
``BUILDS_ON_THE_SPOT`` (False: only loaded from an exported artifact unless
``build_if_missing``), ``BUILD_TIME`` (what a build takes, said before it), ``COMPANIONS``
(suffixes of files the artifact keeps beside it under its own name, e.g. OpenVINO's ``.bin``,
written and renamed with it) and
``key_fields(device)`` (what its artifact is tied to beyond the graph: device, libraries).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, Protocol

import torch
from torch import nn, Tensor

from segnode.engine import eager, torch_compile
from segnode.engine import onnxruntime as onnxruntime_backend  # not the onnxruntime package
from segnode.engine import openvino as openvino_backend  # not the openvino package
from segnode.engine.base import BuildOptions, Runner
from segnode.engine.tensorrt import backend as tensorrt

__all__ = ['AUTO_ORDER', 'BACKEND_TABLE', 'Backend']


class Backend(Protocol):
    """What every backend module provides."""

    NAME: str
    TITLE: str
    MASK_DTYPE: torch.dtype
    SUFFIX: str
    PRECISIONS: dict[str, tuple[str, ...]]
    BUILDS_ON_THE_SPOT: bool
    BUILD_TIME: str
    COMPANIONS: tuple[str, ...]

    def key_fields(self, device: torch.device) -> dict[str, Any]:
        """What an artifact is tied to besides the graph (device, library versions)."""
        ...

    def check(self, options: BuildOptions) -> None:
        """Raise ``EngineUnavailable`` when the backend cannot run with ``options``."""
        ...

    def build(self, graph: nn.Module, example: Tensor, options: BuildOptions) -> Runner:
        """Build a runner in memory."""
        ...

    def export(self, graph: nn.Module, example: Tensor, path: Path, options: BuildOptions) -> None:
        """Write an artifact to ``path``."""
        ...

    def load(self, path: Path, options: BuildOptions, example: Tensor) -> Runner:
        """Run a saved artifact."""
        ...


BACKEND_TABLE: dict[str, Backend] = {
    tensorrt.NAME: tensorrt,
    torch_compile.NAME: torch_compile,
    onnxruntime_backend.NAME: onnxruntime_backend,
    openvino_backend.NAME: openvino_backend,
    eager.NAME: eager,
}

AUTO_ORDER: Final = {
    'cuda': ('tensorrt', 'torch-compile', 'onnxruntime', 'eager'),
    # TensorRT cannot run on a CPU; Inductor beat onnxruntime there (docs/benchmarks.md) but
    # compiles for about a minute at 512x1024 where onnxruntime exports in seconds.
    # OpenVINO is measured too where it is installed (its INT8 beat onnxruntime's there).
    'cpu': ('torch-compile', 'openvino', 'onnxruntime', 'eager'),
}
