"""Configuration: frozen dataclasses, the one YAML reader, mappings turned into configs.

Defaults live only in the dataclasses. Every YAML file segnode reads (params files, training
configs, class tables, bag metadata) goes through :func:`read_yaml`; mappings (YAML, checkpoint
metadata, command-line overrides) become configs through ``config_from_dict``, which rejects
unknown keys and wrong types with an error naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
from dataclasses import dataclass
import math
from pathlib import Path
import types
import typing
from typing import Any, TYPE_CHECKING, TypeVar

import yaml

from segnode.errors import clip, ConfigError, EngineUnavailable, short_repr

if TYPE_CHECKING:
    import torch

__all__ = [
    'BACKENDS',
    'BACKEND_CHOICES',
    'INT8_BACKENDS',
    'PRECISIONS',
    'PRECISION_CHOICES',
    'DYNAMIC_MAX_SIDE',
    'IGNORE_ID',
    'IMAGENET_MEAN',
    'IMAGENET_STD',
    'MAX_FRAME_SIDE',
    'MAX_TEXT',
    'MAX_WIDTH',
    'MAX_YAML_BYTES',
    'MAX_YAML_NODES',
    'MIN_SIDE',
    'SIDE_LIMIT',
    'STRIDE',
    'EngineConfig',
    'ModelConfig',
    'config_from_dict',
    'config_to_dict',
    'read_yaml',
    'resolve_device',
    'short_repr',
]

T = TypeVar('T')

# The facts of the network's input, written once (model and data both read them from here).
# The label id of unlabelled pixels, everywhere in segnode (datasets, losses, metrics, masks,
# the ROS label info); class ids are below it. segnode.metrics re-exports it.
IGNORE_ID = 255
# The normalisation MFARANet's backbone was trained with (RGB, on [0, 1] values).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# MFARANet's output stride (its coarsest level is /32): dynamic frame sizes are multiples of it.
STRIDE = 32
# MFARANet's smallest input side: its flow grids need 2 cells at the /32 level.
MIN_SIDE = 32
# The default largest side of a dynamic engine's range (engine.max_side).
DYNAMIC_MAX_SIDE = 2048
# The default largest frame side the node accepts, checked before decoding (max_frame_side).
MAX_FRAME_SIDE = 4096
# The largest side of any size a user configures (engine.input_size, engine.max_side,
# --size): a larger one is a typo, or would exhaust the memory.
SIDE_LIMIT = 8192
# The widest decoder (the paper's is 128; 4096 takes 16 s to build, 100000 asks for 360 GB).
MAX_WIDTH = 1024
# The longest text a config value (or checkpoint metadata) may hold; paths fit (PATH_MAX).
MAX_TEXT = 4096
# The largest YAML file read_yaml parses and the most values it may hold (PyYAML takes 20 s and
# 400 MB for 4 MiB of short keys, 1 s for 50000 values; a params file holds a few hundred).
MAX_YAML_BYTES, MAX_YAML_NODES = 4 * 2**20, 50_000


@dataclass(frozen=True)
class ModelConfig:
    """MFARANet architecture options.

    Attributes:
        num_classes: Number of output classes K (19 Cityscapes, 11 CamVid).
        width: Decoder width (128 in the paper).
        equalizers: Insert Scale Equalizers at every multi-level fusion input.
        per_channel_equalizers: Per-channel equalizer constants instead of one scalar pair.
        boundary_heads: Build the training-only per-scale boundary heads.
        pruned: Inference from the 1/8 branch only (MFARANet-Pruned), computing only the
            subgraph that feeds it.
    """

    num_classes: int = 19
    width: int = 128
    equalizers: bool = True
    per_channel_equalizers: bool = False
    boundary_heads: bool = False
    pruned: bool = False

    def __post_init__(self) -> None:
        """Validate value ranges."""
        if not 1 <= self.num_classes <= IGNORE_ID:
            raise ConfigError(
                f'model.num_classes must be in 1..{IGNORE_ID} ({IGNORE_ID} is the ignore id), '
                f'got {self.num_classes}'
            )
        if not 2 <= self.width <= MAX_WIDTH or self.width % 2:
            raise ConfigError(
                f'model.width must be an even number in 2..{MAX_WIDTH}, got {self.width}'
            )


# The engine backends (fastest first on a GPU) and compute precisions: the only lists of them.
# A backend is a module of segnode.engine with check/build/export/load (engine/backends.py).
BACKENDS = ('tensorrt', 'torch-compile', 'onnxruntime', 'openvino', 'eager')
PRECISIONS = ('fp32', 'fp16', 'bf16', 'int8')
# The backends that run int8: their PRECISIONS tables say where (test_engine_config.py agrees).
INT8_BACKENDS = ('tensorrt', 'onnxruntime', 'openvino')
# What a user may ask for: 'auto' picks one.
BACKEND_CHOICES = ('auto', *BACKENDS)
PRECISION_CHOICES = ('auto', *PRECISIONS)


@dataclass(frozen=True)
class EngineConfig:
    """How frames are segmented: backend, device, precision, artifacts and the parity gate.

    Attributes:
        backend: ``auto`` (the fastest that passes the gate here, by measurement:
            docs/engine.md, "Choosing by measurement"), ``tensorrt``, ``torch-compile``,
            ``onnxruntime``, ``openvino`` or ``eager``.
        device: ``auto`` (``cuda:0`` with CUDA, else ``cpu``), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``auto`` (the fastest that passes the gate, by measurement, among fp32,
            fp16 and bf16 on CUDA; fp32, bf16 where the CPU runs it natively, and int8 with
            ``calibration_images``), ``fp32``, ``fp16``, ``bf16``, or ``int8`` (TensorRT,
            onnxruntime and OpenVINO, quantised on ``calibration_images``).
        input_size: Fixed network input ``(h, w)``: frames are resized inside the graph and the
            mask comes back at frame resolution. ``None`` runs at frame resolution.
        bgr: Frames are bgr8 (the swap is folded into the first convolution).
        dynamic: Build for a range of frame sizes (H and W multiples of ``STRIDE`` up to
            ``max_side``) instead of one static shape per camera resolution.
        max_side: Upper bound of the dynamic range.
        artifact_dir: Folder of exported engines (``segnode export --out``); ``''`` builds in
            memory (a TensorRT engine is only ever loaded from here unless ``build_if_missing``).
        build_if_missing: Build (and save into ``artifact_dir``) an engine that is missing.
        strict: Raise on the first failed build or parity gate instead of falling back.
        parity_gate: Check every build against eager fp32 before using it.
        parity_frames: Frames the gate compares; rounded up to a multiple of the batch.
        parity_images: Folder of camera images (``.png``/``.jpg``, e.g. CamVid val) the gate
            compares on, resized to the frame size; ``''``: synthetic streets.
        parity_labels: Folder of class-id label images named like ``parity_images`` (e.g.
            CamVid valannot): the gate then also compares mIoU; ``''``: no labels.
        min_agreement: Least argmax agreement with eager fp32 the gate accepts.
        tie_margin: Every pixel whose fp32 top-2 logit margin is at least this must keep its
            class (smaller margins are near-ties that camera noise flips too).
        max_miou_drop: Most the mIoU (with ``parity_labels``) may fall below fp32's.
        calibration_images: Folder of images INT8 quantisation calibrates on (e.g. CamVid
            train); ``''``: int8 is not a candidate of ``precision: auto``.
        calibration_frames: At most this many of them.
        remember_choice: Keep what ``auto`` measured (in ``artifact_dir``, else the user's
            cache folder) so the next start builds the winner only.
        threads: CPU threads of every backend: torch's intra-op pool (eager, torch-compile;
            process-wide) and onnxruntime's session; 0 keeps the libraries' defaults.
        cuda_graphs: Replay CUDA graphs in the torch-compile backend on a GPU.
        openvino_device: The openvino backend's device: ``CPU``, or ``GPU``/``NPU`` (``GPU.1``,
            ...) where OpenVINO finds one; frames stay in host memory (``device: cpu``).
        confidence: Build engines with the confidence output (``~/<cam>/confidence``); off,
            the graph and a frame's cost are the mask graph's (docs/engine.md, "Confidence").
        max_confidence_diff: Most grey levels the 99th percentile of |confidence - eager
            fp32's| may reach (1.5x what camera noise moves it; docs/engine.md, "Confidence").
    """

    backend: str = 'auto'
    device: str = 'auto'
    precision: str = 'auto'
    input_size: tuple[int, int] | None = None
    bgr: bool = False
    dynamic: bool = False
    max_side: int = DYNAMIC_MAX_SIDE
    artifact_dir: str = ''
    build_if_missing: bool = False
    strict: bool = False
    parity_gate: bool = True
    parity_frames: int = 2
    parity_images: str = ''
    parity_labels: str = ''
    # Set on the shipped checkpoint (docs/engine.md, "How the thresholds were set").
    min_agreement: float = 0.995
    tie_margin: float = 1.0
    max_miou_drop: float = 0.002
    calibration_images: str = ''
    calibration_frames: int = 16
    remember_choice: bool = True
    threads: int = 0
    cuda_graphs: bool = True
    openvino_device: str = 'CPU'
    confidence: bool = False
    max_confidence_diff: int = 6

    def __post_init__(self) -> None:
        """Validate the choices and ranges."""
        if self.backend not in BACKEND_CHOICES:
            raise ConfigError(
                f'engine.backend must be one of {", ".join(BACKEND_CHOICES)}, got {self.backend!r}'
            )
        device = self.device
        if not (device in ('auto', 'cpu', 'cuda') or _is_cuda_index(device)):
            raise ConfigError(f'engine.device must be auto, cpu, cuda or cuda:N, got {device!r}')
        if self.precision not in PRECISION_CHOICES:
            raise ConfigError(
                f'engine.precision must be one of {", ".join(PRECISION_CHOICES)}, '
                f'got {self.precision!r}'
            )
        if self.precision == 'int8' and self.backend not in ('auto', *INT8_BACKENDS):
            raise ConfigError(
                f'engine.precision int8 runs on {" or ".join(INT8_BACKENDS)}, not {self.backend}'
            )
        if isinstance(self.input_size, list):  # from YAML or JSON
            object.__setattr__(self, 'input_size', tuple(self.input_size))
        if self.input_size is not None and (
            len(self.input_size) != 2
            or min(self.input_size) < MIN_SIDE
            or max(self.input_size) > SIDE_LIMIT
        ):
            raise ConfigError(
                f'engine.input_size must be (h, w) with both in {MIN_SIDE}..{SIDE_LIMIT}, '
                f'got {self.input_size}'
            )
        if not 2 * STRIDE <= self.max_side <= SIDE_LIMIT or self.max_side % STRIDE:
            raise ConfigError(
                f'engine.max_side must be a multiple of {STRIDE} in {2 * STRIDE}..{SIDE_LIMIT}, '
                f'got {self.max_side}'
            )
        if not 1 <= self.parity_frames <= 1000:
            raise ConfigError(f'engine.parity_frames must be in 1..1000, got {self.parity_frames}')
        for name in ('min_agreement', 'max_miou_drop'):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f'engine.{name} must be in [0, 1], got {value}')
        if not 0.0 <= self.tie_margin <= 1000.0:
            raise ConfigError(f'engine.tie_margin must be in [0, 1000], got {self.tie_margin}')
        if not 1 <= self.calibration_frames <= 10000:
            raise ConfigError(
                f'engine.calibration_frames must be in 1..10000, got {self.calibration_frames}'
            )
        if not 0 <= self.threads <= 1024:
            raise ConfigError(f'engine.threads must be in 0..1024, got {self.threads}')
        if not 0 <= self.max_confidence_diff <= 255:
            raise ConfigError(
                f'engine.max_confidence_diff must be in 0..255, got {self.max_confidence_diff}'
            )


def _is_cuda_index(device: str) -> bool:
    prefix, _, index = device.partition(':')
    return prefix == 'cuda' and index.isdigit()


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return (
            isinstance(value, (list, tuple)) and all(_type_ok(v, args[0]) for v in value)
            if args
            else isinstance(value, (list, tuple))
        )
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def config_from_dict(cls: type[T], data: Mapping[str, Any], where: str = '') -> T:
    """Build the frozen dataclass ``cls`` from a mapping, checking keys and types.

    Args:
        cls: A dataclass type.
        data: Field values; missing fields take the dataclass default.
        where: Prefix for error messages (e.g. ``'model.'`` or a file name).

    Raises:
        ConfigError: A key is unknown or a value has the wrong type; the message names it.
    """
    where = clip(where, 120)
    section = where.rstrip('.:') or cls.__name__  # 'model.' names the section 'model'
    if not isinstance(data, Mapping):
        raise ConfigError(f'{section}: expected a mapping, got {type(data).__name__}')
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    odd = [k for k in data if not isinstance(k, str)]
    if odd:
        raise ConfigError(
            f'{section}: keys must be names, got {short_repr(odd[0])} ({type(odd[0]).__name__})'
        )
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(
            f"unknown key '{where}{clip(unknown[0])}'; allowed keys: {', '.join(sorted(fields))}"
        )
    values: dict[str, Any] = {}
    for key, value in data.items():
        if not _type_ok(value, hints[key]):
            raise ConfigError(
                f'{where}{key} must be of type {hints[key]}, '
                f'got {short_repr(value)} ({type(value).__name__})'
            )
        if not _finite(value):
            raise ConfigError(f'{where}{key} must be a finite number, got {short_repr(value)}')
        items = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, str) and len(v) > MAX_TEXT for v in items):
            raise ConfigError(f'{where}{key} holds a text of more than {MAX_TEXT} characters')
        if typing.get_origin(hints[key]) is tuple and isinstance(value, list):
            value = tuple(value)
        values[key] = value
    return cls(**values)


def _finite(value: Any) -> bool:
    """No NaN or infinity in a number or a list or tuple of numbers."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)) and len(value) <= 10_000:
        return all(_finite(v) for v in value)
    return True


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain-data view of a config dataclass (for YAML, JSON and checkpoint metadata)."""
    return dataclasses.asdict(config)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device that ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` names.

    ``auto`` is ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU; ``cuda`` is
    ``cuda:LOCAL_RANK``. The one device resolver of segnode: engines, training and evaluation
    use it.

    Raises:
        EngineUnavailable: Another name, or a CUDA device this machine does not have.
    """
    import torch

    kind, sep, index = name.partition(':')
    if kind not in ('auto', 'cpu', 'cuda') or (sep and (kind != 'cuda' or not index.isdigit())):
        raise EngineUnavailable(f'device must be auto, cpu, cuda or cuda:N, got {name!r}')
    if kind == 'auto':
        kind = 'cuda' if torch.cuda.is_available() else 'cpu'
    if kind == 'cpu':
        return torch.device('cpu')
    if not torch.cuda.is_available():
        raise EngineUnavailable(
            f'device {name} requested but this torch has no CUDA device '
            f'(torch {torch.__version__}); use cpu'
        )
    number = int(index) if index else local_rank
    if number >= torch.cuda.device_count():
        raise EngineUnavailable(f'device {name}: only {torch.cuda.device_count()} GPU(s)')
    return torch.device('cuda', number)


