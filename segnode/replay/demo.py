"""``segnode demo``: record a synthetic drive into a bag and replay it like a vehicle would.

The drive is drawn in code (:func:`segnode.synthetic.synthetic_drive`: sky, buildings, trees,
road, pavement, an overtaking car, with CamVid labels), written as a rosbag2 bag with an image
and a label topic, and replayed in realtime mode through the node's own service
(:mod:`segnode.replay.replay`): frames that arrive while the model is busy are dropped exactly as
on a vehicle. The model is the bundled default checkpoint when the package ships one,
otherwise random weights, announced by a banner: their masks are meaningless, the timings,
drops and plumbing are real.
"""

from __future__ import annotations

from pathlib import Path
import shutil

from segnode.config import EngineConfig
from segnode.node.assemble import load_labelled_model
from segnode.node.config import LabelModelConfig, NodeConfig
from segnode.replay.bag_from_images import write_frames
from segnode.replay.bag_writer import BagWriter
from segnode.replay.options import ReplayOptions
from segnode.replay.replay import replay
from segnode.replay.report import headline, write_report
from segnode.synthetic import synthetic_drive

__all__ = ['run_demo', 'write_drive_bag']


def write_drive_bag(
    path: Path, *, frames: int, height: int, width: int, rate: float = 10.0
) -> Path:
    """A bag of the synthetic drive: ``/camera/image_raw`` rgb8 and ``/camera/labels`` mono8."""
    with BagWriter(path, 'mcap') as bag:
        write_frames(bag, synthetic_drive(frames, height, width), rate=rate)
    return path


def run_demo(
    *,
    frames: int = 30,
    size: tuple[int, int] = (360, 480),
    rate: float = 10.0,
    backend: str = 'eager',
    out_dir: str | Path = 'outputs/demo',
    progress: bool = True,
) -> int:
    """Write the drive bag, replay it in realtime, print the headline and the report path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bag = out / 'synthetic_drive'
    shutil.rmtree(bag, ignore_errors=True)  # the demo owns its output folder
    loaded = load_labelled_model(LabelModelConfig())
    if not loaded.trained:
        print('=' * 76)
        print('NOTE: no bundled checkpoint, so the demo uses RANDOM weights. Masks and mIoU')
        print('are meaningless; frame timing, drops and the data path are real.')
        print('=' * 76)
    h, w = size
    write_drive_bag(bag, frames=frames, height=h, width=w, rate=rate)
    print(f'bag: {bag} ({frames} frames {h}x{w} at {rate:g} Hz, with CamVid labels)')
    config = NodeConfig(engine=EngineConfig(backend=backend))
    result = replay(bag, config, ReplayOptions(rate='realtime', progress=progress), loaded=loaded)
    paths = write_report(result, out / 'report')
    print(f'model: {loaded.description}')
    print(f'engine: {result.engine}')
    print(headline(result))
    print(f'report: {out / "report" / "report.md"} ({len(paths)} files)')
    return 0
