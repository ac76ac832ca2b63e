"""What every backend provides: a runner on device tensors, wrapped in an ``Engine``.

A runner maps a uint8 frame batch ``(N, H, W, 3)`` already on the engine's device to a mask
batch ``(N, H, W)`` (or, for the parity gate, to logits ``(N, K, H, W)``); an engine built
with the confidence output returns ``(masks, confidences)``. ``Engine`` adds what the pipeline
needs around it: the device, the shapes it accepts and the final cast to uint8 on the device
(TensorRT engines end in int32, the confidence too). ``EngineReport`` records how the engine
was chosen: every backend tried, why it was refused, the parity figures and the artifact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final, Protocol

import torch
from torch import Tensor

from segnode.config import DYNAMIC_MAX_SIDE, STRIDE
from segnode.errors import EngineBuildError, EngineUnavailable

__all__ = [
    'DTYPES',
    'Attempt',
    'BuildOptions',
    'Engine',
    'EngineReport',
    'Runner',
    'canonical',
    'torch_key',
]

DTYPES: Final = {
    'fp32': torch.float32,
    'fp16': torch.float16,
    'bf16': torch.bfloat16,
    'int8': torch.float16,  # QDQ nodes around fp16 compute
}


class Runner(Protocol):
    """A built backend: device tensors in, device tensors out (a tuple with confidence)."""

    def __call__(self, frames: Tensor) -> Any:
        """Run one uint8 batch (N, H, W, 3) on the engine's device."""
        ...


@dataclass(frozen=True)
class BuildOptions:
    """What a backend needs to build or load one engine.

    Attributes:
        device: Where the engine runs.
        precision: ``fp32``, ``fp16``, ``bf16`` or ``int8``.
        dynamic: Dynamic H and W (multiples of ``STRIDE`` up to ``max_side``).
        max_side: Upper bound of the dynamic range.
        threads: CPU threads (0: library default).
        cuda_graphs: torch-compile replays CUDA graphs on a GPU.
        strict: Fail loudly (e.g. TensorRT's ``pass_through_build_failures``).
        calibration: uint8 frames (M, H, W, 3) for INT8 post-training quantisation.
        openvino_device: The OpenVINO device of the openvino backend (``CPU``, ``GPU``, ...).
    """

    device: torch.device
    precision: str = 'fp32'
    dynamic: bool = False
    max_side: int = DYNAMIC_MAX_SIDE
    threads: int = 0
    cuda_graphs: bool = True
    strict: bool = False
    calibration: Tensor | None = None
    openvino_device: str = 'CPU'

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype of the wrapped model."""
        return DTYPES[self.precision]


def torch_key(device: torch.device) -> dict[str, Any]:
    """The artifact key fields of a program torch runs: the device type and torch's version."""
    return {'device_type': device.type, 'torch': torch.__version__}


def canonical(frames: Tensor) -> Tensor:
    """The same data with contiguous strides.

    A numpy ``frame[None]`` has stride 0 on its batch axis; compiled graphs guard on strides
    and would recompile for it.
    """
    if not frames.is_contiguous():
        return frames.contiguous()
    strides, step = [], 1
    for size in reversed(frames.shape):
        strides.append(step)
        step *= size
    expected = tuple(reversed(strides))
    return frames if frames.stride() == expected else frames.as_strided(frames.shape, expected)


