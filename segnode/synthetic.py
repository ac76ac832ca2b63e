"""A driving-like synthetic street scene drawn in code (numpy and OpenCV only).

Used where a real frame is wanted but no data may be assumed: the demo, the engine's parity
gate fallback and the benchmark.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ['synthetic_street']


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
