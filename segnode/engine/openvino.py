"""OpenVINO: the frame graph converted from the module, fp32, bf16 or INT8 (NNCF), on CPU/GPU/NPU.

The graph is converted straight from the module (``openvino.convert_model`` traces it): the
ONNX route is closed, OpenVINO does not import the opset-20 GridSample and opset 17 would be
the legacy exporter's graph. Frames stay in host memory (the engine's torch device is the
CPU); ``engine.openvino_device`` says where OpenVINO runs them: ``CPU`` (default), or ``GPU``
and ``NPU`` (``GPU.1``, ...) where ``openvino.Core().available_devices`` lists them.

Precision is the plugin's inference precision hint, set for fp32 too: the CPU plugin picks
bf16 by itself on CPUs with AVX512_BF16 or AMX. A precision the device does not honour (bf16
on a CPU without them runs as f32) is refused rather than mislabelled.

INT8 is NNCF's post-training quantisation on the calibration frames (at most
``engine.calibration_frames``; NNCF keeps per-tensor statistics, not activations) of the
encoder (backbone and MFAM) but its first convolution, which sees the normalised image; the
flow alignment, heads and fusion stay float, the scope of the onnxruntime INT8 (docs/engine.md,
"INT8 on the CPU"). Those float ops run bf16 where the CPU has native bf16, else f32.

The artifact is OpenVINO's IR: ``<name>.xml`` (the key's artifact) with its weights in
``<name>.bin`` beside it (``COMPANIONS``), weights kept fp32. openvino and nncf are imported
inside functions only (``pip install segnode[openvino]``).
"""

from __future__ import annotations

from pathlib import Path
import re
from typing import Any
import warnings

import numpy as np
import torch
from torch import nn, Tensor

import segnode.cpu as cpu
from segnode.engine.base import BuildOptions, Runner
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
    'OvRunner',
    'build',
    'check',
    'export',
    'key_fields',
    'load',
    'version',
]

NAME = 'openvino'
TITLE = 'OpenVINO'
MASK_DTYPE = torch.uint8
SUFFIX = '.xml'
COMPANIONS: tuple[str, ...] = ('.bin',)  # the weights, beside the .xml, renamed with it
# What `precision: auto` measures here, per device type (bf16 only where it is native).
PRECISIONS: dict[str, tuple[str, ...]] = {'cpu': ('fp32', 'bf16', 'int8')}
BUILDS_ON_THE_SPOT = True
BUILD_TIME = 'a few seconds to convert; int8 calibrates for a minute or so'
INSTALL = 'pip install segnode[openvino]'
# The encoder, which INT8 quantises: every other op keeps float (the names come from tracing).
ENCODER = re.compile(r'__module\.model\.(backbone|mfam)\.')
_HINTS = {'fp32': 'f32', 'bf16': 'bf16'}


def version() -> str:
    """Say which OpenVINO is installed: its version, or '' when there is none."""
    try:
        import openvino
    except ImportError:
        return ''
    return str(openvino.__version__)


def key_fields(device: torch.device) -> dict[str, Any]:
    """An IR file runs on any OpenVINO device; it is tied to the converter's version."""
    return {'openvino': version()}


def _modules(precision: str) -> None:
    for name in ('openvino', 'nncf') if precision == 'int8' else ('openvino',):
        try:
            __import__(name)
        except ImportError as err:
            raise EngineUnavailable(f'{name} is not installed ({INSTALL})') from err


def check(options: BuildOptions) -> None:
    """Check that OpenVINO (and NNCF for int8) is installed and the device exists.

    Raises:
        EngineUnavailable: Not installed; a torch device other than the CPU; an OpenVINO
            device this machine lacks; fp16.
    """
    _modules(options.precision)
    if options.device.type != 'cpu':
        raise EngineUnavailable(
            'openvino takes frames in host memory: engine.device must be cpu '
            '(engine.openvino_device names the OpenVINO device)'
        )
    if options.precision not in ('fp32', 'bf16', 'int8'):
        raise EngineUnavailable(f'the openvino backend runs fp32, bf16 or int8, not '
                                f'{options.precision}')  # fmt: skip
    wanted = options.openvino_device
    found = _available()
    if wanted not in found and wanted.split('.')[0] not in found:
        raise EngineUnavailable(
            f'OpenVINO device {wanted} is not on this machine (it has {", ".join(found)})'
        )


def _available() -> list[str]:
    import openvino

    return list(openvino.Core().available_devices)


def _convert(graph: nn.Module, example: Tensor, options: BuildOptions) -> Any:
    """The frame graph as an OpenVINO model: uint8 (N, H, W, 3) in, static or dynamic H, W."""
    import openvino as ov

    graph = graph.to(device='cpu', dtype=torch.float32).eval()
    n, h, w, _ = example.shape
    shape = ov.PartialShape([n, -1, -1, 3] if options.dynamic else [n, h, w, 3])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # TracerWarnings about the size checks
        return ov.convert_model(graph, example_input=(example.cpu(),), input=[(shape, ov.Type.u8)])