class Engine:
    """A built backend for one frame shape (or a dynamic range of them).

    Args:
        backend: Which backend built it.
        runner: The built graph (see :class:`Runner`).
        device: Where its inputs and outputs live.
        precision: Compute precision (``fp32``, ``fp16``, ``bf16``, ``int8``).
        batch: Frames per call.
        height: Frame height it was built for.
        width: Frame width it was built for.
        dynamic: It accepts other H and W (multiples of ``STRIDE`` up to ``max_side``).
        max_side: Upper bound of the dynamic range.
        confidence: Its graph has the confidence output (``runner`` returns a pair).
    """

    def __init__(
        self,
        backend: str,
        runner: Runner,
        *,
        device: torch.device,
        precision: str,
        batch: int,
        height: int,
        width: int,
        dynamic: bool = False,
        max_side: int = DYNAMIC_MAX_SIDE,
        confidence: bool = False,
    ) -> None:
        self.backend = backend
        self.runner = runner
        self.device = device
        self.precision = precision
        self.batch = batch
        self.height = height
        self.width = width
        self.dynamic = dynamic
        self.max_side = max_side
        self.confidence = confidence

    def accepts(self, batch: int, height: int, width: int) -> str:
        """Why a batch of this shape cannot run, or ``''`` when it can."""
        if batch != self.batch:
            return f'batch {batch} but the engine was built for batch {self.batch}'
        if not self.dynamic:
            if (height, width) != (self.height, self.width):
                return (
                    f'frames are {height}x{width} but the engine was built for '
                    f'{self.height}x{self.width} (build one per camera resolution, or dynamic)'
                )
            return ''
        if (
            height % STRIDE
            or width % STRIDE
            or not (2 * STRIDE <= min(height, width))
            or (max(height, width) > self.max_side)
        ):
            return (
                f'frames are {height}x{width}; this dynamic engine takes multiples of {STRIDE} '
                f'from {2 * STRIDE} to {self.max_side}'
            )
        return ''

    @torch.inference_mode()
    def __call__(self, frames: Tensor) -> Tensor:
        """Segment a uint8 batch (N, H, W, 3) on ``device``; returns uint8 masks (N, H, W)."""
        return self.outputs(frames)[0]

    @torch.inference_mode()
    def outputs(self, frames: Tensor) -> tuple[Tensor, Tensor | None]:
        """uint8 masks (N, H, W) and, with ``confidence``, uint8 confidences (N, H, W)."""
        out = self.runner(canonical(frames))
        if not self.confidence:
            return _uint8(out), None
        masks, confidences = out
        return _uint8(masks), _uint8(confidences)

    def __repr__(self) -> str:
        """Backend, device, precision and shape (and ``+confidence``)."""
        shape = f'{self.batch}x{self.height}x{self.width}' + (' dynamic' if self.dynamic else '')
        extra = ' +confidence' if self.confidence else ''
        return f'Engine({self.backend}, {self.device}, {self.precision}, {shape}{extra})'


def _uint8(tensor: Tensor) -> Tensor:
    """The device-side cast of a graph ending in int32 (TensorRT); uint8 passes as it is."""
    return tensor if tensor.dtype == torch.uint8 else tensor.to(torch.uint8)


@dataclass
class Attempt:
    """One candidate the builder tried: ``backend`` names it (with its precision under auto).

    ``ms`` is its measured time per call when ``auto`` timed it; ``unavailable`` marks one
    that cannot run here at all (not installed, a precision the backend does not run).
    """

    backend: str
    ok: bool
    reason: str = ''
    seconds: float = 0.0
    ms: float | None = None
    unavailable: bool = False


@dataclass
class EngineReport:
    """How an engine was chosen and checked (logged by the node, written by the bench)."""

    backend: str = ''
    device: str = ''
    precision: str = ''
    attempts: list[Attempt] = field(default_factory=list)
    parity: dict[str, Any] = field(default_factory=dict)
    artifact: str = ''
    build_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def refused(self, backend: str, err: BaseException, seconds: float = 0.0) -> None:
        """Record a backend that was not used and why."""
        kind = '' if isinstance(err, EngineBuildError) else f'{type(err).__name__}: '
        unavailable = isinstance(err, EngineUnavailable)
        self.attempts.append(Attempt(backend, False, f'{kind}{err}', seconds, None, unavailable))

    def summary(self) -> str:
        """One line per attempt, e.g. for a log."""
        lines = []
        skipped = [a.backend for a in self.attempts if a.unavailable]
        for a in self.attempts:
            if a.unavailable and len(self.attempts) > 1:
                continue  # listed together below
            if not a.ok:
                lines.append(f'{a.backend}: not used ({a.reason})')
            elif a.ms is not None:
                lines.append(f'{a.backend}: {a.ms:.1f} ms')
        if skipped and len(self.attempts) > 1:
            lines.append(f'cannot run here: {", ".join(skipped)}')
        if self.backend:
            lines.append(f'used {self.backend} {self.precision}')
        return '; '.join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON)."""
        return asdict(self)
