"""Replay reports: a JSON summary, a Markdown page, latency and accuracy plots, overlays.

Every file is written atomically (a temporary file beside it, then a rename), so an
interrupted run never leaves a half-written file under a final name. Plots need matplotlib
(imported inside the functions, Agg backend) and are skipped without it; overlays use OpenCV.
"""

from __future__ import annotations

from collections.abc import Callable
import importlib.util
import json
import math
from pathlib import Path
import re
from typing import Any

import numpy as np

from segnode.files import atomic_write, jsonable
from segnode.metrics import iou_from_confusion, LATENCY_KEYS, latency_summary, save_confusion_png
from segnode.replay.results import CameraResult, Overlay, ReplayResult, STAGES

__all__ = ['headline', 'summarize', 'write_report']

_RUN = ('bag', 'mode', 'speed', 'engine', 'model', 'wall_s', 'engine_s')
_COUNTS = ('frames', 'processed', 'dropped', 'bad', 'scored', 'unscored')
_ACCURACY = ('miou', 'pixel_accuracy', 'per_class_iou', 'confusion_matrix', 'consumer_miou',
             'consumer_pixel_accuracy')  # fmt: skip
_PLOTS = {
    'latency_hist.png': 'total latency histogram',
    'latency_timeline.png': 'total latency over bag time (processed frames)',
    'class_iou.png': 'per-class IoU',
    'confusion.png': 'confusion matrix (row-normalised)',
}


def _accuracy(matrix: np.ndarray) -> tuple[float, float, np.ndarray]:
    """The mIoU (classes in truth or prediction), pixel accuracy and per-class IoU."""
    iou = iou_from_confusion(matrix)
    miou = float(np.nanmean(iou)) if np.isfinite(iou).any() else math.nan
    total = matrix.sum()
    return miou, float(np.trace(matrix) / total) if total else math.nan, iou


def _camera_summary(cam: CameraResult, mode: str, truth: str | None) -> dict[str, Any]:
    stages = list(STAGES) + [s for s in cam.stages if s not in STAGES]
    return {
        'topic': cam.topic,
        'ground_truth': truth,
        **{key: getattr(cam, key) for key in _COUNTS},
        # realtime: masks per second of bag time (what a consumer gets); max: real frames/s
        'effective_hz': cam.effective_hz if mode == 'realtime' else cam.throughput_hz,
        'stages': {s: latency_summary(cam.stages.get(s, [])) for s in stages},
    }


def summarize(result: ReplayResult) -> dict[str, Any]:
    """The JSON document of a replay, JSON-ready (NaN already None).

    Without ground truth, ``miou``, ``pixel_accuracy``, ``per_class_iou`` and
    ``confusion_matrix`` are None. A class absent from truth and prediction has IoU None and
    is left out of the mIoU. ``consumer_miou`` (and ``consumer_pixel_accuracy``) are set in
    realtime mode only. ``replay_overhead`` is 1 - engine_s / wall_s (None if wall_s is 0).
    """
    cams = result.cameras
    doc: dict[str, Any] = {
        **{key: getattr(result, key) for key in _RUN},
        'replay_overhead': 1.0 - result.engine_s / result.wall_s if result.wall_s > 0 else None,
        **{key: sum(getattr(c, key) for c in cams) for key in _COUNTS},
        'classes': list(result.class_names),
        **dict.fromkeys(_ACCURACY),
        'interrupted': result.interrupted,
        'notes': list(result.notes),
        'cameras': {
            c.camera: _camera_summary(c, result.mode, result.truth.get(c.topic)) for c in cams
        },
    }
    if result.confusion is not None:
        matrix = np.asarray(result.confusion, dtype=np.int64)
        doc['miou'], doc['pixel_accuracy'], iou = _accuracy(matrix)
        names = [*result.class_names[: len(iou)]]
        names += [f'class_{i}' for i in range(len(names), len(iou))]
        doc['per_class_iou'] = dict(zip(names, iou.tolist(), strict=True))
        doc['confusion_matrix'] = matrix.tolist()
    if result.mode == 'realtime' and result.consumer_confusion is not None:
        consumer = np.asarray(result.consumer_confusion, dtype=np.int64)
        doc['consumer_miou'], doc['consumer_pixel_accuracy'], _ = _accuracy(consumer)
    document: dict[str, Any] = jsonable(doc)
    return document


