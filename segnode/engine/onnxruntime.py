"""ONNX at opset 17 run by onnxruntime: the fast CPU path, and the route to ``trtexec``.

Opset 17, not 20: TensorRT mis-evaluates the opset-20 GridSample (NVIDIA/TensorRT#4646;
docs/engine.md, "onnxruntime"). The legacy (TorchScript) exporter keeps H and W symbolic with
the arange flow grid, so one file serves every resolution when exported ``dynamic``; the
dynamo exporter produced a static model. The graph is uint8 frames in, uint8 mask (ArgMax
then Cast) out, and with ``engine.confidence`` a second uint8 output ``confidence`` (ReduceMax,
Exp, ReduceSum, Round, Clip, Cast on the same logits). onnxruntime folds BatchNorm itself.
onnxruntime is imported inside functions only.

INT8 is onnxruntime's static quantisation (QDQ, per-channel int8 weights, uint8 activations
calibrated by percentile on the calibration frames) of the encoder's convolutions (backbone
and MFAM) but the first one, which sees the normalised image; the flow alignment, heads and
fusion stay fp32, as in the bf16 policy (docs/engine.md, "INT8 on the CPU").
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any
import warnings

import numpy as np
import torch
from torch import nn, Tensor

from segnode.engine.base import BuildOptions, Runner
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
    'OPSET',
    'OrtRunner',
    'build',
    'check',
    'export',
    'key_fields',
    'load',
]

NAME = 'onnxruntime'
TITLE = 'onnxruntime'
MASK_DTYPE = torch.uint8
SUFFIX = '.onnx'
# What `precision: auto` measures here, per device type (others are refused or emulated).
PRECISIONS = {'cpu': ('fp32', 'int8'), 'cuda': ('fp32',)}
BUILDS_ON_THE_SPOT = True
BUILD_TIME = 'a few seconds'  # on a CPU at 360x480 to 512x1024 (docs/benchmarks.md)
COMPANIONS: tuple[str, ...] = ()  # the artifact is one file

OPSET = 17
INPUT, OUTPUT, CONFIDENCE = 'frames', 'out', 'confidence'


def key_fields(device: torch.device) -> dict[str, Any]:
    """An ONNX file is portable (any device, any torch): its key holds the opset only."""
    return {'opset': OPSET}


def check(options: BuildOptions) -> None:
    """Check that onnxruntime is installed and runs the precision here.

    Raises:
        EngineUnavailable: Not installed; a precision other than fp32 or int8; int8 on CUDA.
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise EngineUnavailable(
            'onnxruntime is not installed (pip install onnxruntime, or the onnx extra)'
        ) from err
    if options.precision == 'int8':
        if options.device.type != 'cpu':
            raise EngineUnavailable('onnxruntime int8 runs on the CPU; use tensorrt on CUDA')
    elif options.precision != 'fp32':
        raise EngineUnavailable(
            f'the onnxruntime backend runs fp32 or int8, not {options.precision} '
            '(use tensorrt or torch-compile for fp16 and bf16)'
        )


def export(graph: nn.Module, example: Tensor, path: Path, options: BuildOptions) -> None:
    """Export the fp32 graph on the CPU to ``path`` (a temporary file the caller renames).

    Args:
        graph: A frame graph (uint8 frames in).
        example: Example frames (N, H, W, 3).
        path: Output file.
        options: ``dynamic`` makes H and W symbolic (the batch is always fixed).
    """
    check(options)
    if options.precision == 'int8':
        _export_int8(graph, example, path, options)
        return
    graph = graph.to(device='cpu', dtype=torch.float32).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # TracerWarnings about the size checks
        torch.onnx.export(
            graph,
            (example.cpu(),),
            str(path),
            opset_version=OPSET,
            dynamo=False,
            input_names=[INPUT],
            output_names=_outputs(graph),
            dynamic_axes=_dynamic_axes(graph) if options.dynamic else None,
        )


class _Calibration:
    """onnxruntime's ``CalibrationDataReader``: the calibration frames, a batch at a time."""

    def __init__(self, frames: Tensor, batch: int) -> None:
        chunks = [frames[i : i + batch] for i in range(0, len(frames) - batch + 1, batch)]
        if not chunks:
            raise EngineBuildError(f'int8 needs at least {batch} calibration frames')
        self.batches = iter(chunks)

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch as the graph's input, or None at the end."""
        chunk = next(self.batches, None)
        return None if chunk is None else {INPUT: chunk.contiguous().numpy()}


