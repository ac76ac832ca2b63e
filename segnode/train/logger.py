"""Metrics logging on rank 0: JSON lines, CSV per kind, TensorBoard when installed."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

__all__ = ['MetricsLog']

_LOG = logging.getLogger('segnode.train')


class MetricsLog:
    """Appends metrics to ``metrics.jsonl`` and ``<kind>_metrics.csv`` in ``out_dir``.

    Args:
        out_dir: Run folder.
        enabled: False on every rank but 0 (nothing is written).
        tensorboard: Also write TensorBoard events (skipped, with a notice, when the
            ``tensorboard`` package is not installed).
    """

    def __init__(self, out_dir: Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.out_dir = out_dir
        self.enabled = enabled
        self.writer: Any = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                _LOG.info('tensorboard is not installed: writing CSV and JSON metrics only')
            else:
                self.writer = SummaryWriter(str(out_dir / 'tensorboard'))

    def write(self, kind: str, step: int, values: dict[str, Any]) -> None:
        """Record ``values`` (numbers; per-class dicts go to JSON only) at ``step``."""
        if not self.enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with (self.out_dir / 'metrics.jsonl').open('a') as f:
            f.write(json.dumps({'kind': kind, 'step': step, **values}) + '\n')
        scalars = {k: v for k, v in values.items() if isinstance(v, (int, float))}
        path = self.out_dir / f'{kind}_metrics.csv'
        new = not path.exists()
        with path.open('a', newline='') as f:
            writer = csv.DictWriter(f, ['step', *scalars], extrasaction='ignore')
            if new:
                writer.writeheader()
            writer.writerow({'step': step, **scalars})
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(f'{kind}/{key}', value, step)

    def close(self) -> None:
        """Flush TensorBoard events."""
        if self.writer is not None:
            self.writer.close()
