"""Plain PyTorch: the reference backend, and the fallback that always works.

BatchNorm is folded into the convolutions; on a CPU the weights and activations use
channels_last (the NHWC frame needs no transpose then), which is about 15 % faster there
(docs/engine.md, "eager"). Artifacts are ``torch.export`` programs (``.pt2``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn, Tensor

from segnode.engine.base import BuildOptions, Runner, torch_key
from segnode.engine.graph import export_program, reduced_precision
from segnode.errors import EngineBuildError, EngineUnavailable
from segnode.model.deploy import FrameToMask

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
    'load_program',
    'place_graph',
]

NAME = 'eager'
TITLE = 'eager'
MASK_DTYPE = torch.uint8
SUFFIX = '.pt2'
# What `precision: auto` measures here, per device type (others are refused or emulated).
PRECISIONS = {'cpu': ('fp32', 'bf16'), 'cuda': ('fp32', 'fp16', 'bf16')}
BUILDS_ON_THE_SPOT = True
BUILD_TIME = ''  # instant: nothing is said before a build
COMPANIONS: tuple[str, ...] = ()  # the artifact is one file
key_fields = torch_key


class ModuleRunner:
    """Call a module under ``inference_mode``."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, frames: Tensor) -> Any:
        """Run the module on one batch: masks, or (masks, confidences)."""
        with torch.inference_mode():
            return self.module(frames)


def check(options: BuildOptions) -> None:
    """Refuse precisions PyTorch cannot run here."""
    if options.precision == 'int8':
        raise EngineUnavailable(
            'eager runs fp32, fp16 or bf16; int8 runs on onnxruntime, openvino or tensorrt'
        )
    if options.device.type == 'cpu' and options.precision == 'fp16':
        raise EngineUnavailable(
            'fp16 convolutions on a CPU are emulated and slow; use fp32 or bf16'
        )


def place_graph(graph: nn.Module, options: BuildOptions) -> nn.Module:
    """Move the graph to the device and precision (channels_last weights on a CPU).

    fp16 and bf16 are mixed: the convolutions in the low dtype; grids, logits and fusion fp32
    (:func:`segnode.engine.graph.reduced_precision`).
    """
    assert isinstance(graph, FrameToMask)
    graph = reduced_precision(graph, options.dtype).to(device=options.device).eval()
    if options.device.type == 'cpu':
        graph = graph.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return graph


def build(graph: nn.Module, example: Tensor, options: BuildOptions) -> Runner:
    """The graph on the device, in the requested precision."""
    check(options)
    return ModuleRunner(place_graph(graph, options))


def export(graph: nn.Module, example: Tensor, path: Path, options: BuildOptions) -> None:
    """Export the placed graph with ``torch.export`` and save it (``path`` is a temp file)."""
    placed = place_graph(graph, options)
    assert isinstance(placed, FrameToMask)
    program = export_program(
        placed, example.to(options.device), dynamic=options.dynamic, max_side=options.max_side
    )
    torch.export.save(program, path)


def load_program(path: Path, options: BuildOptions) -> nn.Module:
    """Load a ``.pt2`` program saved by :func:`export` as a module."""
    try:
        program = torch.export.load(path)
    except Exception as err:  # torch raises many types for foreign or corrupt files
        raise EngineBuildError(f'cannot load exported program {path}: {err}') from err
    module: nn.Module = program.module()
    return module


def load(path: Path, options: BuildOptions, example: Tensor) -> Runner:
    """Run a saved program as it is."""
    check(options)
    return ModuleRunner(load_program(path, options))
