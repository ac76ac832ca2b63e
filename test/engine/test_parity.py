"""The parity gate on hand-made references: near-ties, the agreement floor, mIoU, sources."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from segnode.engine.parity import (
    check_parity,
    gate_frames,
    GateThresholds,
    label_frames,
    ParityResult,
    prepare_reference,
    Reference,
)
from segnode.errors import EngineBuildError
from segnode.model.mfaranet import MFARANet

CPU = torch.device('cpu')
K = 5


def _reference(labels: torch.Tensor | None = None) -> Reference:
    gen = torch.Generator().manual_seed(0)
    masks = torch.randint(0, K, (2, 8, 10), generator=gen)
    margins = torch.full((2, 8, 10), 3.0)
    margins[0, 0, :4] = 0.1  # four near-ties
    frames = torch.zeros(2, 8, 10, 3, dtype=torch.uint8)
    return Reference(frames, masks, margins, labels, 'test', K)


def _engine(masks: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    calls = iter(range(len(masks)))
    return lambda frames: masks[next(calls)][None].to(torch.uint8)


def _check(ref: Reference, masks: torch.Tensor, **thresholds: float) -> ParityResult:
    values = {'min_agreement': 0.97, 'tie_margin': 1.0, **thresholds}
    gate = GateThresholds(**values)
    return check_parity(_engine(masks), ref, batch=1, device=CPU, thresholds=gate)


def test_identical_masks_pass() -> None:
    ref = _reference()
    result = _check(ref, ref.masks)
    assert result.passed and result.agreement == 1.0 and result.confident_flips == 0
    assert result.largest_flip_margin == 0.0 and result.miou is None


def test_a_flip_at_a_near_tie_passes_and_a_confident_one_fails() -> None:
    ref = _reference()
    tie = ref.masks.clone()
    tie[0, 0, 0] = (tie[0, 0, 0] + 1) % K  # margin 0.1
    result = _check(ref, tie)
    assert result.passed and result.agreement == pytest.approx(1 - 1 / 160)
    assert result.largest_flip_margin == pytest.approx(0.1)
    confident = ref.masks.clone()
    confident[1, 3, 3] = (confident[1, 3, 3] + 1) % K  # margin 3.0
    result = _check(ref, confident)
    assert not result.passed and result.confident_flips == 1
    assert '1 pixels flipped at fp32 margin >= 1' in result.describe()


def test_the_agreement_floor_refuses_many_near_tie_flips() -> None:
    ref = _reference()
    ties = ref.masks.clone()
    ties[0, 0, :4] = (ties[0, 0, :4] + 1) % K  # 4 of 160 pixels: 97.5 %
    assert _check(ref, ties).passed
    result = _check(ref, ties, min_agreement=0.99)
    assert not result.passed and result.confident_flips == 0
    assert 'argmax agreement 97.5000% (min 99.00%)' in result.describe()


def test_garbage_masks_are_refused() -> None:
    ref = _reference()
    result = _check(ref, torch.full_like(ref.masks, 255))  # what NaN logits turn into
    assert not result.passed and result.agreement == 0.0


def test_miou_drop_against_labels() -> None:
    labels = _reference().masks.clone()
    labels[:, 7] = 255  # ignored
    ref = _reference(labels)
    same = _check(ref, ref.masks)
    assert same.passed and same.miou == pytest.approx(1.0) == same.reference_miou
    tie = ref.masks.clone()
    tie[0, 0, :2] = (tie[0, 0, :2] + 1) % K  # near-ties, so only the mIoU can refuse it
    result = _check(ref, tie, max_miou_drop=0.002)
    assert result.miou is not None and result.miou < 1.0
    assert not result.passed and 'mIoU' in result.describe()
    assert _check(ref, tie, max_miou_drop=0.5).passed


def test_gate_frames_come_from_the_configured_folder(tmp_path: Path) -> None:
    frames, source = gate_frames(2, 32, 48)
    assert source == 'synthetic' and frames.shape == (2, 32, 48, 3)
    for i in range(2):
        image = np.full((60, 80, 3), (10 * i, 100, 200), np.uint8)  # BGR on disk
        cv2.imwrite(str(tmp_path / f'{i}.png'), image)
    frames, source = gate_frames(2, 32, 48, folder=str(tmp_path))
    assert source == str(tmp_path) and frames.shape == (2, 32, 48, 3)
    assert tuple(frames[1, 0, 0]) == (200, 100, 10)  # converted to RGB
    bgr, _ = gate_frames(2, 32, 48, bgr=True, folder=str(tmp_path))
    assert tuple(bgr[1, 0, 0]) == (10, 100, 200)
    with pytest.raises(EngineBuildError, match='2 images, 3 needed'):
        gate_frames(3, 32, 48, folder=str(tmp_path))


def test_labels_are_read_resized_and_checked(tmp_path: Path) -> None:
    images, labels = tmp_path / 'val', tmp_path / 'valannot'
    images.mkdir()
    labels.mkdir()
    cv2.imwrite(str(images / 'a.png'), np.zeros((60, 80, 3), np.uint8))
    label = np.zeros((60, 80), np.uint8)
    label[:, 40:] = 7  # not a class of a 5-class model: ignored
    cv2.imwrite(str(labels / 'a.png'), label)
    out = label_frames([images / 'a.png'], str(labels), 30, 40, K)
    assert out.shape == (1, 30, 40) and set(np.unique(out)) == {0, 255}
    with pytest.raises(EngineBuildError, match='no label for b.png'):
        label_frames([images / 'b.png'], str(labels), 30, 40, K)
    cv2.imwrite(str(labels / 'c.png'), np.zeros((6, 8, 3), np.uint8))
    with pytest.raises(EngineBuildError, match='single-channel'):
        label_frames([images / 'c.png'], str(labels), 30, 40, K)


def test_labels_need_images(model: MFARANet) -> None:
    with pytest.raises(EngineBuildError, match='parity_labels needs engine.parity_images'):
        prepare_reference(model, 1, 64, 64, labels='somewhere')
