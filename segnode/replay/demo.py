"""``segnode demo``: record a drive into a bag and replay it like a vehicle would.

The drive is a folder of camera images (``--images DIR``, with ``--labels DIR`` for ground
truth; CamVid's val split when ``SEGNODE_CAMVID_ROOT`` is set and no folder is given), or else
a synthetic street drawn in code (:func:`segnode.synthetic.synthetic_drive`: sky, buildings,
trees, road, pavement, an overtaking car, with CamVid labels). It is written as a rosbag2 bag
with an image and a label topic and replayed in realtime mode through the node's own service
(:mod:`segnode.replay.replay`): frames that arrive while the model is busy are dropped exactly
as on a vehicle. The model is the bundled default checkpoint (docs/model-card.md). A synthetic
drive is not CamVid: its mIoU says how the model does on cartoon streets, not on real ones, and
the demo says so; so it does when frames of the drive are in the training split its checkpoint
records (read under ``SEGNODE_CAMVID_ROOT``: CamVid val for a model trained on ``trainval``).
"""

from __future__ import annotations

import os
from pathlib import Path
import shutil

from segnode.config import EngineConfig
from segnode.data.sources import seen_in_training
from segnode.errors import ReplayError
from segnode.files import ctrl_c_after
from segnode.pipeline.assemble import load_labelled_model
from segnode.pipeline.config import LabelModelConfig, NodeConfig
from segnode.replay.bag_from_images import bag_from_images, write_frames
from segnode.replay.bag_writer import BagWriter
from segnode.replay.options import DemoOptions, ReplayOptions
from segnode.replay.replay import replay
from segnode.replay.report import headline, write_report
from segnode.synthetic import synthetic_drive

__all__ = ['camvid_val', 'run_demo', 'write_drive_bag']


def write_drive_bag(
    path: Path, *, frames: int, height: int, width: int, rate: float = 10.0
) -> Path:
    """A bag of the synthetic drive: ``/camera/image_raw`` rgb8 and ``/camera/labels`` mono8."""
    with BagWriter(path, 'mcap') as bag:
        write_frames(bag, synthetic_drive(frames, height, width), rate=rate)
    return path


def camvid_val() -> tuple[Path, Path] | None:
    """The CamVid val images and labels under ``SEGNODE_CAMVID_ROOT``, if set and present."""
    root = os.environ.get('SEGNODE_CAMVID_ROOT', '')
    if not root:
        return None
    images, labels = Path(root) / 'val', Path(root) / 'valannot'
    return (images, labels) if images.is_dir() and labels.is_dir() else None


def run_demo(
    *,
    frames: int = DemoOptions.frames,
    size: tuple[int, int] = DemoOptions.size,
    rate: float = DemoOptions.rate,
    backend: str = DemoOptions.backend,
    out_dir: str | Path = DemoOptions.out_dir,
    progress: bool = True,
    images: str | Path | None = None,
    labels: str | Path | None = None,
) -> int:
    """Write the drive bag, replay it in realtime, print the headline and the report path.

    Args:
        frames: Frames in the drive (the first ``frames`` images of a folder).
        size: Size of a synthetic drive (images keep their own size).
        rate: Camera rate of the bag's stamps.
        backend: Engine backend.
        out_dir: Folder of the bag and the report (the demo owns it).
        progress: Show progress bars.
        images: Folder of camera images instead of the synthetic drive.
        labels: Folder of label PNGs named like the images (ground truth).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if images is None and labels is None and (found := camvid_val()):
        images, labels = found
    if labels is not None and images is None:
        raise ReplayError('--labels needs --images (the label PNGs are named like the images)')
    bag = out / ('drive' if images else 'synthetic_drive')
    for stale in ('drive', 'synthetic_drive', 'report'):  # the demo owns its output folder
        shutil.rmtree(out / stale, ignore_errors=True)
    loaded = load_labelled_model(LabelModelConfig())
    h, w = size
    if images:
        summary = bag_from_images(
            images, bag, labels=labels, rate=rate, limit=frames, progress=progress
        )
        truth = f'labels from {labels}' if labels else 'no labels'
        print(f'bag: {bag} ({summary.frames} frames from {images} at {rate:g} Hz, {truth})')
        root = os.environ.get('SEGNODE_CAMVID_ROOT', '')
        if seen := seen_in_training(loaded.recipe, root, summary.files):
            split = f'{loaded.recipe["dataset"]} {loaded.recipe["train_split"]}'
            print(
                f"note: {seen} of these {summary.frames} frames are in the model's training "
                f'split ({split}): their mIoU says how it fits them, not how it does on streets '
                'it never saw (docs/model-card.md has that figure)'
            )
    else:
        write_drive_bag(bag, frames=frames, height=h, width=w, rate=rate)
        print(
            f'bag: {bag} ({frames} synthetic frames {h}x{w} at {rate:g} Hz, with CamVid labels; '
            'a cartoon street, not CamVid: its mIoU is no measure of the model on real '
            'streets; try --images DIR --labels DIR)'
        )
    config = NodeConfig(engine=EngineConfig(backend=backend))
    result = replay(bag, config, ReplayOptions(rate='realtime', progress=progress), loaded=loaded)
    with ctrl_c_after('the report'):
        paths = write_report(result, out / 'report')
        print(f'model: {loaded.description}')
        print(f'engine: {result.engine}')
        print(headline(result))
        print(f'report: {out / "report" / "report.md"} ({len(paths)} files)')
    return 0