def _num(value: float | None, fmt: str = '.1f', unit: str = '') -> str:
    return 'n/a' if value is None else f'{value:{fmt}}{unit}'


def _headline(doc: dict[str, Any]) -> str:
    parts = []
    for name, cam in doc['cameras'].items():
        total = cam['stages']['total_ms']
        rate = (
            f'{cam["effective_hz"]:.1f} frames/s'
            if doc['mode'] == 'max'
            else f'{cam["effective_hz"]:.1f} Hz of masks'
        )
        parts.append(
            f'camera {name}: {cam["frames"]} frames, {cam["processed"]} processed, '
            f'{cam["dropped"]} dropped, {cam["bad"]} bad, {rate}, '
            f'p50 total {_num(total["p50"], unit=" ms")}, p99 {_num(total["p99"], unit=" ms")}'
        )
    lines = ['; '.join(parts) or 'no cameras']
    pairs = [
        f'ground truth {cam["ground_truth"]} for {cam["topic"]}'
        for cam in doc['cameras'].values()
        if cam['ground_truth']
    ]
    if doc['confusion_matrix'] is not None:
        acc = f'mIoU {_num(doc["miou"], ".3f")} (pixel acc {_num(doc["pixel_accuracy"], ".3f")})'
        if doc['consumer_miou'] is not None:
            acc += f', consumer mIoU {doc["consumer_miou"]:.3f}'
        lines = [f'{lines[0]}; {acc}'] if len(parts) == 1 else [*lines, acc]
    if pairs:
        lines.append('; '.join(pairs))
    if doc['interrupted']:
        lines[0] = f'interrupted: {lines[0]}'
    return '\n'.join(lines)


def headline(result: ReplayResult) -> str:
    """One or two terminal lines: per-camera counts and total latency, then mIoU if scored."""
    return _headline(summarize(result))


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table (cells as text, ``|`` escaped)."""
    cells = [header, ['---'] * len(header), *rows]
    return ['| ' + ' | '.join(str(c).replace('|', '\\|') for c in row) + ' |' for row in cells]


def _markdown(doc: dict[str, Any], files: list[str], plots_skipped: bool) -> str:
    mode = f'realtime mode at {doc["speed"]:g}x' if doc['mode'] == 'realtime' else 'max mode'
    overhead = None if doc['replay_overhead'] is None else 100 * doc['replay_overhead']
    cams = [
        [n, f'`{c["topic"]}`', *(c[k] for k in _COUNTS), f'{c["effective_hz"]:.2f}']
        for n, c in doc['cameras'].items()
    ]
    stages = [
        [n, stage, s['count'], *(_num(s[k]) for k in LATENCY_KEYS[1:])]
        for n, c in doc['cameras'].items()
        for stage, s in c['stages'].items()
    ]
    lines = [f'# Replay report: `{doc["bag"]}`', '']
    lines += [f'**{line}**  ' for line in _headline(doc).split('\n')]
    lines += ['', f'{mode}; engine `{doc["engine"]}`; model `{doc["model"]}`.  ']
    lines.append(
        f'Wall time {doc["wall_s"]:.2f} s, engine time {doc["engine_s"]:.2f} s, '
        f'replay overhead {_num(overhead, unit=" %")}.'
    )
    rate = 'frames/s' if doc['mode'] == 'max' else 'effective Hz'
    lines += ['', '## Cameras', '', *_table(['camera', 'topic', *_COUNTS, rate], cams)]
    lines += ['', '## Latency (ms)', '', *_table(['camera', 'stage', *LATENCY_KEYS], stages)]
    lines += ['', '## Accuracy', '']
    if doc['per_class_iou'] is None:
        lines.append('No ground truth: accuracy was not scored.')
    else:
        miou, acc = _num(doc['miou'], '.3f'), _num(doc['pixel_accuracy'], '.3f')
        lines.append(f'mIoU **{miou}**, pixel accuracy {acc}.')
        if doc['consumer_miou'] is not None:
            lines[-1] += f' Consumer mIoU (dropped frames too) {doc["consumer_miou"]:.3f}.'
        iou = [[n, 'absent' if v is None else f'{v:.3f}'] for n, v in doc['per_class_iou'].items()]
        lines += ['', *_table(['class', 'IoU'], iou)]
    if doc['notes']:
        lines += ['', '## Notes', '', *(f'- {note}' for note in doc['notes'])]
    lines += ['', '## Plots', '']
    if plots_skipped:
        lines.append('Plots skipped: matplotlib is not installed.')
    lines += [f'![{title}]({name})' for name, title in _PLOTS.items() if name in files]
    overlays = [name for name in files if name.startswith('overlays/')]
    if overlays:
        lines += ['', '## Overlays', '', 'Image, prediction over the image, ground truth:', '']
        lines += [f'- [{Path(name).name}]({name})' for name in overlays]
    return '\n'.join(lines) + '\n'


def _figure(height: float) -> tuple[Any, Any]:
    """A new matplotlib figure and axes (Agg backend)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(9, height))


