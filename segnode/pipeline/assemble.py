"""Assemble the running pipeline from configuration: model, class table, segmenters, service.

The node's configure transition, ``segnode replay`` and ``segnode demo`` all start here, so a
params file means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segnode.config import EngineConfig
from segnode.data.labels import CAMVID, class_table, ClassTable
from segnode.engine.segmenter import Segmenter
from segnode.errors import CheckpointError, ConfigError
from segnode.model.mfaranet import build_mfaranet, MFARANet
from segnode.pipeline.config import LabelModelConfig, NodeConfig, RANDOM_CHECKPOINT
from segnode.pipeline.scheduler import Clock
from segnode.pipeline.service import Outputs, SegmentationService, SegmenterFactory

__all__ = [
    'DEFAULT_CHECKPOINT',
    'RANDOM_WEIGHTS',
    'LoadedModel',
    'build_service',
    'load_labelled_model',
    'segmenter_factory',
]

# The bundled default model (package data: segnode/weights/, docs/model-card.md).
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / 'weights' / 'camvid_mfaranet.pt'
RANDOM_WEIGHTS = 'RANDOM weights (asked for): timings are real, masks are noise'


@dataclass(frozen=True)
class LoadedModel:
    """An eval-mode model with what its classes are.

    Attributes:
        model: The unfolded model as loaded (engines fold it).
        table: Class names and palette.
        sha256: Hash of the checkpoint file ('' for random weights); keys engine artifacts.
        description: Where the weights came from, for logs and reports.
        trained: False for random weights.
        recipe: The training recipe its checkpoint records (empty for random weights).
    """

    model: MFARANet
    table: ClassTable
    sha256: str
    description: str
    trained: bool
    recipe: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def palette(self) -> np.ndarray:
        """(K, 3) uint8 rgb colours."""
        return np.asarray(self.table.palette, np.uint8).reshape(-1, 3)


def load_labelled_model(config: LabelModelConfig | None = None) -> LoadedModel:
    """The checkpoint ``config.path``, or the bundled default when it is ``''``.

    Random weights only when asked for by name (``model.path: random``, ``--checkpoint
    random``): for timing without a model, never as a silent fallback.

    Raises:
        CheckpointError: The checkpoint (the bundled one included) cannot be read or has
            another class count.
        ConfigError: Class names or palette do not match the model's class count.
    """
    from segnode.files import file_sha256
    from segnode.model.checkpoint import build_from_checkpoint

    config = config or LabelModelConfig()
    path = Path(config.path) if config.path else DEFAULT_CHECKPOINT
    if not config.path and not path.is_file():
        raise CheckpointError(
            f'the bundled model {path} is missing (an incomplete install?): reinstall segnode, '
            f'give a checkpoint, or ask for random weights with model.path: {RANDOM_CHECKPOINT}'
        )
    if config.path != RANDOM_CHECKPOINT:
        model, meta = build_from_checkpoint(path, num_classes=config.num_classes or None)
        classes = meta.get('classes', {})
        names = tuple(classes.get('names', ()))
        palette = tuple((int(r), int(g), int(b)) for r, g, b in classes.get('palette', ()))
        if len(palette) != len(names):
            palette = class_table(len(names)).palette
        table = ClassTable(str(meta.get('dataset', '')), names, palette)
        sha, what, trained = file_sha256(path), f'checkpoint {path}', True
        recipe = dict(meta.get('recipe') or {})
    else:
        k = config.num_classes or CAMVID.num_classes
        with torch.random.fork_rng(devices=[]):  # reproducible, without touching the caller's RNG
            torch.manual_seed(0)
            model = build_mfaranet(num_classes=k).eval()
        table = CAMVID if k == CAMVID.num_classes else class_table(k)
        sha, what, trained, recipe = '', RANDOM_WEIGHTS, False, {}
    table = _override_labels(table, config, model.config.num_classes)
    return LoadedModel(model, table, sha, what, trained, recipe)


def _override_labels(table: ClassTable, config: LabelModelConfig, k: int) -> ClassTable:
    names, palette = table.names, table.palette
    if config.class_names:
        names = tuple(config.class_names)
    if config.palette:
        flat = config.palette
        palette = tuple((flat[i], flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3))
    if len(names) != k or len(palette) != k:
        raise ConfigError(
            f'the model has {k} classes but model.class_names has {len(names)} names and '
            f'model.palette {len(palette)} colours'
        )
    return ClassTable(table.dataset, names, palette)


def segmenter_factory(
    loaded: LoadedModel, engine: EngineConfig
) -> Callable[[int, int, int], Segmenter]:
    """``(batch, height, width) -> Segmenter`` building (or loading) one engine per shape."""

    def build(batch: int, height: int, width: int) -> Segmenter:
        return Segmenter.build(
            loaded.model,
            engine,
            height=height,
            width=width,
            batch=batch,
            checkpoint_sha256=loaded.sha256,
        )

    return build


def build_service(
    config: NodeConfig,
    outputs: Outputs,
    *,
    clock: Clock | None = None,
    loaded: LoadedModel | None = None,
    segmenter: SegmenterFactory | None = None,
    background_builds: bool = False,
) -> tuple[SegmentationService, LoadedModel]:
    """The service a :class:`NodeConfig` describes, with the model it loaded.

    ``segmenter`` replaces the engines ``config.engine`` describes (tests, simulations);
    ``background_builds`` builds the engine of a new frame shape off the worker thread (the
    node; replay builds before it starts the clock).
    """
    loaded = loaded or load_labelled_model(config.model)
    service = SegmentationService(
        config.camera_names,
        segmenter or segmenter_factory(loaded, config.engine),
        outputs,
        palette=loaded.palette,
        clock=clock,
        max_age_ms=config.max_age_ms,
        batch=config.batch,
        max_side=config.max_frame_side,
        max_engines=config.max_engines,
        background_builds=background_builds,
    )
    service.enabled = config.enable
    return service, loaded
