"""The parity gate: every built engine is checked against eager fp32 before it is used.

Reference: the unfolded model (equalizers and BatchNorm as trained), fp32, eager, TF32 off, as
logits on the gate's frames. The engine's masks pass when (docs/engine.md, "The parity gate"):

- every pixel whose reference top-2 logit margin is at least ``tie_margin`` has the reference
  class (flips are allowed only at near-ties, where camera noise flips pixels too);
- the argmax agreement over all pixels is at least ``min_agreement``;
- with labels (``engine.parity_labels``), the mIoU of the masks is at most ``max_miou_drop``
  below the reference's on the same frames;
- for an engine with the confidence output (``engine.confidence``), the 99th percentile of
  the absolute difference between its confidence and the reference's (``round(255 x`` the
  winning softmax probability of the fp32 logits``)``) is at most ``max_confidence_diff``
  grey levels.

Only masks (and confidences) are compared, so the gate never builds a second (logits)
engine. Frames: the images of ``engine.parity_images`` (e.g. CamVid val) when set, otherwise
synthetic streets; resized to the engine's shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from segnode.config import EngineConfig
from segnode.engine.graph import frame_graph
from segnode.errors import EngineBuildError
from segnode.metrics import confusion_matrix, IGNORE_ID, iou_from_confusion
from segnode.model.deploy import confidence_levels
from segnode.model.mfaranet import MFARANet

__all__ = [
    'GateThresholds',
    'ParityResult',
    'Reference',
    'check_parity',
    'gate_frames',
    'image_frames',
    'image_paths',
    'label_frames',
    'prepare_reference',
    'reference_logits',
]

# An engine: frames -> masks, or (masks, confidences) for an engine with the confidence output
FrameFn = Callable[[Tensor], Any]
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')


@dataclass(frozen=True)
class GateThresholds:
    """What the gate accepts (``engine.min_agreement``, ``tie_margin`` and the others)."""

    min_agreement: float = EngineConfig.min_agreement
    tie_margin: float = EngineConfig.tie_margin
    max_miou_drop: float = EngineConfig.max_miou_drop
    max_confidence_diff: int = EngineConfig.max_confidence_diff

    @classmethod
    def of(cls, config: EngineConfig) -> GateThresholds:
        """The thresholds of an engine config."""
        return cls(
            config.min_agreement,
            config.tie_margin,
            config.max_miou_drop,
            config.max_confidence_diff,
        )


@dataclass(frozen=True)
class ParityResult:
    """What the gate measured, over every pixel of every gate frame.

    Attributes:
        agreement: Fraction of pixels whose class is the reference's.
        confident_flips: Pixels with a reference margin of at least ``tie_margin`` whose class
            changed (must be 0).
        largest_flip_margin: The largest reference margin among the changed pixels (0: none).
        miou: mIoU of the engine's masks on the labels (None without labels).
        reference_miou: mIoU of the reference's masks on the same labels.
        frames: Frames compared.
        source: Where they came from (a folder, or ``synthetic``).
        confidence_p99: The 99th percentile of |confidence - reference confidence| in grey
            levels (None: the engine has no confidence output).
        confidence_max: The largest such difference.
    """

    agreement: float
    confident_flips: int
    largest_flip_margin: float
    miou: float | None
    reference_miou: float | None
    frames: int
    source: str
    min_agreement: float
    tie_margin: float
    max_miou_drop: float
    confidence_p99: float | None = None
    confidence_max: int | None = None
    max_confidence_diff: int = EngineConfig.max_confidence_diff

    @property
    def passed(self) -> bool:
        """No confident flip, the agreement floor met, and the mIoU kept where measured."""
        miou_ok = (
            self.miou is None
            or self.reference_miou is None
            or self.reference_miou - self.miou <= self.max_miou_drop + 1e-12
        )
        confidence_ok = (
            self.confidence_p99 is None or self.confidence_p99 <= self.max_confidence_diff
        )
        return (
            self.confident_flips == 0
            and self.agreement >= self.min_agreement
            and miou_ok
            and confidence_ok
        )

    def describe(self) -> str:
        """One line for logs and errors."""
        text = (
            f'{self.confident_flips} pixels flipped at fp32 margin >= {self.tie_margin:g} '
            f'(largest flipped margin {self.largest_flip_margin:.3g}), argmax agreement '
            f'{self.agreement:.4%} (min {self.min_agreement:.2%})'
        )
        if self.miou is not None and self.reference_miou is not None:
            text += (
                f', mIoU {self.miou:.4f} vs fp32 {self.reference_miou:.4f} '
                f'(max drop {self.max_miou_drop:g})'
            )
        if self.confidence_p99 is not None:
            text += (
                f', confidence differs by {self.confidence_p99:g} grey levels at the 99th '
                f'percentile (max {self.max_confidence_diff}; largest {self.confidence_max})'
            )
        return f'{text} on {self.frames} {self.source} frames'

    def to_dict(self) -> dict[str, Any]:
        """Plain data, with the verdict."""
        return {**asdict(self), 'passed': self.passed}


def image_paths(folder: str, count: int, *, what: str = 'engine.parity_images') -> list[Path]:
    """The ``.png``/``.jpg`` files of ``folder``, sorted; at least ``count`` of them.

    Raises:
        EngineBuildError: Fewer than ``count`` (``what`` names the setting).
    """
    paths = sorted(p for p in Path(folder).glob('*') if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(paths) < count:
        raise EngineBuildError(f'{what} {folder}: {len(paths)} images, {count} needed')
    return paths


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


def label_frames(
    images: Sequence[Path], folder: str, height: int, width: int, num_classes: int
) -> np.ndarray:
    """The single-channel class-id maps named like ``images`` in ``folder``, at H x W.

    Nearest-neighbour resize; ids outside [0, K) become the ignore id (255).

    Raises:
        EngineBuildError: A label is missing, unreadable or not single-channel.
    """
    labels = []
    for image in images:
        candidates = [Path(folder) / image.name, Path(folder) / f'{image.stem}.png']
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise EngineBuildError(f'engine.parity_labels {folder}: no label for {image.name}')
        label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if label is None or label.ndim != 2:
            raise EngineBuildError(
                f'label {path} must be a single-channel image of class ids'
                + ('' if label is None else f', got shape {label.shape}')
            )
        label = cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST)
        labels.append(np.where(label < num_classes, label, IGNORE_ID).astype(np.int64))
    return np.stack(labels)


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
        return image_frames(image_paths(folder, count)[:count], height, width, bgr=bgr), str(
            folder
        )
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
) -> Iterator[Tensor]:
    """Eager fp32 logits (1, K, H, W) of the unfolded model, frame by frame, on the CPU."""
    device = device or torch.device('cpu')
    graph = frame_graph(model, bgr=bgr, input_size=input_size, logits=True).to(device).float()
    with torch.inference_mode(), _no_tf32():
        for frame in frames:
            yield graph(frame[None].to(device)).cpu()


def _miou(masks: Tensor, labels: Tensor, num_classes: int) -> float:
    """The mIoU over the classes present in labels or masks; invalid ids count as wrong."""
    preds = torch.where(masks < num_classes, masks, num_classes)
    matrix = confusion_matrix(preds, labels, num_classes + 1)
    iou = iou_from_confusion(matrix)[:num_classes]
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0


@dataclass(frozen=True)
class Reference:
    """The gate's frames and what eager fp32 makes of them (computed once per build).

    Attributes:
        frames: uint8 (M, H, W, 3).
        masks: The reference classes (M, H, W), int64.
        margins: The reference top-2 logit margins (M, H, W), float32.
        labels: Class ids (M, H, W) with 255 for ignore, or None.
        source: Where the frames came from.
        num_classes: K.
        confidences: The reference confidences (M, H, W) in grey levels 0..255, int16.
    """

    frames: Tensor
    masks: Tensor
    margins: Tensor
    labels: Tensor | None
    source: str
    num_classes: int
    confidences: Tensor | None = None


def prepare_reference(
    model: MFARANet,
    count: int,
    height: int,
    width: int,
    *,
    bgr: bool = False,
    input_size: tuple[int, int] | None = None,
    images: str = '',
    labels: str = '',
    device: torch.device | None = None,
) -> Reference:
    """Read (or draw) the gate's frames and labels and run eager fp32 on them.

    Raises:
        EngineBuildError: Too few images, or an unreadable image or label.
    """
    if labels and not images:
        raise EngineBuildError('engine.parity_labels needs engine.parity_images')
    frames_np, source = gate_frames(count, height, width, bgr=bgr, folder=images)
    frames = torch.from_numpy(np.ascontiguousarray(frames_np))
    masks, margins, confidences = [], [], []
    for logits in reference_logits(model, frames, bgr=bgr, input_size=input_size, device=device):
        top2 = logits.topk(2, dim=1)
        masks.append(top2.indices[:, 0])
        margins.append(top2.values[:, 0] - top2.values[:, 1])
        confidences.append(confidence_levels(logits).to(torch.int16))
    num_classes = model.config.num_classes
    label_t = None
    if labels:
        paths = image_paths(images, count)[:count]
        label_t = torch.from_numpy(label_frames(paths, labels, height, width, num_classes))
    return Reference(
        frames,
        torch.cat(masks),
        torch.cat(margins),
        label_t,
        source,
        num_classes,
        torch.cat(confidences),
    )


def _chunks(frames: Tensor, batch: int) -> Iterator[Tensor]:
    for start in range(0, len(frames) - batch + 1, batch):
        yield frames[start : start + batch]


def check_parity(
    masks_fn: FrameFn,
    reference: Reference,
    *,
    batch: int,
    device: torch.device,
    thresholds: GateThresholds,
) -> ParityResult:
    """Compare an engine's masks (and confidences) with the reference.

    Args:
        masks_fn: The engine: uint8 frames on ``device`` -> masks, or (masks, confidences).
        reference: From :func:`prepare_reference`; its frame count is a multiple of ``batch``.
        batch: Frames per engine call.
        device: The engine's device.
        thresholds: What the gate accepts.
    """
    got, got_confidences = [], []
    with torch.inference_mode():
        for chunk in _chunks(reference.frames, batch):
            out = masks_fn(chunk.to(device))
            if isinstance(out, tuple):
                out, confidence = out
                got_confidences.append(confidence.cpu().to(torch.int16))
            got.append(out.cpu().long())
    if not got:
        raise EngineBuildError(f'the parity gate got no frames (batch {batch})')
    masks = torch.cat(got)
    p99 = largest = None
    if got_confidences:
        if reference.confidences is None:
            raise EngineBuildError('the parity reference has no confidences to compare with')
        diff = (torch.cat(got_confidences) - reference.confidences[: len(masks)]).abs()
        p99 = float(np.percentile(diff.numpy(), 99))
        largest = int(diff.max())
    ref_masks = reference.masks[: len(masks)]
    flipped = masks != ref_masks
    flip_margins = reference.margins[: len(masks)][flipped]
    miou = reference_miou = None
    if reference.labels is not None:
        labels = reference.labels[: len(masks)]
        miou = _miou(masks, labels, reference.num_classes)
        reference_miou = _miou(ref_masks, labels, reference.num_classes)
    return ParityResult(
        agreement=1.0 - float(flipped.float().mean()),
        confident_flips=int((flip_margins >= thresholds.tie_margin).sum()),
        largest_flip_margin=float(flip_margins.max()) if flip_margins.numel() else 0.0,
        miou=miou,
        reference_miou=reference_miou,
        frames=len(masks),
        source=reference.source,
        min_agreement=thresholds.min_agreement,
        tie_margin=thresholds.tie_margin,
        max_miou_drop=thresholds.max_miou_drop,
        confidence_p99=p99,
        confidence_max=largest,
        max_confidence_diff=thresholds.max_confidence_diff,
    )
