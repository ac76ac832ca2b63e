"""Evaluation outputs: the JSON summary and a confusion-matrix PNG."""

from __future__ import annotations

from collections.abc import Sequence
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ['format_table', 'save_confusion_png', 'write_json']


def save_confusion_png(
    matrix: np.ndarray, names: Sequence[str], path: str | Path, title: str = ''
) -> Path:
    """Row-normalised confusion matrix (ground truth rows, predictions columns) as a PNG."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    norm = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    k = len(names)
    size = max(5.0, 0.45 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap='Blues', vmin=0.0, vmax=1.0)
    ax.set_xticks(range(k), list(names), rotation=90)
    ax.set_yticks(range(k), list(names))
    ax.set_xlabel('prediction')
    ax.set_ylabel('ground truth')
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if norm[i, j] >= 0.01:
                    colour = 'white' if norm[i, j] > 0.5 else 'black'
                    ax.text(
                        j,
                        i,
                        f'{norm[i, j]:.2f}',
                        ha='center',
                        va='center',
                        fontsize=6,
                        color=colour,
                    )
    ax.set_title(title or 'confusion matrix (row-normalised)')
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_json(data: dict[str, Any], path: str | Path) -> Path:
    """Write ``data`` as indented JSON (NaN written as null)."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(data), indent=2) + '\n')
    return path


def format_table(summary: dict[str, Any]) -> str:
    """Per-class IoU and mIoU as aligned text lines."""
    per_class = summary['per_class_iou']
    width = max(len(n) for n in per_class)
    lines = [
        f'{name:<{width}}  {"-" if v is None else f"{100 * v:6.2f}"}'
        for name, v in per_class.items()
    ]
    lines.append(f'{"mIoU":<{width}}  {100 * summary["miou"]:6.2f}')
    return '\n'.join(lines)