def _export_int8(graph: nn.Module, example: Tensor, path: Path, options: BuildOptions) -> None:
    import tempfile

    import onnx
    from onnxruntime import quantization as q
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if options.calibration is None:
        raise EngineUnavailable(
            'int8 needs calibration frames (engine.calibration_images, or --calibration DIR)'
        )
    with tempfile.TemporaryDirectory(prefix='segnode-int8-') as folder:
        fp32, pre = Path(folder) / 'fp32.onnx', Path(folder) / 'pre.onnx'
        export(graph, example, fp32, replace(options, precision='fp32'))
        quant_pre_process(str(fp32), str(pre))
        convs = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type == 'Conv']
        encoder = [n for n in convs if n.startswith(('/model/backbone/', '/model/mfam/'))]
        if len(encoder) < 2:
            raise EngineBuildError(f'int8: found {len(encoder)} encoder convolutions to quantise')
        q.quantize_static(
            str(pre),
            str(path),
            _Calibration(options.calibration, example.shape[0]),
            quant_format=q.QuantFormat.QDQ,
            op_types_to_quantize=['Conv'],
            nodes_to_quantize=encoder[1:],  # the first sees the normalised image: fp32
            per_channel=True,
            activation_type=q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8,
            calibrate_method=q.CalibrationMethod.Percentile,
        )


def _outputs(graph: nn.Module) -> list[str]:
    """The output names: the mask (or logits), and the confidence when the graph has it."""
    confidence = isinstance(graph, FrameToMask) and graph.confidence
    return [OUTPUT, CONFIDENCE] if confidence else [OUTPUT]


def _dynamic_axes(graph: nn.Module) -> dict[str, dict[int, str]]:
    """H and W of the frames and outputs (mask and confidence (N, H, W), logits (N, K, H, W))."""
    rank = 4 if isinstance(graph, FrameToMask) and graph.logits else 3
    axes = {INPUT: {1: 'height', 2: 'width'}}
    for name in _outputs(graph):
        axes[name] = {rank - 2: 'height', rank - 1: 'width'}
    return axes


class OrtRunner:
    """An onnxruntime session: CPU arrays shared with torch, or CUDA I/O binding.

    Args:
        model: The ``.onnx`` file.
        options: Device and threads.
    """

    def __init__(self, model: Path, options: BuildOptions) -> None:
        import onnxruntime as ort

        check(options)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if options.threads:
            so.intra_op_num_threads = options.threads
            so.inter_op_num_threads = 1
        self.device = options.device
        providers: list[Any] = ['CPUExecutionProvider']
        if self.device.type == 'cuda':
            if 'CUDAExecutionProvider' not in ort.get_available_providers():
                raise EngineUnavailable(
                    'this onnxruntime has no CUDAExecutionProvider (pip install onnxruntime-gpu)'
                )
            providers = [('CUDAExecutionProvider', {'device_id': self.device.index or 0})]
        try:
            self.session = ort.InferenceSession(str(model), so, providers=providers)
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise EngineBuildError(f'onnxruntime cannot load {model}: {err}') from err
        outputs = self.session.get_outputs()
        self.logits = len(outputs[0].shape) == 4
        self.confidence = len(outputs) > 1

    def __call__(self, frames: Tensor) -> Any:
        """Run one batch on the session's device: masks, or (masks, confidences)."""
        if self.device.type == 'cpu':
            out = self.session.run(None, {INPUT: frames.contiguous().numpy()})
            if self.confidence:
                return torch.from_numpy(out[0]), torch.from_numpy(out[1])
            return torch.from_numpy(out[0])
        return self._run_cuda(frames.contiguous())

    def _run_cuda(self, frames: Tensor) -> Any:
        n, h, w, _ = frames.shape
        index = self.device.index or 0
        if self.logits:
            k = int(self.session.get_outputs()[0].shape[1])
            out = torch.empty((n, k, h, w), dtype=torch.float32, device=self.device)
            np_dtype: Any = np.float32
        else:
            out = torch.empty((n, h, w), dtype=torch.uint8, device=self.device)
            np_dtype = np.uint8
        binding = self.session.io_binding()
        binding.bind_input(INPUT, 'cuda', index, np.uint8, tuple(frames.shape), frames.data_ptr())
        binding.bind_output(OUTPUT, 'cuda', index, np_dtype, tuple(out.shape), out.data_ptr())
        confidence = None
        if self.confidence:
            confidence = torch.empty((n, h, w), dtype=torch.uint8, device=self.device)
            shape = tuple(confidence.shape)
            binding.bind_output(CONFIDENCE, 'cuda', index, np.uint8, shape, confidence.data_ptr())
        torch.cuda.current_stream(self.device).synchronize()
        self.session.run_with_iobinding(binding)
        return out if confidence is None else (out, confidence)


def load(path: Path, options: BuildOptions, example: Tensor) -> Runner:
    """A runner for an exported ``.onnx`` file."""
    return OrtRunner(path, options)


def build(graph: nn.Module, example: Tensor, options: BuildOptions) -> Runner:
    """Export to a temporary file, load it, delete the file (the session keeps the model)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix='segnode-onnx-') as folder:
        path = Path(folder) / 'graph.onnx'
        export(graph, example, path, options)
        return load(path, options, example)