class _TooManyValues(yaml.YAMLError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses duplicate keys, aliases and huge documents.

    A duplicate key would silently win over the first; aliases (``*name``) are refused because
    ROS 2's own params parser has none and nested ones expand exponentially ("billion
    laughs": a 1 KB file becomes gigabytes).
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.nodes: int = getattr(self, 'nodes', 0) + 1
        if self.nodes > MAX_YAML_NODES:
            raise _TooManyValues(f'holds more than {MAX_YAML_NODES} values')
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, 'aliases (*name) are not allowed', event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            hashable = isinstance(key, typing.Hashable)  # not '? [a, b]' nor '? {a: 1}'
            if not hashable or key in seen:
                problem = (
                    f'duplicate key {short_repr(key)}'
                    if hashable
                    else f'a {type(key).__name__} cannot be a key (keys are names)'
                )
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path, what: str = 'YAML file') -> Any:
    """Parse one YAML file with the safe loader; duplicate keys are an error.

    Args:
        path: The file.
        what: What the file is, for messages (``'params file'``, ``'class table'``, ...).

    Raises:
        ConfigError: The file cannot be read, is larger than ``MAX_YAML_BYTES``, is not UTF-8
            or is not valid YAML (one line naming the file and the problem).
    """
    path = Path(path)
    try:
        with path.open('rb') as stream:
            data = stream.read(MAX_YAML_BYTES + 1)  # a FIFO or /dev/zero has no useful size
        if len(data) > MAX_YAML_BYTES:
            mib = MAX_YAML_BYTES // 2**20
            raise ConfigError(f'{what} {path} is larger than {mib} MiB; refused before parsing')
        text = data.decode('utf-8')
    except UnicodeDecodeError as err:
        raise ConfigError(f'{what} {path} is not UTF-8 text ({err.reason})') from err
    except OSError as err:
        raise ConfigError(f'cannot read {what} {path}: {err.strerror or err}') from err
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except _TooManyValues as err:
        raise ConfigError(f'{what} {path} {err}; refused') from None
    except yaml.YAMLError as err:
        problem = clip(' '.join(str(err).split()), 300)
        raise ConfigError(f'{what} {path} is not valid YAML: {problem}') from err
    except RecursionError as err:
        raise ConfigError(f'{what} {path} is nested too deeply') from err
