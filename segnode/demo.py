"""``segnode demo``: segment a synthetic street scene with the default model.

The scene is drawn in code (sky, buildings, trees, road with lane marks, pavement, a car), so
the demo needs no data. The model is the bundled default checkpoint when the package ships one,
otherwise randomly initialised weights, announced by a banner: masks from random weights are
meaningless, only the timing and the plumbing are real.
"""

from __future__ import annotations

from pathlib import Path
import statistics
import time

import cv2
import numpy as np
import torch

from segnode.data.labels import CAMVID, ClassTable
from segnode.model.checkpoint import build_from_checkpoint
from segnode.model.deploy import FrameToMask
from segnode.model.fold import fold_equalizers
from segnode.model.mfaranet import build_mfaranet, MFARANet
from segnode.synthetic import synthetic_street

__all__ = ['DEFAULT_CHECKPOINT', 'default_model', 'run_demo']

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / 'weights' / 'camvid_mfaranet.pt'


def default_model() -> tuple[MFARANet, ClassTable, bool]:
    """The bundled default model, or random CamVid-sized weights; the flag says which."""
    if DEFAULT_CHECKPOINT.is_file():
        model, meta = build_from_checkpoint(DEFAULT_CHECKPOINT)
        names = tuple(meta['classes']['names'])
        palette = tuple((int(r), int(g), int(b)) for r, g, b in meta['classes']['palette'])
        return model, ClassTable(meta.get('dataset', ''), names, palette), True
    torch.manual_seed(0)
    return build_mfaranet(num_classes=CAMVID.num_classes).eval(), CAMVID, False


def colorize(mask: np.ndarray, table: ClassTable) -> np.ndarray:
    """RGB colour image of a class-id mask (255 and unknown ids are black)."""
    lut = np.zeros((256, 3), np.uint8)
    lut[: table.num_classes] = np.asarray(table.palette, np.uint8)
    color: np.ndarray = lut[mask]
    return color


def run_demo(size: tuple[int, ...], runs: int = 5, out_dir: str | Path = 'outputs/demo') -> int:
    """Segment one synthetic frame, print the class summary and timing, write PNGs."""
    h, w = size
    model, table, trained = default_model()
    if not trained:
        print('=' * 72)
        print('NOTE: no bundled checkpoint; using RANDOM weights. The mask below is')
        print('meaningless; the timing and the data path are real.')
        print('=' * 72)
    graph = FrameToMask(fold_equalizers(model)).eval()
    frame = synthetic_street(h, w)
    batch = torch.from_numpy(frame)[None]
    times = []
    with torch.inference_mode():
        graph(batch)  # warm-up
        for _ in range(max(runs, 1)):
            t0 = time.perf_counter()
            mask = graph(batch)[0].numpy()
            times.append((time.perf_counter() - t0) * 1e3)
    counts = np.bincount(mask.ravel(), minlength=table.num_classes)
    print(f'frame {h}x{w}, {table.num_classes} classes, eager fp32 on CPU '
          f'({torch.get_num_threads()} threads)')  # fmt: skip
    print('class fractions: ' + ', '.join(
        f'{table.names[i]} {counts[i] / mask.size:.1%}'
        for i in np.argsort(-counts) if counts[i]
    ))  # fmt: skip
    print(f'latency: p50 {statistics.median(times):.1f} ms, min {min(times):.1f} ms '
          f'over {len(times)} runs (uint8 frame in, uint8 mask out)')  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    color = colorize(mask, table)
    overlay = cv2.addWeighted(frame, 0.5, color, 0.5, 0)
    for name, img in (('frame', frame), ('mask_color', color), ('overlay', overlay)):
        cv2.imwrite(str(out / f'{name}.png'), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    print(f'images: {out}/frame.png, mask_color.png, overlay.png')
    return 0
