"""Torch-TensorRT ahead of time: ``torch.export`` -> ``dynamo.compile`` -> ``.ep`` file.

``torch_tensorrt`` (and ModelOpt) are imported inside functions only, so this module imports
on machines without them. Facts this code relies on (docs/engine.md, "TensorRT facts and
traps"):

* The graph ends in int32 (``FrameToMask(mask_dtype=torch.int32)``): 2.13 has no converter
  for a cast to uint8; :class:`~segnode.engine.base.Engine` casts on the device afterwards.
  The confidence output (``engine.confidence``) ends in int32 the same way (rounded and
  clamped to 0..255 in fp32 first), and is cast with the mask.
* Precision API. 2.9 and later are strongly typed and ignore ``enabled_precisions`` on the
  dynamo path: fp16 means a half model (the uint8 input is cast to half inside the graph);
  bf16 uses rule-based autocast with ``grid_sampler_2d`` kept out (the IGridSampleLayer has no
  bf16). 2.8 (JetPack 6) takes ``enabled_precisions`` on an fp32 model.
* INT8: ModelOpt post-training quantisation with calibration frames inserts QDQ nodes; the
  program is exported under ``export_torch_mode`` and compiled with ``min_block_size=1``.
* Strict builds pass ``pass_through_build_failures`` and ``require_full_compilation``, so a
  failed conversion raises instead of running part of the graph in PyTorch.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
import re
from types import ModuleType
from typing import Any

import torch
from torch import nn, Tensor

from segnode.engine.base import BuildOptions, Runner, torch_key
from segnode.engine.graph import export_program
from segnode.errors import EngineBuildError, EngineUnavailable

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
    'compile_settings',
    'export',
    'import_torch_tensorrt',
    'key_fields',
    'load',
    'trt_versions',
]

NAME = 'tensorrt'
TITLE = 'TensorRT'
MASK_DTYPE = torch.int32  # no uint8 cast converter in Torch-TensorRT 2.13
SUFFIX = '.ep'
# What `precision: auto` measures here, per device type (others are refused or emulated).
PRECISIONS = {'cpu': (), 'cuda': ('fp32', 'fp16', 'bf16', 'int8')}
# Builds take minutes and belong to `segnode export`: an engine is only loaded from an
# exported artifact unless engine.build_if_missing is set.
BUILDS_ON_THE_SPOT = False
BUILD_TIME = 'minutes'
COMPANIONS: tuple[str, ...] = ()  # the artifact is one file

INSTALL_HINT = (
    'install torch-tensorrt matching torch {torch} exactly (x86: torch 2.13 + torch-tensorrt '
    '2.13 + TensorRT 11.0; JetPack 6 Orin: 2.8 from pypi.jetson-ai-lab)'
)


def import_torch_tensorrt() -> ModuleType:
    """``import torch_tensorrt``, or an ``EngineUnavailable`` with an install hint."""
    try:
        module = importlib.import_module('torch_tensorrt')
    except ImportError as err:
        raise EngineUnavailable(
            'torch_tensorrt is not installed: ' + INSTALL_HINT.format(torch=torch.__version__)
        ) from err
    except Exception as err:  # a wheel built for another torch fails in many ways
        raise EngineUnavailable(
            f'torch_tensorrt does not load ({type(err).__name__}: {err}): '
            + INSTALL_HINT.format(torch=torch.__version__)
        ) from err
    return module


def _version(text: str) -> tuple[int, int]:
    match = re.match(r'(\d+)\.(\d+)', text)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def key_fields(device: torch.device) -> dict[str, Any]:
    """The GPU and the torch, Torch-TensorRT and TensorRT versions a program is tied to."""
    props = torch.cuda.get_device_properties(device)
    return {
        **torch_key(device),
        'gpu_name': props.name,
        'compute_capability': f'sm_{props.major}{props.minor}',
        **trt_versions(),
    }


def trt_versions() -> dict[str, str]:
    """Versions of torch_tensorrt and TensorRT ('' where missing)."""
    versions = {'torch_tensorrt': '', 'tensorrt': ''}
    try:
        versions['torch_tensorrt'] = str(importlib.import_module('torch_tensorrt').__version__)
        versions['tensorrt'] = str(importlib.import_module('tensorrt').__version__)
    except Exception:  # noqa: BLE001 - missing or broken install: report empty versions
        pass
    return versions


def check(options: BuildOptions) -> None:
    """A CUDA device, an importable torch_tensorrt, and a precision it can build.

    Raises:
        EngineUnavailable: Any of these is missing.
    """
    if options.device.type != 'cuda':
        raise EngineUnavailable('TensorRT needs a CUDA device (engine.device is the CPU)')
    import_torch_tensorrt()
    if options.precision == 'int8':
        try:
            importlib.import_module('modelopt.torch.quantization')
        except ImportError as err:
            raise EngineUnavailable(
                'INT8 needs NVIDIA ModelOpt (pip install nvidia-modelopt[torch])'
            ) from err


def compile_settings(
    version: str, precision: str, *, strict: bool
) -> tuple[torch.dtype, dict[str, Any]]:
    """The model dtype and the ``dynamo.compile`` keywords for a precision and a version.

    Args:
        version: ``torch_tensorrt.__version__``.
        precision: ``fp32``, ``fp16``, ``bf16`` or ``int8``.
        strict: Raise on a failed conversion instead of falling back to PyTorch.

    Returns:
        ``(dtype the wrapped model runs in, keyword arguments)``.
    """
    kwargs: dict[str, Any] = {
        'min_block_size': 1 if precision == 'int8' else 5,
        'pass_through_build_failures': strict,
        'require_full_compilation': strict,
        'cache_built_engines': True,
        'reuse_cached_engines': True,
    }
    strongly_typed = _version(version) >= (2, 9)
    if precision == 'fp32':
        return torch.float32, kwargs
    if not strongly_typed:  # 2.8: weak typing, the builder picks per layer
        low = torch.bfloat16 if precision == 'bf16' else torch.float16
        kwargs.update(enabled_precisions={torch.float32, low}, use_explicit_typing=False)
        return torch.float32, kwargs
    if precision == 'bf16':
        kwargs.update(
            enable_autocast=True,
            autocast_low_precision_type=torch.bfloat16,
            autocast_excluded_ops={torch.ops.aten.grid_sampler_2d.default},
        )
        return torch.float32, kwargs
    return torch.float16, kwargs  # fp16, and int8 around fp16 compute


def _checked_kwargs(compile_fn: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Refuse keywords this Torch-TensorRT would drop (a silently fp32 engine, say)."""
    params = inspect.signature(compile_fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    unknown = sorted(set(kwargs) - set(params))
    precision_keys = {
        'enabled_precisions',
        'use_explicit_typing',
        'enable_autocast',
        'autocast_low_precision_type',
        'autocast_excluded_ops',
    }
    if set(unknown) & precision_keys:
        raise EngineBuildError(
            f'this torch_tensorrt does not take {", ".join(unknown)}: its precision API '
            'differs from the one segnode knows (2.8, or 2.9 and later)'
        )
    return {k: v for k, v in kwargs.items() if k not in unknown}


def _inputs(trt: ModuleType, example: Tensor, options: BuildOptions) -> list[Any]:
    if not options.dynamic:
        return [example]
    n, h, w, c = example.shape
    side = options.max_side
    return [
        trt.Input(
            min_shape=(n, 64, 64, c),
            opt_shape=(n, h, w, c),
            max_shape=(n, side, side, c),
            dtype=torch.uint8,
        )
    ]


def _quantise(graph: nn.Module, options: BuildOptions) -> nn.Module:
    mtq: Any = importlib.import_module('modelopt.torch.quantization')

    frames = options.calibration
    if frames is None or len(frames) == 0:
        raise EngineBuildError('INT8 needs calibration frames (segnode export --calibration)')

    def forward_loop(model: nn.Module) -> None:
        with torch.no_grad():
            for frame in frames:
                model(frame[None].to(options.device))

    quantised: nn.Module = mtq.quantize(graph, mtq.INT8_DEFAULT_CFG, forward_loop=forward_loop)
    return quantised


def _export(graph: nn.Module, example: Tensor, options: BuildOptions) -> Any:
    from segnode.model.deploy import FrameToMask

    assert isinstance(graph, FrameToMask)
    if options.precision != 'int8':
        return export_program(graph, example, dynamic=options.dynamic, max_side=options.max_side)
    utils: Any = importlib.import_module('modelopt.torch.quantization.utils')
    with utils.export_torch_mode():
        return export_program(graph, example, dynamic=options.dynamic, max_side=options.max_side)


def compile_trt(graph: nn.Module, example: Tensor, options: BuildOptions) -> nn.Module:
    """Build a TensorRT engine for the frame graph (which must end in int32).

    Order: ``eval().to(device, dtype)``, (quantise,) ``torch.export``, ``dynamo.compile``.
    """
    check(options)
    trt = import_torch_tensorrt()
    dtype, kwargs = compile_settings(
        str(trt.__version__), options.precision, strict=options.strict
    )
    graph = graph.to(device=options.device, dtype=dtype).eval()
    example = example.to(options.device)
    if options.precision == 'int8':
        graph = _quantise(graph, options)
    try:
        program = _export(graph, example, options)
        compile_fn = trt.dynamo.compile
        module: nn.Module = compile_fn(
            program,
            arg_inputs=_inputs(trt, example, options),
            device=options.device,
            **_checked_kwargs(compile_fn, kwargs),
        )
    except EngineBuildError:
        raise
    except Exception as err:  # TensorRT and the converters raise many types
        raise EngineBuildError(f'TensorRT build failed: {type(err).__name__}: {err}') from err
    return module


class TrtRunner:
    """A compiled (or loaded) Torch-TensorRT module: uint8 frames in, int32 masks out.

    With the confidence output it returns ``(masks, confidences)``, both int32.
    """

    def __init__(self, module: Any) -> None:
        self.module = module

    def __call__(self, frames: Tensor) -> Any:
        """Run one batch on the GPU."""
        with torch.inference_mode():
            out = self.module(frames)
        return tuple(out) if isinstance(out, (list, tuple)) else out


def build(graph: nn.Module, example: Tensor, options: BuildOptions) -> Runner:
    """Build in memory (tests and the bench; the node loads saved engines)."""
    return TrtRunner(compile_trt(graph, example, options))


def export(graph: nn.Module, example: Tensor, path: Path, options: BuildOptions) -> None:
    """Build and save an ExportedProgram (``path`` is a temporary file the caller renames)."""
    trt = import_torch_tensorrt()
    module = compile_trt(graph, example, options)
    try:
        trt.save(
            module,
            str(path),
            output_format='exported_program',
            arg_inputs=[example.to(options.device)],
        )
    except Exception as err:  # serialisation needs the C++ runtime
        raise EngineBuildError(f'cannot save the TensorRT engine: {err}') from err


def load(path: Path, options: BuildOptions, example: Tensor) -> Runner:
    """Load a saved engine without rebuilding it."""
    check(options)
    trt = import_torch_tensorrt()
    try:
        program = trt.load(str(path))
    except Exception as err:  # a foreign or corrupt file, or another TensorRT
        raise EngineBuildError(f'cannot load TensorRT engine {path}: {err}') from err
    module = program.module() if hasattr(program, 'module') else program
    return TrtRunner(module)
