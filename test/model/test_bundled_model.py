"""The bundled default model (segnode/weights/camvid_mfaranet.pt, docs/model-card.md)."""

from __future__ import annotations

from pathlib import Path
import re

import pytest
import torch

from segnode.data.labels import CAMVID
from segnode.model.checkpoint import read_checkpoint, state_sha256
from segnode.model.checkpoint_meta import current_provenance
from segnode.pipeline.assemble import DEFAULT_CHECKPOINT, load_labelled_model
from segnode.train.config import EvalConfig
from segnode.train.evaluate import evaluate_checkpoint

CARD = Path(__file__).resolve().parents[2] / 'docs' / 'model-card.md'


def test_it_loads_with_weights_only_and_its_weights_match_the_recorded_sha256() -> None:
    raw = torch.load(DEFAULT_CHECKPOINT, weights_only=True)  # no pickled code in the file
    state, meta = raw['state_dict'], raw['meta']
    assert meta['weights_sha256'] == state_sha256(state)
    read = read_checkpoint(DEFAULT_CHECKPOINT)[1]  # the loader checks the hash too
    assert read == {**meta, 'equalizers': current_provenance(meta['equalizers'])}
    assert meta['dtype'] == 'float16'
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    assert not any(k.startswith('boundary_heads.') for k in state)  # training-only
    assert DEFAULT_CHECKPOINT.stat().st_size < 30 * 2**20


def test_its_metadata_names_the_classes_palette_and_the_recipe_as_run() -> None:
    meta = read_checkpoint(DEFAULT_CHECKPOINT)[1]
    assert meta['dataset'] == 'camvid'
    assert tuple(meta['classes']['names']) == CAMVID.names
    assert [tuple(c) for c in meta['classes']['palette']] == list(CAMVID.palette)
    assert meta['equalizers']['state'] == 'measured' and 'measured_at' in meta['equalizers']
    recipe = meta['recipe']
    assert recipe['dataset'] == 'camvid' and recipe['iterations'] == recipe['max_iters'] > 0
    # the standard protocol (docs/model-card.md): every labelled frame, the final iterate, so
    # no split was held out to choose it and the file carries no validation score
    assert recipe['train_split'] == 'trainval' and not recipe['val_split']
    assert 'val_miou' not in meta['metrics']
    assert meta['metrics']['iteration'] == recipe['iterations']


def test_it_is_the_default_everywhere() -> None:
    loaded = load_labelled_model()
    assert loaded.trained and loaded.table.names == CAMVID.names
    assert str(DEFAULT_CHECKPOINT) in loaded.description


def _card_miou(protocol: str) -> float:
    found = re.search(rf'\| {protocol} \| \*\*([0-9.]+)\*\*', CARD.read_text())
    assert found, f'docs/model-card.md has no "| {protocol} | **mIoU** |" row'
    return float(found.group(1))


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize(('protocol', 'flip'), [('single scale', False), ('flip', True)])
def test_its_camvid_val_miou_is_the_one_in_the_model_card(
    camvid_root: Path, protocol: str, flip: bool
) -> None:
    path, root = str(DEFAULT_CHECKPOINT), str(camvid_root)
    cfg = EvalConfig(path, 'camvid', root, 'val', flip=flip, device='cpu')
    summary, _ = evaluate_checkpoint(cfg, progress=False)
    assert summary['images'] == 101
    assert summary['miou'] == pytest.approx(_card_miou(protocol), abs=0.005)