def _save(fig: Any, path: Path, name: str) -> None:
    import matplotlib.pyplot as plt

    try:
        fig.axes[0].set_title(_PLOTS[name])
        fig.tight_layout()
        fig.savefig(path, dpi=100, format='png')
    finally:
        plt.close(fig)


def _plot_latency(result: ReplayResult, path: Path, timeline: bool) -> None:
    """Total latency per camera: a histogram, or over bag time (processed frames only)."""
    fig, ax = _figure(4.5)
    drawn = False
    for cam in result.cameras:
        total = np.asarray(cam.stages.get('total_ms', []), dtype=np.float64)
        if timeline:
            n = min(total.size, len(cam.bag_time_s))
            label = f'{cam.camera} ({cam.processed} processed, {cam.dropped} dropped)'
            ax.plot(cam.bag_time_s[:n], total[:n], '.-', lw=0.8, ms=3, label=label)
        else:
            total = total[np.isfinite(total)]
            n, bins = total.size, int(np.clip(2 * np.sqrt(total.size), 5, 60))
            ax.hist(total, bins=bins, histtype='step', lw=1.5, label=f'{cam.camera} (n={n})')
        drawn = drawn or n > 0
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, 'no processed frames', ha='center', va='center', transform=ax.transAxes)
    ax.set_xlabel('bag time (s)' if timeline else 'total latency (ms)')
    ax.set_ylabel('total latency (ms)' if timeline else 'frames')
    ax.grid(alpha=0.3)
    _save(fig, path, 'latency_timeline.png' if timeline else 'latency_hist.png')


def _plot_class_iou(doc: dict[str, Any], palette: np.ndarray, path: Path) -> None:
    """Horizontal bars of per-class IoU in the class colours; absent classes are labelled."""
    from segnode.pipeline.imaging import palette_lut

    names, raw = list(doc['per_class_iou']), list(doc['per_class_iou'].values())
    values = [0.0 if v is None else v for v in raw]
    colours = palette_lut(palette)[: len(names)] / 255.0
    fig, ax = _figure(1.5 + 0.3 * len(names))
    ax.barh(range(len(names)), values, color=colours, edgecolor='black', lw=0.5)
    for i, value in enumerate(raw):
        text = 'absent' if value is None else f'{value:.3f}'
        ax.text(min(values[i], 0.85) + 0.01, i, text, va='center', fontsize=8)
    if doc['miou'] is not None:
        ax.axvline(doc['miou'], color='red', ls='--', lw=1, label=f'mIoU {doc["miou"]:.3f}')
        ax.legend(fontsize=8, loc='lower right')
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel('IoU')
    _save(fig, path, 'class_iou.png')


