"""Subcommands of bag evaluation: replay, bag-from-images and demo (heavy imports in handlers)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
import logging
from pathlib import Path
from typing import Any

import segnode.cli.arguments as arguments
from segnode.config import BACKEND_CHOICES
from segnode.replay.options import BagFromImagesOptions, DemoOptions, RATES, ReplayOptions

__all__ = ['add_commands']

Handler = Callable[[argparse.Namespace], int]


def _cmd_bag_from_images(args: argparse.Namespace) -> int:
    from segnode.replay.bag_from_images import bag_from_images, id_ranges

    arguments.output_dir(args.out, '--out', new_bag=True)

    summary = bag_from_images(
        args.source,
        args.out,
        labels=args.labels,
        rate=args.rate,
        compressed=args.compressed,
        topic=args.topic,
        label_topic=args.label_topic,
        frame_id=args.frame_id,
        storage=args.storage,
    )
    print(
        f'wrote {summary.frames} frames to {summary.path} ({summary.storage}, '
        f'topics {", ".join(summary.topics)})'
    )
    if summary.label_ids:
        print(
            f'label ids found: {id_ranges(summary.label_ids)} (replay scores ids below the '
            "model's class count, 11 for CamVid; 255 and any other id count as ignore)"
        )
    return 0


def _add_bag_from_images(sub: Any, handlers: dict[str, Handler]) -> None:
    p = sub.add_parser(
        'bag-from-images',
        help='write a rosbag2 bag from a folder of images or a video (test input for replay)',
        description='Write the frames of an image folder (sorted by name) or of a video as '
        'rgb8 sensor_msgs/Image (or jpeg CompressedImage) at a fixed rate, optionally with '
        'label PNGs of the same names as mono8 images on a second topic with the same stamps.',
    )
    p.add_argument('source', help='folder of png/jpg/jpeg/bmp images, or a video file')
    p.add_argument('--out', required=True, help='bag folder to create (must not exist)')
    p.add_argument('--labels', help='folder of single-channel label PNGs named like the images')
    bag = BagFromImagesOptions
    p.add_argument(
        '--rate',
        type=arguments.rate,
        default=bag.rate,
        help=f'frames per second (default {bag.rate:g})',
    )
    p.add_argument(
        '--compressed',
        action='store_true',
        default=bag.compressed,
        help='write jpeg CompressedImage on <topic>/compressed instead of rgb8 Image',
    )
    p.add_argument('--topic', default=bag.topic, help='image topic')
    p.add_argument('--label-topic', default=bag.label_topic, help='label topic')
    p.add_argument(
        '--frame-id', default=bag.frame_id, help=f'header frame_id (default {bag.frame_id})'
    )
    p.add_argument('--storage', choices=('mcap', 'sqlite3'), default=bag.storage, help='storage')
    handlers['bag-from-images'] = _cmd_bag_from_images


def _replay_config(args: argparse.Namespace, base: Any) -> Any:
    """The replay's NodeConfig: ``base`` (the params file's) with the command line's choices."""
    from segnode.config import config_to_dict, EngineConfig
    from segnode.data.labels import class_table
    from segnode.pipeline.config import LabelModelConfig, NodeConfig

    engine = config_to_dict(base.engine)
    for key in ('backend', 'device', 'precision'):
        if getattr(args, key):
            engine[key] = getattr(args, key)
    model = config_to_dict(base.model)
    if args.checkpoint:
        model['path'] = args.checkpoint
    if args.classes:
        table = class_table(args.classes)
        model['class_names'] = table.names
        model['palette'] = tuple(v for rgb in table.palette for v in rgb)
    return NodeConfig(
        camera_names=base.camera_names,
        engine=EngineConfig(**engine),
        model=LabelModelConfig(**model),
    )


def _param_topics(base: Any, given: dict[str, Any]) -> tuple[str, ...]:
    """The image topics the params file's ``cameras.<name>.topic`` entries subscribe, if any.

    A relative topic resolves in the root namespace, as a node launched without one does.
    """
    if not any(k.startswith('cameras.') and k.endswith('.topic') for k in given):
        return ()
    return tuple('/' + cam.subscribed_topic.lstrip('/') for cam in base.cameras)


def bag_name(bag: str) -> str:
    """The bag's name for its report folder: a folder's, or that of a metadata.yaml's folder."""
    path = Path(bag).resolve()
    if path.name == 'metadata.yaml' or (path.suffix in ('.db3', '.mcap') and path.is_file()):
        return path.parent.name if path.name == 'metadata.yaml' else path.stem
    return path.name


def _cmd_replay(args: argparse.Namespace) -> int:
    from segnode.files import ctrl_c_after, write_json
    from segnode.pipeline.config import load_node_params, NodeConfig
    from segnode.replay.options import ReplayOptions
    from segnode.replay.replay import replay
    from segnode.replay.report import headline, summarize, write_report

    arguments.output_dir(args.out, '--out', new_bag=True)
    arguments.output_file(args.json, '--json')
    arguments.output_dir(args.report, '--report')
    base, given = load_node_params(args.params) if args.params else (NodeConfig(), {})
    topics_from_params = () if args.image_topic else _param_topics(base, given)
    if topics_from_params:
        logging.getLogger('segnode').info(
            'cameras from %s: %s (--image-topic overrides)',
            args.params,
            ', '.join(topics_from_params),
        )
    options = ReplayOptions(
        rate=args.rate,
        speed=args.speed,
        image_topics=tuple(args.image_topic or ()) or topics_from_params,
        label_topics=tuple(args.label_topic or ()),
        labels_dir=args.labels or '',
        label_match=args.label_match,
        out_bag=args.out or '',
        out_storage=args.out_storage,
        color=args.color,
        confidence=args.confidence,
        max_frames=args.max_frames,
        progress=not args.no_progress,
    )
    result = replay(args.bag, _replay_config(args, base), options)
    report_dir = Path(args.report or Path('outputs') / 'replay' / bag_name(args.bag))
    with ctrl_c_after('the report'):
        paths = write_report(result, report_dir)
        if args.json:
            write_json(summarize(result), args.json)
        print(headline(result))
        print(f'engine: {result.engine}; weights: {result.model}')
        for note in result.notes:
            print(f'note: {note}')
        print(f'report: {report_dir / "report.md"} ({len(paths)} files)')
    if args.json:
        print(f'json: {args.json}')
    if args.out:
        print(f'output bag: {args.out}')
    return 130 if result.interrupted else 0


