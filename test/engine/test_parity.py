"""check_parity on hand-made tensors: thresholds, NaN logits, frame sources."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from segnode.engine.parity import check_parity, gate_frames
from segnode.errors import EngineBuildError

CPU = torch.device('cpu')


def _reference() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 8, 10, generator=gen)
    frames = torch.zeros(2, 8, 10, 3, dtype=torch.uint8)
    return logits, frames


def _check(masks_fn, logits_fn, logits, frames):  # type: ignore[no-untyped-def]
    return check_parity(
        masks_fn,
        logits_fn,
        logits,
        frames,
        batch=1,
        device=CPU,
        source='test',
        min_agreement=0.999,
        min_cosine=0.99,
    )


def test_identical_engine_passes_and_one_wrong_pixel_fails() -> None:
    logits, frames = _reference()
    calls = iter(range(4))

    def logits_fn(x: torch.Tensor) -> torch.Tensor:
        return logits[next(calls)][None]

    masks = logits.argmax(1).to(torch.uint8)
    index = iter(range(2))
    result = _check(lambda x: masks[next(index)][None], logits_fn, logits, frames)
    assert result.passed and result.agreement == 1.0 and result.cosine == pytest.approx(1.0)
    wrong = masks.clone()
    wrong[0, 0, 0] = (wrong[0, 0, 0] + 1) % 5
    index = iter(range(2))
    result = _check(lambda x: wrong[next(index)][None], None, logits, frames)
    assert not result.passed and result.agreement == pytest.approx(1 - 1 / 160)
    assert result.cosine is None and 'argmax agreement 99.37500%' in result.describe()


def test_nan_logits_are_refused() -> None:
    logits, frames = _reference()
    masks = logits.argmax(1).to(torch.uint8)
    index = iter(range(2))
    result = _check(
        lambda x: masks[next(index)][None],
        lambda x: torch.full((1, 5, 8, 10), float('nan')),
        logits,
        frames,
    )
    assert result.agreement == 1.0 and not result.passed
    assert result.max_abs is not None and math.isnan(result.max_abs)


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
    with pytest.raises(EngineBuildError, match='2 images, the gate needs 3'):
        gate_frames(3, 32, 48, folder=str(tmp_path))
