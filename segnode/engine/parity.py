"""The parity gate: every built engine is checked against eager fp32 before it is used.

Reference: the unfolded model (equalizers and BatchNorm as trained), fp32, eager, TF32 off,
on the engine's frames. The engine passes when its masks agree with the reference argmax on at
least ``min_agreement`` of the pixels and the cosine similarity of its logits (from a logits
build of the same backend) is at least ``min_cosine`` on every frame (docs/engine.md, "The
parity gate"). Frames: the images of ``engine.parity_images`` (e.g. CamVid val) when set,
otherwise synthetic streets; resized to the engine's shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from segnode.engine.graph import frame_graph
from segnode.errors import EngineBuildError
from segnode.model.mfaranet import MFARANet

__all__ = ['ParityResult', 'check_parity', 'gate_frames', 'image_frames', 'reference_logits']

FrameFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class ParityResult:
    """What the gate measured (the worst frame for cosine, all pixels for agreement)."""

    agreement: float
    cosine: float | None
    max_abs: float | None
    frames: int
    source: str
    min_agreement: float
    min_cosine: float

    @property
    def passed(self) -> bool:
        """Both thresholds met (cosine only when logits were compared)."""
        cosine_ok = self.cosine is None or self.cosine >= self.min_cosine
        return self.agreement >= self.min_agreement and cosine_ok

    def describe(self) -> str:
        """One line for logs and errors."""
        text = f'argmax agreement {self.agreement:.5%} (min {self.min_agreement:.3%})'
        if self.cosine is not None:
            text += f', logits cosine {self.cosine:.6f} (min {self.min_cosine}), '
            text += f'max |diff| {self.max_abs:.3g}'
        return f'{text} on {self.frames} {self.source} frames'

    def to_dict(self) -> dict[str, Any]:
        """Plain data, with the verdict."""
        return {**asdict(self), 'passed': self.passed}


def image_frames(
    paths: Sequence[Path], height: int, width: int, *, bgr: bool = False
) -> np.ndarray:
    """Read images as uint8 (M, H, W, 3) frames at ``height x width`` (RGB unless ``bgr``)."""
    frames = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise EngineBuildError(f'cannot read image {path}')
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        frames.append(image if bgr else cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return np.stack(frames)


def gate_frames(
    count: int, height: int, width: int, *, bgr: bool = False, folder: str = ''
) -> tuple[np.ndarray, str]:
    """``count`` frames from the images in ``folder`` (sorted), else synthetic streets.

    Returns:
        The uint8 frames (count, H, W, 3) and where they came from (the folder, or
        ``'synthetic'``).

    Raises:
        EngineBuildError: ``folder`` holds fewer than ``count`` images, or an unreadable one.
    """
    if folder:
        paths = sorted(
            p for p in Path(folder).glob('*') if p.suffix.lower() in ('.png', '.jpg', '.jpeg')
        )[:count]
        if len(paths) < count:
            raise EngineBuildError(
                f'engine.parity_images {folder}: {len(paths)} images, the gate needs {count}'
            )
        return image_frames(paths, height, width, bgr=bgr), str(folder)
    from segnode.synthetic import synthetic_street

    frames = np.stack([synthetic_street(height, width, seed=i) for i in range(count)])
    return (frames[..., ::-1].copy() if bgr else frames), 'synthetic'


@contextmanager
def _no_tf32() -> Iterator[None]:
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def reference_logits(
    model: MFARANet,
    frames: Tensor,
    *,
    bgr: bool = False,
    input_size: tuple[int, int] | None = None,
    device: torch.device | None = None,
) -> Tensor:
    """Eager fp32 logits (M, K, H, W) of the unfolded model, on the CPU."""
    device = device or torch.device('cpu')
    graph = frame_graph(model, bgr=bgr, input_size=input_size, logits=True).to(device).float()
    out = []
    with torch.inference_mode(), _no_tf32():
        for frame in frames:
            out.append(graph(frame[None].to(device)).cpu())
    return torch.cat(out)


def _chunks(frames: Tensor, batch: int) -> Iterator[Tensor]:
    for start in range(0, len(frames) - batch + 1, batch):
        yield frames[start : start + batch]


def check_parity(
    masks_fn: FrameFn,
    logits_fn: FrameFn | None,
    reference: Tensor,
    frames: Tensor,
    *,
    batch: int,
    device: torch.device,
    source: str,
    min_agreement: float,
    min_cosine: float,
) -> ParityResult:
    """Compare an engine (masks, and logits when given) with reference logits.

    Args:
        masks_fn: The engine: uint8 frames on ``device`` -> masks.
        logits_fn: A logits build of the same backend, or None (masks only).
        reference: Eager fp32 logits (M, K, H, W) on the CPU.
        frames: The uint8 frames (M, H, W, 3), M a multiple of ``batch``.
        batch: Frames per engine call.
        device: The engine's device.
        source: Where the frames came from (reported).
        min_agreement: Argmax agreement threshold.
        min_cosine: Logits cosine threshold.
    """
    ref_masks = reference.argmax(dim=1)
    agree, total = 0, 0
    cosines, max_abs = [], 0.0
    with torch.inference_mode():
        for i, chunk in enumerate(_chunks(frames, batch)):
            part = slice(i * batch, (i + 1) * batch)
            masks = masks_fn(chunk.to(device)).cpu().long()
            agree += int((masks == ref_masks[part]).sum())
            total += masks.numel()
            if logits_fn is None:
                continue
            logits = logits_fn(chunk.to(device)).cpu().double()
            ref = reference[part].double()
            worst = float((logits - ref).abs().max())  # NaN when the engine produced NaN
            max_abs = worst if math.isnan(worst) or worst > max_abs else max_abs
            for got, want in zip(logits, ref, strict=True):
                cos = torch.nn.functional.cosine_similarity(got.flatten(), want.flatten(), dim=0)
                cosines.append(float(cos))
    if total == 0:
        raise EngineBuildError(f'the parity gate got no frames (batch {batch})')
    return ParityResult(
        agreement=agree / total,
        cosine=min(cosines) if cosines else None,
        max_abs=max_abs if cosines else None,
        frames=total // ref_masks[0].numel(),
        source=source,
        min_agreement=min_agreement,
        min_cosine=min_cosine,
    )