def _quantise(model: Any, options: BuildOptions) -> Any:
    """NNCF INT8 of the encoder (but its first convolution) on the calibration frames."""
    import nncf

    frames = options.calibration
    if frames is None:
        raise EngineUnavailable(
            'int8 needs calibration frames (engine.calibration_images, or --calibration DIR)'
        )
    batch = int(model.inputs[0].get_partial_shape()[0].get_length())
    chunks = [frames[i : i + batch].contiguous().numpy()
              for i in range(0, len(frames) - batch + 1, batch)]  # fmt: skip
    if not chunks:
        raise EngineBuildError(f'int8 needs at least {batch} calibration frames')
    convs = [op.get_friendly_name() for op in model.get_ordered_ops()
             if op.get_type_name() == 'Convolution']  # fmt: skip
    encoder = [name for name in convs if ENCODER.match(name)]
    if len(encoder) < 2:
        raise EngineBuildError(f'int8: found {len(encoder)} encoder convolutions to quantise')
    outside = [op.get_friendly_name() for op in model.get_ordered_ops()
               if not ENCODER.match(op.get_friendly_name())]  # fmt: skip
    scope = nncf.IgnoredScope(names=[encoder[0], *outside], validate=False)
    return nncf.quantize(
        model,
        nncf.Dataset(chunks),
        subset_size=len(chunks),
        target_device=nncf.TargetDevice.CPU,
        ignored_scope=scope,
    )


def export(graph: nn.Module, example: Tensor, path: Path, options: BuildOptions) -> None:
    """Convert (and for int8 quantise) the graph; save the IR to ``path`` and its ``.bin``.

    Args:
        graph: A frame graph (uint8 frames in).
        example: Example frames (N, H, W, 3).
        path: The ``.xml`` (a temporary file the caller renames, with its ``.bin``).
        options: Precision, calibration frames, ``dynamic`` H and W.
    """
    import openvino as ov

    check(options)
    model = _convert(graph, example, options)
    if options.precision == 'int8':
        model = _quantise(model, options)
    ov.save_model(model, str(path), compress_to_fp16=False)


def _hint(options: BuildOptions) -> str:
    """The inference precision the float ops run in."""
    if options.precision == 'int8':
        return 'bf16' if cpu.native_bf16() else 'f32'
    return _HINTS[options.precision]


class OvRunner:
    """A compiled OpenVINO model and its one infer request; host tensors in and out.

    Args:
        model: An ``openvino.Model`` or the path of an ``.xml``.
        options: Precision, OpenVINO device and threads.
    """

    def __init__(self, model: Any, options: BuildOptions) -> None:
        import openvino as ov

        check(options)
        device = options.openvino_device
        config: dict[str, Any] = {'PERFORMANCE_HINT': 'LATENCY'}
        hint = _hint(options)
        if not device.startswith('NPU'):  # the NPU plugin runs f16 and takes no hint
            config['INFERENCE_PRECISION_HINT'] = hint
        if options.threads and device == 'CPU':
            config['INFERENCE_NUM_THREADS'] = options.threads
        try:
            self.compiled = ov.Core().compile_model(model, device, config)
        except RuntimeError as err:
            raise EngineBuildError(f'OpenVINO cannot compile for {device}: {err}') from err
        if 'INFERENCE_PRECISION_HINT' in config:
            runs = self.compiled.get_property('INFERENCE_PRECISION_HINT').to_string()
            if runs != hint:
                raise EngineUnavailable(
                    f'OpenVINO on this {device} runs {runs}, not {hint}'
                    + (' (bf16 needs AVX512_BF16 or AMX)' if hint == 'bf16' else '')
                )
        self.request = self.compiled.create_infer_request()
        self.precision = hint
        self.confidence = len(self.compiled.outputs) > 1  # engine.confidence's second output

    def __call__(self, frames: Tensor) -> Any:
        """Run one batch: masks, or (masks, confidences); copied out of the reused buffers."""
        self.request.infer({0: frames.contiguous().numpy()}, share_inputs=True)
        out = [torch.from_numpy(np.array(self.request.get_output_tensor(i).data))
               for i in range(2 if self.confidence else 1)]  # fmt: skip
        return (out[0], out[1]) if self.confidence else out[0]


def load(path: Path, options: BuildOptions, example: Tensor) -> Runner:
    """A runner for a saved IR (``.xml`` with its ``.bin`` beside it)."""
    import openvino as ov

    check(options)
    weights = path.with_suffix('.bin')
    if not weights.is_file():
        raise EngineBuildError(f'{path} has no weights file {weights.name} beside it')
    try:
        model = ov.Core().read_model(str(path), str(weights))
    except RuntimeError as err:
        raise EngineBuildError(f'OpenVINO cannot read {path}: {err}') from err
    return OvRunner(model, options)


def build(graph: nn.Module, example: Tensor, options: BuildOptions) -> Runner:
    """Convert (and quantise) in memory and compile; nothing is written."""
    check(options)
    model = _convert(graph, example, options)
    if options.precision == 'int8':
        model = _quantise(model, options)
    return OvRunner(model, options)
