"""Hostile compressed frames for tests (issue 24): small files whose headers lie about their size.

Import it from any test as ``import hostile_frames`` (pytest's ``prepend`` import mode puts
``test/`` on ``sys.path``).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest


def jpeg_claiming(height: int, width: int, nbytes: int = 0) -> bytes:
    """A complete 16x16 black JPEG whose frame header (SOF0) claims ``height x width``.

    With ``nbytes`` it is padded by a comment segment to exactly that many bytes (the issue's
    attack is 723 bytes).
    """
    ok, data = cv2.imencode('.jpg', np.zeros((16, 16, 3), np.uint8))
    assert ok
    out = bytearray(data.tobytes())
    sof = out.index(b'\xff\xc0')
    out[sof + 5 : sof + 9] = height.to_bytes(2, 'big') + width.to_bytes(2, 'big')
    if nbytes:
        pad = nbytes - len(out) - 4
        assert pad >= 0, f'a 16x16 jpeg is {len(out)} bytes already'
        out[2:2] = b'\xff\xfe' + (pad + 2).to_bytes(2, 'big') + bytes(pad)  # COM segment
    return bytes(out)


def random_bytes(n: int = 700, seed: int = 3) -> bytes:
    """``n`` random bytes: no image container at all."""
    return np.random.default_rng(seed).integers(0, 256, n, np.uint8).tobytes()


def record_decodes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Spy on ``cv2.imdecode``: the returned list gets the shape of every image it decodes."""
    decoded: list[tuple[int, ...]] = []
    real = cv2.imdecode

    def spy(*args: Any) -> Any:
        image = real(*args)
        decoded.append(image.shape)
        return image

    monkeypatch.setattr(cv2, 'imdecode', spy)
    return decoded
