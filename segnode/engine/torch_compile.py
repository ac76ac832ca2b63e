"""``torch.compile`` (Inductor): CUDA graphs on a GPU, channels_last and frozen weights on a CPU.

Compilation happens at build time (one call on the example), not on the first frame, with
Inductor's freezing on: weights become constants and, on a CPU, the convolutions (BatchNorm
already folded) run oneDNN kernels on pre-packed weights with their ReLU and residual adds
fused (about 5 % faster at 512x1024). With CUDA graphs the output buffer is reused by the
next replay, so the runner returns a copy (of both outputs, with the confidence).
Artifacts are the same ``torch.export`` programs as the eager backend's; loading one compiles
it again (Inductor caches its kernels between processes).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn, Tensor
import torch._inductor.config as inductor_config

from segnode.engine import eager
from segnode.engine.base import BuildOptions, Runner, torch_key
from segnode.engine.eager import load_program, place_graph

__all__ = [
    'BUILD_TIME',
    'BUILDS_ON_THE_SPOT',
    'COMPANIONS',
    'MASK_DTYPE',
    'NAME',
    'PRECISIONS',
    'SUFFIX',
    'TITLE',
    'build',
    'check',
    'export',
    'key_fields',
    'load',
]

NAME = 'torch-compile'
TITLE = 'torch-compile'
MASK_DTYPE = torch.uint8
SUFFIX = '.pt2'
# What `precision: auto` measures here, per device type (others are refused or emulated).
PRECISIONS = eager.PRECISIONS
BUILDS_ON_THE_SPOT = True
# What a build usually takes on a CPU at 360x480 to 512x1024 (docs/benchmarks.md).
BUILD_TIME = 'about a minute; --backend eager starts at once'
COMPANIONS: tuple[str, ...] = ()  # the artifact is one file
key_fields = torch_key


class CompiledRunner:
    """A compiled module; copies the output when CUDA graphs own its buffer."""

    def __init__(self, module: Any, *, cuda_graphs: bool) -> None:
        self.module = module
        self.cuda_graphs = cuda_graphs

    def __call__(self, frames: Tensor) -> Any:
        """Run one batch: masks, or (masks, confidences)."""
        with torch.inference_mode():
            if not self.cuda_graphs:
                return self.module(frames)
            torch.compiler.cudagraph_mark_step_begin()  # type: ignore[no-untyped-call]
            out = self.module(frames)
            if isinstance(out, tuple):
                return tuple(t.clone() for t in out)
            return out.clone()


def check(options: BuildOptions) -> None:
    """Same precisions as eager."""
    eager.check(options)


def _compile(module: nn.Module, example: Tensor, options: BuildOptions) -> Runner:
    graphs = options.cuda_graphs and options.device.type == 'cuda'
    inductor: dict[str, str | int | bool | Callable[..., Any]] = {'triton.cudagraphs': graphs}
    compiled = torch.compile(module, dynamic=options.dynamic, options=inductor)
    runner = CompiledRunner(compiled, cuda_graphs=graphs)
    # Freezing is read from the global config when the graph compiles: passed in `options`
    # (torch 2.13) it is silently ignored and no weight is pre-packed. The first call compiles.
    with inductor_config.patch(freezing=True):
        runner(example.to(options.device))
    return runner


def build(graph: nn.Module, example: Tensor, options: BuildOptions) -> Runner:
    """Compile the placed graph (folded BN, channels_last on a CPU) and warm it up."""
    check(options)
    return _compile(place_graph(graph, options), example, options)


def export(graph: nn.Module, example: Tensor, path: Path, options: BuildOptions) -> None:
    """The same ``torch.export`` program file as the eager backend's."""
    eager.export(graph, example, path, options)


def load(path: Path, options: BuildOptions, example: Tensor) -> Runner:
    """Compile a saved program."""
    check(options)
    return _compile(load_program(path, options), example, options)
