"""``segnode_node``: the lifecycle node, a thin rclpy adapter over SegmentationService.

* configure: read the parameters, load the model (and build or load the engines of cameras
  with a configured size), create the lifecycle publishers, the ``~/enable`` service and the
  ``/diagnostics`` timer;
* activate: publish ``~/label_info``, subscribe the cameras, start the worker thread;
* deactivate: unsubscribe, stop the worker; cleanup: destroy all that, free GPU memory.

A subscription callback only hands the message to :meth:`SegmentationService.submit`; the
service's worker thread decodes, segments and calls back here to publish (docs/node.md).

Only rclpy and the message packages that have wheels (sensor_msgs, std_srvs, diagnostic_msgs,
lifecycle_msgs) are required, so ``pip install segnode[ros]`` runs the node without a ROS
install. ``vision_msgs`` is optional (no ``~/label_info`` without it, said at configure), and
``/diagnostics`` comes from the node's own timer and publisher, in diagnostic_updater's shape
(docs/node.md, "Packaging").
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
import gc
import os
import sys
import time
import traceback
from typing import Any, TYPE_CHECKING

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import SetBool

from segnode.errors import ConfigError, EngineBuildError, SegnodeError
from segnode.pipeline.assemble import build_service
from segnode.pipeline.diagnostics import camera_summary, engine_summary, gpu_memory
from segnode.pipeline.service import FrameMetrics, Outputs
from segnode.ros import convert, params

if TYPE_CHECKING:
    from rclpy.lifecycle import LifecycleState

__all__ = ['NODE_NAME', 'SegNode', 'main']

NODE_NAME = 'segnode'
SUCCESS = TransitionCallbackReturn.SUCCESS
EXPORT_HINT = 'build engines offline with `segnode export` (docs/node.md, "Engines")'
NO_LABEL_INFO = (
    'vision_msgs is not installed: no ~/label_info (class names) is published; install '
    'ros-$ROS_DISTRO-vision-msgs for it (docs/node.md, "Packaging")'
)


@dataclass
class _Publishers:
    labels: Any
    color: Any
    metrics: Any
    confidence: Any = None  # only with engine.confidence
    compressed: Any = None  # ~/<cam>/labels/compressed


class SegNode(LifecycleNode):
    """The segnode lifecycle node; ``kwargs`` go to ``rclpy.node.Node`` (namespace, ...)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        params.declare(self, [s for s in params.node_specs() if s.name == 'autostart'])
        self.autostart = bool(self.get_parameter('autostart').value)
        self._config: Any = None
        self._service: Any = None
        self._loaded: Any = None
        self._pubs: dict[str, _Publishers] = {}
        self._label_pub: Any = None
        self._subs: list[Any] = []
        self._enable_srv: Any = None
        self._diagnostics_pub: Any = None
        self._diagnostics_timer: Any = None
        self._last_warning: dict[str, float] = {}

    # -- transitions ----------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            config = params.read_node_config(self)
            service, loaded = build_service(
                config,
                self._outputs(),
                clock=convert.RosClock(self.get_clock()),
                background_builds=True,  # a new camera size never stalls the others
            )
            self._config, self._service, self._loaded = config, service, loaded
            self._log_startup(config)
            self._prepare_engines(config)
            self._create_interfaces(config)
        except SegnodeError as err:
            hint = f'; {EXPORT_HINT}' if isinstance(err, EngineBuildError) else ''
            self.get_logger().error(f'configure failed: {err}{hint}')
            self._release()
            return TransitionCallbackReturn.FAILURE
        except Exception:  # noqa: BLE001 - rclpy turns it into ERROR without logging it
            self.get_logger().error(f'configure failed:\n{traceback.format_exc()}')
            self._release()
            return TransitionCallbackReturn.ERROR
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the lifecycle publishers
        if result != SUCCESS:
            return result
        try:
            if self._label_pub is not None:
                info = convert.label_info_msg(self._loaded.table.names)
                info.header.stamp = self.get_clock().now().to_msg()
                self._label_pub.publish(info)
            self._subs = [self._subscribe(cam) for cam in self._config.cameras]
            self._service.start()
        except Exception:  # noqa: BLE001 - rclpy turns it into ERROR without logging it
            self.get_logger().error(f'activate failed:\n{traceback.format_exc()}')
            return TransitionCallbackReturn.ERROR
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()  # a transition raised: back to unconfigured with nothing left behind
        return super().on_error(state)

    def configure_and_activate(self) -> bool:
        """Configure and activate (``autostart``); False, with the reason logged, on failure."""
        for name, trigger in (
            ('configure', self.trigger_configure),
            ('activate', self.trigger_activate),
        ):
            if trigger() != SUCCESS:
                self.get_logger().fatal(f'autostart: {name} failed (reason above); exiting')
                return False
        return True

    def building(self) -> bool:
        """Whether an engine is being built in the background."""
        return self._service is not None and self._service.building

    def destroy_node(self) -> None:
        """Stop the worker thread before rclpy destroys the publishers it uses."""
        if self._service is not None:
            self._service.stop()
        super().destroy_node()

    # -- transition helpers ---------------------------------------------------------------

    def _outputs(self) -> Outputs:
        return Outputs(
            labels=self._on_labels,
            color=self._on_color,
            metrics=self._on_metrics,
            want_color=self._want_color,
            bad_frame=self._on_bad_frame,
            confidence=self._on_confidence,
            want_confidence=functools.partial(self._listened, 'confidence'),
            compressed_labels=self._on_compressed,
            want_compressed=functools.partial(self._listened, 'compressed'),
        )

    def _subscribe(self, cam: Any) -> Any:
        config = self._config
        msg_type = CompressedImage if cam.transport == 'compressed' else Image
        qos = convert.qos_profile(cam.qos or config.input_qos, config.input_depth)
        submit = functools.partial(self._service.submit, cam.name)  # the whole callback
        sub = self.create_subscription(msg_type, cam.subscribed_topic, submit, qos)
        topic = getattr(sub, 'topic_name', cam.subscribed_topic)
        self.get_logger().info(f'{cam.name}: {msg_type.__name__} from {topic}')
        return sub

    def _log_startup(self, config: Any) -> None:
        log, loaded = self.get_logger(), self._loaded
        if loaded.trained:
            log.info(f'model: {loaded.description} ({len(loaded.table.names)} classes)')
        else:
            log.warning(f'!!! {loaded.description}: set model.path to a trained checkpoint !!!')
        engine = config.engine
        log.info(
            f'engine: backend {engine.backend}, device {engine.device}, precision '
            f'{engine.precision}; one engine per camera resolution, built or loaded at '
            'configure (cameras.<cam>.size) or at its first frame'
        )
        unknown = params.unknown_overrides(self, config)
        if unknown:
            raise ConfigError(f'unknown parameter {unknown[0]!r}; see config/segnode.yaml')

    def _prepare_engines(self, config: Any) -> None:
        """Build or load the engine of every camera whose size is configured (fails early)."""
        batch = len(config.cameras) if config.batch else 1
        for size in dict.fromkeys(cam.size for cam in config.cameras if cam.size):
            self.get_logger().info(f'engine for {size[0]}x{size[1]} frames (batch {batch})')
            self._service.prepare(size[0], size[1], batch)

    def _create_interfaces(self, config: Any) -> None:
        qos = convert.qos_profile(config.output_qos, config.output_depth)
        pub = self.create_lifecycle_publisher
        self._pubs = {
            cam: _Publishers(
                labels=pub(Image, f'~/{cam}/labels', qos),
                color=pub(Image, f'~/{cam}/color', qos),
                metrics=pub(DiagnosticArray, f'~/{cam}/metrics', qos),
                confidence=(
                    pub(Image, f'~/{cam}/confidence', qos) if config.engine.confidence else None
                ),
                compressed=pub(CompressedImage, f'~/{cam}/labels/compressed', qos),
            )
            for cam in config.camera_names
        }
        if convert.LabelInfo is None:
            self.get_logger().warning(NO_LABEL_INFO)
        else:
            self._label_pub = pub(convert.LabelInfo, '~/label_info', convert.latched_qos())
        self._enable_srv = self.create_service(SetBool, '~/enable', self._on_enable)
        self._last_warning = {}
        if config.diagnostics_period_s > 0:
            # diagnostic_updater's topic, depth and status names; published while configured.
            self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 1)
            self._diagnostics_timer = self.create_timer(
                config.diagnostics_period_s, self._publish_diagnostics
            )

    def _stop_inputs(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self._service is not None:
            self._service.stop()

    def _release(self) -> None:
        self._stop_inputs()
        pubs = [p for group in self._pubs.values() for p in vars(group).values()]
        destroy = getattr(self, 'destroy_lifecycle_publisher', self.destroy_publisher)
        for pub in [*pubs, self._label_pub]:
            if pub is not None:
                destroy(pub)
        if self._enable_srv is not None:
            self.destroy_service(self._enable_srv)
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
        if self._diagnostics_pub is not None:
            self.destroy_publisher(self._diagnostics_pub)
        if self._service is not None:
            self._service.release()
        self._pubs, self._label_pub, self._enable_srv = {}, None, None
        self._diagnostics_pub = self._diagnostics_timer = None
        self._service = self._loaded = self._config = None
        _free_gpu_memory()

    # -- worker-thread callbacks (Outputs) ------------------------------------------------

    def _shutting_down(self) -> bool:
        """Whether rclpy's context is gone, so that outputs are dropped silently.

        On Ctrl-C rclpy's signal handler shuts the context down before ``destroy_node`` stops
        the worker; a frame still in inference then has nowhere to go.
        """
        return not self.context.ok()

    def _on_labels(self, camera: str, header: Any, mask: np.ndarray) -> None:
        if self._shutting_down():
            return
        msg = convert.image_msg(mask, 'mono8', header)
        self._pubs[camera].labels.publish(msg)

    def _on_confidence(self, camera: str, header: Any, confidence: np.ndarray) -> None:
        if self._shutting_down():
            return
        self._pubs[camera].confidence.publish(convert.image_msg(confidence, 'mono8', header))

    def _on_compressed(self, camera: str, header: Any, png: bytes) -> None:
        """On the PNG encoder's thread (pipeline/compressed.py), not the worker's."""
        if self._shutting_down():
            return
        self._pubs[camera].compressed.publish(convert.compressed_labels_msg(png, header))

    def _listened(self, output: str, camera: str) -> bool:
        """Whether ``~/<camera>/<output>`` exists and has a subscriber now."""
        pub = getattr(self._pubs[camera], output)
        return pub is not None and not self._shutting_down() and pub.get_subscription_count() > 0

    def _on_color(self, camera: str, header: Any, rgb: np.ndarray) -> None:
        if self._shutting_down():
            return
        self._pubs[camera].color.publish(convert.image_msg(rgb, 'rgb8', header))

    def _on_metrics(self, camera: str, header: Any, metrics: FrameMetrics) -> None:
        if self._shutting_down():
            return
        msg = convert.metrics_msg(header, camera, metrics, self.get_name())
        self._pubs[camera].metrics.publish(msg)

    def _want_color(self, camera: str) -> bool:
        mode = self._config.publish_color
        if mode == 'never' or self._shutting_down():
            return False
        listeners = self._pubs[camera].color.get_subscription_count()
        return mode == 'always' or (mode == 'auto' and listeners > 0)

    def _on_bad_frame(self, camera: str, reason: str) -> None:
        if self._shutting_down():  # a publish that lost the race with Ctrl-C: nothing to say
            return
        # Throttled per camera here, on the node's own logger: Humble's child loggers do not
        # reach /rosout, and rclpy's throttle is per call site, shared by every camera.
        now = time.monotonic()
        last = self._last_warning.get(camera)
        if last is not None and now - last < self._config.warn_period_s:
            return
        self._last_warning[camera] = now
        self.get_logger().warning(f'{camera or "worker"}: frame dropped: {reason}')

    # -- executor callbacks ---------------------------------------------------------------

    def _on_enable(self, request: Any, response: Any) -> Any:
        self._service.enabled = bool(request.data)
        response.success = True
        response.message = 'inference enabled' if request.data else 'inference paused'
        self.get_logger().info(response.message)
        return response

    def _publish_diagnostics(self) -> None:
        """One status for the engine and one per camera, named ``<node>: <task>``."""
        service = self._service
        if service is None or self._shutting_down():
            return
        engine = engine_summary(
            service.segmenters(), self._loaded.description, service.engines_evicted
        )
        engine.values.update(gpu_memory())
        now = service.clock.monotonic_ns()
        stats = service.stats()
        summaries = {'engine': engine}
        for cam in self._config.camera_names:
            summaries[f'camera {cam}'] = camera_summary(
                stats[cam], now, active=service.running, enabled=service.enabled,
                failure=service.failure, building=service.building,
            )  # fmt: skip
        statuses = [
            convert.status_msg(f'{self.get_name()}: {task}', summary)
            for task, summary in summaries.items()
        ]
        msg = DiagnosticArray(status=statuses)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(msg)


def _free_gpu_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main(args: list[str] | None = None) -> int:
    """Run the node until shutdown.

    Args:
        args: Command-line arguments (ROS arguments included); ``None`` means ``sys.argv``.

    Returns:
        0, or 1 when ``autostart`` could not configure and activate the node.
    """
    rclpy.init(args=args)
    node = None
    status = 0
    try:
        node = SegNode()
        if node.autostart and not node.configure_and_activate():
            status = 1
        else:
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except SegnodeError as err:  # a malformed autostart parameter
        print(f'segnode_node: {err}', file=sys.stderr)
        status = 1
    finally:
        building = False
        if node is not None:
            node.destroy_node()  # stops the worker first, so nothing else touches the builds
            building = node.building()
        rclpy.try_shutdown()
    if building:
        # A background engine build is still inside torch on its (daemon) thread; finalising
        # the interpreter under it aborts ('terminate called without an active exception').
        # Nothing is left to save, so leave without finalising.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


if __name__ == '__main__':
    sys.exit(main())