def _add_replay(sub: Any, handlers: dict[str, Handler]) -> None:
    p = sub.add_parser(
        'replay',
        help='replay a rosbag2 bag through the node pipeline: latency, drops and accuracy',
        description='Segment the image topics of a bag (sqlite3 or mcap) with the same service '
        'the node runs. --rate max processes every frame as fast as possible; --rate realtime '
        'feeds frames on the bag timeline and drops the ones a busy model would drop on the '
        'vehicle. Ground truth from a mono8 label topic (matched by stamp) or a PNG folder.',
    )
    p.add_argument('bag', help='bag folder, its metadata.yaml, or a .db3/.mcap file')
    p.add_argument('--image-topic', action='append', help='image topic (repeatable; default all)')
    p.add_argument('--label-topic', action='append', help='ground-truth topic (repeatable)')
    p.add_argument('--labels', help='folder of label PNGs (instead of a label topic)')
    p.add_argument(
        '--label-match', choices=('stamp', 'order'), default=ReplayOptions.label_match,
        help='match label PNGs by <stamp_ns>.png (default) or by order',
    )  # fmt: skip
    p.add_argument('--rate', choices=RATES, default=ReplayOptions.rate, help='default %(default)s')
    p.add_argument(
        '--speed', type=arguments.rate, default=ReplayOptions.speed, help='realtime speed factor'
    )
    p.add_argument(
        '--checkpoint',
        help='segnode checkpoint (default: the bundled CamVid model; random: random weights)',
    )
    p.add_argument('--params', help='node params YAML for the engine and model settings')
    p.add_argument('--backend', help='engine backend (auto, tensorrt, torch-compile, ...)')
    p.add_argument('--device', help='cpu, cuda or cuda:N')
    p.add_argument(
        '--precision', help='auto (the fastest the gate accepts, measured), fp32, fp16, bf16, int8'
    )
    p.add_argument('--classes', choices=('camvid', 'cityscapes'), help='class names table')
    p.add_argument('--out', help='output bag with images, labels and metrics (must not exist)')
    p.add_argument('--out-storage', choices=('mcap', 'sqlite3'), default=ReplayOptions.out_storage)
    p.add_argument('--color', action='store_true', help='also write colour masks to --out')
    p.add_argument(
        '--confidence',
        action='store_true',
        help='also write confidence images (mono8, 255 x the winning softmax probability) '
        'to --out',
    )
    p.add_argument('--json', help='write the JSON report here too')
    p.add_argument('--report', help='report folder (default outputs/replay/<bag name>)')
    p.add_argument(
        '--max-frames',
        type=arguments.non_negative,
        default=ReplayOptions.max_frames,
        help='stop after N frames (0: all)',
    )
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    handlers['replay'] = _cmd_replay


def _cmd_demo(args: argparse.Namespace) -> int:
    from segnode.files import no_empty_folders_left
    from segnode.replay.demo import run_demo

    arguments.output_dir(args.out, '--out')
    h, w = args.size
    with no_empty_folders_left(args.out):
        return run_demo(
            frames=args.frames,
            size=(h, w),
            rate=args.rate,
            backend=args.backend,
            out_dir=args.out,
            images=args.images,
            labels=args.labels,
        )


def _add_demo(sub: Any, handlers: dict[str, Handler]) -> None:
    p = sub.add_parser(
        'demo',
        help='record a synthetic drive into a bag and replay it in realtime (default model)',
    )
    p.add_argument(
        '--size',
        type=arguments.side,
        nargs=2,
        default=DemoOptions.size,
        metavar=('H', 'W'),
        help='frame size of the synthetic drive (default: {} {}, CamVid)'.format(
            *DemoOptions.size
        ),
    )
    p.add_argument(
        '--images',
        metavar='DIR',
        help='drive through these camera images instead of the synthetic street (default: '
        'CamVid val when SEGNODE_CAMVID_ROOT is set)',
    )
    p.add_argument('--labels', metavar='DIR', help='label PNGs named like the images')
    p.add_argument(
        '--frames',
        type=arguments.count,
        default=DemoOptions.frames,
        help=f'frames in the drive (default: {DemoOptions.frames})',
    )
    p.add_argument(
        '--rate',
        type=arguments.rate,
        default=DemoOptions.rate,
        help=f'camera rate in Hz (default: {DemoOptions.rate:g})',
    )
    p.add_argument(
        '--backend',
        default=DemoOptions.backend,
        choices=BACKEND_CHOICES,
        help=f'engine backend (default: {DemoOptions.backend}, which starts at once)',
    )
    p.add_argument('--out', default=DemoOptions.out_dir, help='folder for the bag and the report')
    handlers['demo'] = _cmd_demo


def add_commands(sub: Any, handlers: dict[str, Handler]) -> None:
    """Register ``replay``, ``bag-from-images`` and ``demo`` on the ``segnode`` parser."""
    _add_replay(sub, handlers)
    _add_bag_from_images(sub, handlers)
    _add_demo(sub, handlers)