def _overlay_png(overlay: Overlay, palette: np.ndarray) -> bytes:
    """PNG of image | prediction over image | truth; ids past the palette are black."""
    import cv2

    from segnode.pipeline.imaging import colorize, palette_lut

    lut = palette_lut(palette)
    image = np.asarray(overlay.image, dtype=np.uint8)
    image = np.ascontiguousarray(np.dstack([image] * 3) if image.ndim == 2 else image[..., :3])
    height, width = image.shape[:2]

    def colours(mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask, dtype=np.uint8)
        if mask.shape != (height, width):
            mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
        return colorize(mask, lut)

    panels = [image, cv2.addWeighted(image, 0.5, colours(overlay.mask), 0.5, 0.0)]
    if overlay.truth is not None:
        panels.append(colours(overlay.truth))
    gap = np.full((height, 4, 3), 255, dtype=np.uint8)
    strip = np.concatenate([p for panel in panels for p in (gap, panel)][1:], axis=1)
    ok, data = cv2.imencode('.png', cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f'cannot encode the {overlay.camera} overlay as PNG')
    return bytes(np.asarray(data, dtype=np.uint8).tobytes())


REPORT_FILES = (
    'report.json',
    'latency_hist.png',
    'latency_timeline.png',
    'class_iou.png',
    'confusion.png',
    'report.md',
)


def write_report(result: ReplayResult, out_dir: Path) -> dict[str, Path]:
    """Write the report files into ``out_dir`` (created), each atomically.

    In order: ``report.json`` (``summarize``), ``latency_hist.png``, ``latency_timeline.png``,
    with ground truth ``class_iou.png`` and ``confusion.png``, ``overlays/NNN_<camera>.png``,
    and last ``report.md``, which links what was written. Once all of it is written, the files
    a previous report left in ``out_dir`` that this one did not write (its names above, older
    overlays) are removed, so a finished report never mixes two runs; other files are left
    alone, and a report that fails half-way leaves the previous one's files in place.

    Returns:
        Name relative to ``out_dir`` (e.g. ``'overlays/000_front.png'``) -> path.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = summarize(result)
    written: dict[str, Path] = {}

    def put(name: str, write: Callable[[Path], Any]) -> None:
        atomic_write(out_dir / name, write)
        written[name] = out_dir / name

    text = json.dumps(doc, indent=2, allow_nan=False) + '\n'
    put('report.json', lambda tmp: tmp.write_text(text, encoding='utf-8'))
    plots = importlib.util.find_spec('matplotlib') is not None
    if plots:
        put('latency_hist.png', lambda tmp: _plot_latency(result, tmp, timeline=False))
        put('latency_timeline.png', lambda tmp: _plot_latency(result, tmp, timeline=True))
        if doc['confusion_matrix'] is not None:
            put('class_iou.png', lambda tmp: _plot_class_iou(doc, result.palette, tmp))
            matrix, names = np.asarray(doc['confusion_matrix']), list(doc['per_class_iou'])
            put('confusion.png', lambda tmp: save_confusion_png(matrix, names, tmp))
    for i, overlay in enumerate(result.overlays):
        data = _overlay_png(overlay, result.palette)
        camera = re.sub(r'[^A-Za-z0-9_.-]+', '_', overlay.camera).strip('_.') or 'camera'
        put(f'overlays/{i:03d}_{camera}.png', lambda tmp: tmp.write_bytes(data))
    markdown = _markdown(doc, list(written), plots_skipped=not plots)
    put('report.md', lambda tmp: tmp.write_text(markdown, encoding='utf-8'))
    stale = [out_dir / name for name in REPORT_FILES if name not in written]
    stale += [
        p for p in (out_dir / 'overlays').glob('*.png') if f'overlays/{p.name}' not in written
    ]
    for path in stale:
        path.unlink(missing_ok=True)
    return written
