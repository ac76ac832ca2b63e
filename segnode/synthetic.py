"""A driving-like synthetic street scene drawn in code (numpy and OpenCV only).

Used where a real frame is wanted but no data may be assumed: the demo, the engine's parity
gate fallback and the benchmark.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

__all__ = ['synthetic_drive', 'synthetic_street']


def synthetic_street(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A driving-like RGB uint8 frame (H, W, 3): sky, buildings, trees, road, pavement, car."""
    rng = np.random.default_rng(seed)
    h, w = height, width
    img = np.zeros((h, w, 3), np.uint8)
    horizon = int(h * 0.45)
    sky = np.linspace(200, 140, horizon)[:, None]
    img[:horizon] = np.stack([sky * 0.6, sky * 0.8, sky], axis=-1).astype(np.uint8)
    for x0 in range(0, w, max(w // 6, 1)):  # buildings along the horizon
        top = int(horizon * rng.uniform(0.1, 0.6))
        shade = int(rng.integers(90, 160))
        cv2.rectangle(img, (x0, top), (x0 + w // 7, horizon), (shade, shade - 20, shade - 30), -1)
    for _ in range(4):  # trees
        cx, cy = int(rng.integers(0, w)), int(horizon * rng.uniform(0.5, 0.9))
        cv2.circle(img, (cx, cy), int(h * 0.08), (40, int(rng.integers(100, 140)), 40), -1)
    img[horizon:] = (110, 110, 115)  # road
    vanish = (w // 2, horizon)
    for side in (0, w):  # pavement wedges
        pts = np.array([[side, h], [side, horizon + h // 10], vanish], np.int32)
        cv2.fillPoly(img, [pts], (170, 160, 150))
    for t in np.linspace(0.1, 0.9, 5):  # dashed centre line
        y0, y1 = int(horizon + (h - horizon) * t), int(horizon + (h - horizon) * (t + 0.08))
        cv2.line(img, (w // 2, y0), (w // 2, y1), (240, 240, 240), max(w // 160, 1))
    cw, ch = w // 5, h // 6  # a car on the right lane
    x, y = int(w * 0.58), int(horizon + (h - horizon) * 0.35)
    cv2.rectangle(img, (x, y), (x + cw, y + ch), (60, 30, 120), -1)
    noise = rng.normal(0, 4, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


# CamVid class ids of what synthetic_drive draws (segnode.data.labels.CAMVID order).
_SKY, _BUILDING, _ROAD, _PAVEMENT, _TREE, _CAR = 0, 1, 3, 4, 5, 8


def synthetic_drive(
    frames: int, height: int, width: int, seed: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A short drive: (rgb frame, CamVid label mask) pairs with the scene moving past.

    Buildings and trees slide sideways, lane marks move towards the camera and a car
    overtakes on the right lane. The label mask (H, W) uint8 holds CamVid class ids of what
    was drawn (sky, building, road, pavement, tree, car), so replay accuracy is meaningful
    for a CamVid model.
    """
    rng = np.random.default_rng(seed)
    h, w = height, width
    horizon = int(h * 0.45)
    buildings = [(int(rng.integers(0, 2 * w)), rng.uniform(0.1, 0.6), int(rng.integers(90, 160)))
                 for _ in range(8)]  # fmt: skip
    trees = [(int(rng.integers(0, 2 * w)), rng.uniform(0.5, 0.9)) for _ in range(5)]
    sky = np.linspace(200, 140, horizon)[:, None]
    sky_rgb = np.stack([sky * 0.6, sky * 0.8, sky], axis=-1).astype(np.uint8)
    for i in range(frames):
        img = np.zeros((h, w, 3), np.uint8)
        label = np.zeros((h, w), np.uint8)
        img[:horizon] = sky_rgb
        label[:horizon] = _SKY
        shift = i * max(w // 60, 1)

        def paint(draw: Any, colour: tuple[int, int, int], cls: int) -> None:
            draw(img, colour)
            draw(label, (cls,))

        for x0, top, shade in buildings:
            x = (x0 - shift) % (2 * w) - w // 2
            y = int(horizon * top)
            paint(lambda a, c, x=x, y=y: cv2.rectangle(a, (x, y), (x + w // 7, horizon), c, -1),
                  (shade, shade - 20, shade - 30), _BUILDING)  # fmt: skip
        img[horizon:] = (110, 110, 115)
        label[horizon:] = _ROAD
        vanish = (w // 2, horizon)
        for side in (0, w):
            pts = np.array([[side, h], [side, horizon + h // 10], vanish], np.int32)
            paint(lambda a, c, pts=pts: cv2.fillPoly(a, [pts], c), (170, 160, 150), _PAVEMENT)
        for t in np.linspace(0.1, 0.9, 5) + (i % 5) * 0.02:
            y0, y1 = int(horizon + (h - horizon) * t), int(horizon + (h - horizon) * (t + 0.08))
            cv2.line(img, (w // 2, y0), (w // 2, min(y1, h)), (240, 240, 240), max(w // 160, 1))
        for x0, depth in trees:
            cx, cy = (x0 - 2 * shift) % (2 * w) - w // 2, int(horizon * depth)
            paint(lambda a, c, cx=cx, cy=cy: cv2.circle(a, (cx, cy), int(h * 0.08), c, -1),
                  (40, 120, 40), _TREE)  # fmt: skip
        progress = i / max(frames - 1, 1)
        cw, ch = int(w * (0.25 - 0.1 * progress)), int(h * (0.2 - 0.08 * progress))
        x = int(w * (0.55 + 0.1 * progress))
        y = int(horizon + (h - horizon) * (0.45 - 0.25 * progress))
        paint(lambda a, c: cv2.rectangle(a, (x, y), (x + cw, y + ch), c, -1), (60, 30, 120), _CAR)
        noise = rng.normal(0, 4, img.shape)
        yield np.clip(img + noise, 0, 255).astype(np.uint8), label
