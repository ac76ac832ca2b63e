"""Replay a recorded drive through the node's own service and measure what it would have done.

One pipeline, no second implementation: frames from the bag go through
:class:`~segnode.pipeline.service.SegmentationService` exactly as the node's subscriptions feed it.

- ``max`` rate: every frame, one after another, as fast as the engine goes (quality and
  throughput; nothing is dropped).
- ``realtime`` rate: frames arrive on the bag's own log-time timeline scaled by ``speed``
  (:func:`~segnode.replay.timeline.run_timeline`); frames that arrive while the model is busy
  replace each other in the latest-frame slot and are dropped, as on the vehicle. Accuracy is also
  reported over every frame, a dropped one scored with the newest mask published before it
  (what a consumer would have used).

Ground truth comes from a mono8 label topic in the bag (matched by header stamp) or from a
folder of label PNGs (matched by stamp in the file name, or by order).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
import itertools
from pathlib import Path
import time
from typing import Any

import numpy as np
from tqdm import tqdm

from segnode.engine.segmenter import describe_engines
from segnode.errors import clip, ReplayError
from segnode.metrics import confusion_matrix, unknown_label_pixels
from segnode.pipeline import imaging
from segnode.pipeline.assemble import build_service, load_labelled_model, LoadedModel
from segnode.pipeline.config import MAX_CAMERAS, NodeConfig
from segnode.pipeline.service import FrameResult, Outputs, SegmenterFactory
from segnode.replay.bag_writer import BagWriter, make_diagnostics, make_image
from segnode.replay.bags import BagReader, open_bag
from segnode.replay.camera_names import camera_names
from segnode.replay.options import ReplayOptions
from segnode.replay.results import CameraResult, Overlay, ReplayResult, STAGES
from segnode.replay.timeline import Arrival, ReplayClock, run_timeline
from segnode.replay.truth import is_label_topic, load_truth, segnode_outputs

# Realtime replay waits at most this long (bag time) between two frames; a longer gap in the
# log time is cut to it, with a note.
MAX_GAP_NS = 2_000_000_000
# Frames warm-up tries per camera to find one that decodes (bad ones count when replayed).
WARM_UP_TRIES = 16

__all__ = ['replay']


def replay(
    bag_path: str | Path,
    config: NodeConfig,
    options: ReplayOptions | None = None,
    *,
    loaded: LoadedModel | None = None,
    clock: ReplayClock | None = None,
    segmenter: SegmenterFactory | None = None,
) -> ReplayResult:
    """Replay ``bag_path`` through the service ``config`` describes.

    Args:
        bag_path: Bag folder, its metadata.yaml, or a storage file.
        config: Engine and model (camera names come from the bag).
        options: Rate, topics, ground truth, outputs.
        loaded: An already loaded model (otherwise ``config.model`` is loaded).
        clock: Time source (a real-time :class:`ReplayClock` by default; tests simulate).
        segmenter: Segmenter factory overriding the engine ``config`` describes (tests).

    Returns:
        What was measured; ``interrupted`` is set when Ctrl-C stopped it early.

    Raises:
        BagReadError: The bag cannot be read or has no image topic.
        ReplayError: Labels or options are unusable.
        BagWriteError: The output bag cannot be written (nothing is left behind).
    """
    opts = options or ReplayOptions()
    loaded = loaded or load_labelled_model(config.model)
    with ExitStack() as stack:
        bag = stack.enter_context(open_bag(bag_path))
        run = _Run(bag, config, opts, loaded, clock, segmenter)
        if opts.out_bag:
            run.writer = stack.enter_context(BagWriter(opts.out_bag, opts.out_storage))
        try:
            run.run()
        except KeyboardInterrupt:
            run.result.interrupted = True
            if run.writer is not None and run.writer.messages:
                run.writer.finish()  # a valid bag of what ran
            elif run.writer is not None:
                run.writer.discard()
                run.result.notes.append(f'stopped before any frame: {opts.out_bag} not written')
        return run.result


def _camera_topics(
    bag: BagReader, opts: ReplayOptions, own: set[str]
) -> tuple[list[Any], list[str]]:
    """The image topics replayed as cameras, and a note for each empty one skipped.

    Without ``--image-topic``: every image topic that is neither segnode's output nor a label
    topic (unless label-like topics are all there is).

    Raises:
        ReplayError: A requested topic, or every topic, has no messages.
    """
    requested = opts.image_topics or None
    topics = bag.image_topics(requested)
    if not requested:
        topics = [t for t in topics if t.topic not in own]
        topics = [t for t in topics if not is_label_topic(t.topic)] or topics
    empty = [t.topic for t in topics if t.count == 0]
    if empty and (requested or len(empty) == len(topics)):
        raise ReplayError(
            f'image topic {clip(empty[0])} has no messages in {bag.info.path}: nothing to replay'
        )
    skipped = [f'image topic {clip(t)} has no messages: skipped' for t in empty]
    topics = [t for t in topics if t.count]
    if len(topics) > MAX_CAMERAS:
        raise ReplayError(
            f'{bag.info.path} has {len(topics)} image topics, at most {MAX_CAMERAS} cameras are '
            'replayed at once; choose them with --image-topic'
        )
    return topics, skipped


def _label_topics(
    bag: BagReader, opts: ReplayOptions, cams: dict[str, str], own: set[str]
) -> list[str]:
    """``--label-topic``, or every label-like image topic that is not a camera or ours.

    Raises:
        ReplayError: A label topic is not in the bag.
    """
    label_topics = list(opts.label_topics) or [
        t.topic
        for t in bag.image_topics()
        if is_label_topic(t.topic) and t.topic not in cams and t.topic not in own
    ]
    missing = sorted(set(label_topics) - set(bag.info.topics))
    if missing:
        raise ReplayError(f'label topic {clip(missing[0])} is not in the bag')
    return label_topics


class _Run:
    """State of one replay: the service, its outputs, the scores and the output bag."""

    def __init__(
        self,
        bag: BagReader,
        config: NodeConfig,
        opts: ReplayOptions,
        loaded: LoadedModel,
        clock: ReplayClock | None,
        segmenter: SegmenterFactory | None,
    ) -> None:
        self.bag, self.opts, self.loaded = bag, opts, loaded
        own = segnode_outputs({t.topic: t.msgtype for t in bag.info.topics.values()})
        topics, skipped = _camera_topics(bag, opts, own)
        self.cams = camera_names([t.topic for t in topics])
        self.truth = load_truth(bag, self.cams, opts, _label_topics(bag, opts, self.cams, own))
        self.result = self._new_result(notes=[
            *bag.info.notes,
            *skipped,
            *(f'{clip(t)} is segnode output: neither a camera nor ground truth'
              for t in sorted(own)),
        ])  # fmt: skip
        self.by_cam = {c.camera: c for c in self.result.cameras}
        self.total = sum(t.count for t in topics)
        if opts.max_frames:
            self.total = min(self.total, opts.max_frames)
        self.overlay_every = max(1, self.total // max(opts.overlays, 1))
        self.last_mask: dict[str, np.ndarray] = {}
        self.writer: BagWriter | None = None
        self.clock = clock or ReplayClock()
        self.clock.speed = self.result.speed
        # --confidence builds the engine with the confidence output (docs/engine.md)
        engine = replace(config.engine, confidence=config.engine.confidence or opts.confidence)
        node_config = NodeConfig(
            camera_names=tuple(self.cams.values()), engine=engine, batch=False
        )
        outputs = Outputs(result=self._on_result, dropped=self._on_dropped, bad_frame=self._on_bad)
        self.service, _ = build_service(
            node_config, outputs, clock=self.clock, loaded=loaded, segmenter=segmenter
        )
        self.first_ns = 0
        self.progress: Any = None
        self.error: ReplayError | None = None
        self.first_bad: dict[str, str] = {}
        self.unknown_labels = 0  # ground-truth pixels with ids no class has

    def _new_result(self, notes: list[str]) -> ReplayResult:
        opts, k = self.opts, self.loaded.table.num_classes
        return ReplayResult(
            bag=str(self.bag.info.path),
            mode=opts.rate,
            speed=opts.speed if opts.rate == 'realtime' else 1.0,
            engine='',
            model=self.loaded.description,
            class_names=self.loaded.table.names,
            palette=self.loaded.palette,
            cameras=[CameraResult(cam, topic) for topic, cam in self.cams.items()],
            confusion=np.zeros((k, k), np.int64) if self.truth else None,
            consumer_confusion=(
                np.zeros((k, k), np.int64) if self.truth and opts.rate == 'realtime' else None
            ),
            notes=notes,
            truth={
                topic: self.truth.sources[cam]
                for topic, cam in self.cams.items()
                if cam in self.truth.sources
            },
        )

    def warm_up(self) -> None:
        """Build each camera's engine on its first good frame, so no timed frame pays for it.

        Frames go through the service's own decode (size checks first); a bad one is skipped
        here and counted when it is replayed. Only the first ``WARM_UP_TRIES`` are tried.
        """
        for topic in self.cams:
            for message in itertools.islice(self.bag.messages([topic]), WARM_UP_TRIES):
                try:
                    frame, _ = self.service.decode(message.msg)
                except Exception:  # noqa: BLE001 - reported as a bad frame when it is replayed
                    continue
                self.service.prepare(frame.shape[0], frame.shape[1])
                break

    def run(self) -> None:
        opts = self.opts
        self.warm_up()
        start = time.perf_counter()
        with tqdm(
            total=self.total, unit='frame', disable=not opts.progress, dynamic_ncols=True
        ) as self.progress:
            try:
                if opts.rate == 'max':
                    for arrival in self._frames():
                        self.clock.anchor(arrival.t_ns)
                        self.service.submit(arrival.camera, arrival.msg)
                        self.service.process_once()
                        if self.error:
                            break
                else:
                    run_timeline(
                        self.service,
                        self._timeline(),
                        wait_until=self.clock.sleep_until,
                        stop=lambda: self.error is not None,
                    )
            finally:
                self.result.wall_s = time.perf_counter() - start
                self.result.engine = describe_engines(self.service.segmenters())
                for name, stats in self.service.stats().items():  # the service's own counts
                    counts = self.by_cam[name]
                    counts.frames, counts.processed = stats.received, stats.processed
                    counts.dropped, counts.bad = stats.dropped, stats.bad
                if self.unknown_labels:
                    self.result.notes.append(
                        f'{self.unknown_labels} ground-truth pixels hold label ids outside '
                        f'0..{self.loaded.table.num_classes - 1} (and not 255): scored as ignore'
                    )
        if self.error:
            raise self.error
        for cam in self.result.cameras:
            if cam.bad and not cam.processed and not self.result.interrupted:
                raise ReplayError(
                    f'no frame of camera {cam.camera} ({clip(cam.topic)}) could be segmented: '
                    f'{self.first_bad[cam.camera]}'
                )

    def _frames(self) -> Iterator[Arrival]:
        """Bag messages as arrivals at their log time (ns on the bag timeline)."""
        for i, m in enumerate(self.bag.messages(list(self.cams))):
            if self.opts.max_frames and i >= self.opts.max_frames:
                return
            if i == 0:
                self.first_ns = m.log_time_ns
            cam = self.cams[m.topic]
            if m.error:
                self.service.report_bad(cam, m.error)
                continue
            if self.truth.by_order:
                self.truth.order_of[(cam, imaging.stamp_ns(m.msg.header))] = i
            if self.writer is not None:
                self.writer.write(m.topic, m.log_time_ns, m.msg)
            yield Arrival(m.log_time_ns, cam, m.msg)

    def _timeline(self) -> Iterator[Arrival]:
        """Arrivals mapped onto the monotonic clock, realtime scaled by ``speed``."""
        anchored = False
        previous = 0
        for a in self._frames():
            if not anchored:
                self.clock.anchor(a.t_ns)
                anchored = True
            elif a.t_ns - previous > MAX_GAP_NS:
                self._skip_gap(previous, a.t_ns)
            previous = a.t_ns
            yield Arrival(self.clock.to_monotonic(a.t_ns), a.camera, a.msg)

    def _skip_gap(self, before_ns: int, after_ns: int) -> None:
        """Cut a gap in the bag's log time to ``MAX_GAP_NS`` instead of sleeping through it."""
        self.clock.skip(after_ns - before_ns - MAX_GAP_NS)
        gap_s = (after_ns - before_ns) * 1e-9
        note = (
            f'log time jumps {gap_s:.1f} s at {after_ns} ns (a recorder paused, or a clock '
            f'jump): realtime replay waited {MAX_GAP_NS * 1e-9:.0f} s of it, not all'
        )
        if len(self.result.notes) < 20:
            self.result.notes.append(note)
        if self.progress is not None:
            self.progress.write(f'segnode replay: {note}')

    def _on_result(self, r: FrameResult) -> None:
        cam = self.by_cam[r.camera]
        values = r.metrics.as_dict()
        for stage in STAGES:
            cam.stages[stage].append(values[stage])
        cam.bag_time_s.append((self.clock.now_ns() - self.first_ns) * 1e-9)
        cam.wall_time_s.append(time.perf_counter())
        self.result.engine_s += r.metrics.infer_ms * 1e-3
        truth = self.truth.get(r.camera, r.stamp_ns)
        if truth is not None:
            self._score(r.camera, r.stamp_ns, r.mask, truth, own=True)
        self.last_mask[r.camera] = r.mask
        if self.writer is not None:
            self._write_outputs(r)
        wanted = len(self.result.overlays) < self.opts.overlays
        if wanted and (len(cam.bag_time_s) - 1) % self.overlay_every == 0:
            rgb = r.frame if r.encoding == 'rgb8' else r.frame[..., ::-1]
            self.result.overlays.append(
                Overlay(r.camera, r.stamp_ns, np.array(rgb), r.mask.copy(), truth)
            )
        self.progress.update(1)

    def _score(
        self, camera: str, stamp: int, mask: np.ndarray, truth: np.ndarray, *, own: bool
    ) -> None:
        """Add a frame to the consumer view, and with ``own`` (its own mask) to the scores."""
        if truth.shape != mask.shape:  # counted as unscored, with the first case in the notes
            if own:
                self.by_cam[camera].unscored += 1
            note = (
                f'camera {camera}: a label of the wrong size is not scored (first at stamp '
                f'{stamp}: {truth.shape[1]}x{truth.shape[0]}, the frame {mask.shape[1]}x'
                f'{mask.shape[0]})'
            )
            if not any(n.startswith(note.partition(' (')[0]) for n in self.result.notes):
                self.result.notes.append(note)
            return
        k = self.loaded.table.num_classes
        counts = confusion_matrix(mask, truth, k)
        if own and self.result.confusion is not None:
            self.result.confusion += counts
            self.unknown_labels += unknown_label_pixels(truth, k)
            self.by_cam[camera].scored += 1
        if self.result.consumer_confusion is not None:
            self.result.consumer_confusion += counts

    def _on_dropped(self, camera: str, stamp_ns: int, reason: str) -> None:
        self.progress.update(1)
        truth = self.truth.get(camera, stamp_ns)
        last = self.last_mask.get(camera)
        if truth is not None and last is not None:
            self._score(camera, stamp_ns, last, truth, own=False)

    def _on_bad(self, camera: str, reason: str) -> None:
        self.first_bad.setdefault(camera, reason)
        self.progress.update(1)
        note = f'camera {camera}: bad frame skipped: {reason}'
        if note not in self.result.notes and len(self.result.notes) < 20:
            self.result.notes.append(note)

    def _write_outputs(self, r: FrameResult) -> None:
        assert self.writer is not None
        base = f'{self.opts.out_prefix.rstrip("/")}/{r.camera}'
        t = self.clock.now_ns()
        header = r.header
        self.writer.write(f'{base}/labels', t, make_image(r.mask, 'mono8', header))
        if self.opts.color:
            color = imaging.colorize(r.mask, self.loaded.palette)
            self.writer.write(f'{base}/color', t, make_image(color, 'rgb8', header))
        if self.opts.confidence and r.confidence is not None:
            self.writer.write(f'{base}/confidence', t, make_image(r.confidence, 'mono8', header))
        self.writer.write(
            f'{base}/metrics',
            t,
            make_diagnostics(header, f'segnode: {r.camera}', r.metrics.as_dict()),
        )
