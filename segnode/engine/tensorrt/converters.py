"""The Torch-TensorRT 2.13 converters: which ops they take, and their validators' rules.

:func:`load_converter_table` reads ``converters_2_13.txt``, the targets that have a converter in
the Torch-TensorRT 2.13.0 release (its header names the source); :func:`accepted` emulates the
common capability validators of that release for one FX node. Both are tied to that version:
re-read them when the pinned Torch-TensorRT changes. :mod:`.lowering` uses them to find the
nodes an engine build would leave to PyTorch. Nothing here imports ``torch_tensorrt``.
"""

from __future__ import annotations

import functools
from pathlib import Path
import re
from typing import Final

import torch
from torch._ops import HigherOrderOperator, OpOverload, OpOverloadPacket
from torch.fx import Node

from segnode.errors import SegnodeError

__all__ = [
    'TABLE_FILE',
    'TORCH_TENSORRT_VERSION',
    'accepted',
    'effective_name',
    'listed',
    'load_converter_table',
    'op_name',
]

TORCH_TENSORRT_VERSION: Final = '2.13.0'
"""The Torch-TensorRT release the table and the rules in this module describe."""

TABLE_FILE: Final = 'converters_2_13.txt'
"""Package data file (next to this module) listing the targets that have a converter."""

_NAME = re.compile(r'[A-Za-z_]\w*(\.[A-Za-z_]\w*)+')

# Python modules whose functions show up as FX targets under another module name.
_MODULE_ALIASES: Final = {'_operator': 'operator'}

# replace_max_pool_with_indices: a pool whose only user takes output 0 becomes the plain pool.
_FUSED_MAX_POOL: Final = {
    f'aten.max_pool{n}d_with_indices.default': f'aten.max_pool{n}d.default' for n in (1, 2, 3)
}

# Validator rules of the 2.13 converters (aten_ops_converters.py, ops_evaluators.py).
_TO_COPY_DTYPES: Final = frozenset(
    {
        torch.float32,
        torch.int32,
        torch.int64,
        torch.bool,
        torch.int8,
        torch.float16,
        torch.bfloat16,
    }
)
_PLACEHOLDER_VARIANT_OPS: Final = frozenset({'aten._to_copy.default', 'aten.clone.default'})
_ONE_USER_OPS: Final = frozenset(
    {
        'aten.native_batch_norm.default',
        'aten._native_batch_norm_legit_no_training.default',
        'aten._native_batch_norm_legit.no_stats',
        'aten.native_group_norm.default',
        'aten.max.dim',
        'aten.min.dim',
    }
)
_MAX_POOL_OPS: Final = frozenset(f'aten.max_pool{n}d.default' for n in (1, 2, 3))
_AVG_POOL_OPS: Final = frozenset(f'aten.avg_pool{n}d.default' for n in (1, 2, 3))
# Converters registered without supports_dynamic_shapes=True.
_STATIC_SHAPE_ONLY: Final = frozenset(
    {
        'aten._cdist_forward.default',
        'aten.as_strided.default',
        'aten.diagonal.default',
        'aten.empty.memory_format',
        'aten.gather.default',
        'aten.log1p.default',
        'aten.native_dropout.default',
        'aten.rand.default',
        'aten.randn.default',
        'aten.randperm.default',
        'aten.resize_.default',
        'prims.broadcast_in_dim.default',
    }
)


def op_name(target: object) -> str:
    """Name an FX node target the way ``converters_2_13.txt`` does.

    Args:
        target: ``node.target`` of an FX node: an ``OpOverload``, an ``OpOverloadPacket``, a
            higher-order operator, a Python function such as ``operator.getitem`` or
            ``torch.sym_float``, or a string (``call_method`` and ``get_attr`` nodes).

    Returns:
        ``'aten.convolution.default'`` for an overload, ``'aten.convolution'`` for a packet,
        ``'higher_order.cond'`` for a higher-order operator, ``'operator.getitem'`` or
        ``'torch.sym_float'`` for a function, and a string target unchanged.
    """
    if isinstance(target, str):
        return target
    if isinstance(target, (OpOverload, OpOverloadPacket)):
        return str(target)
    if isinstance(target, HigherOrderOperator):
        return f'{target.namespace}.{target.__name__}'
    module = getattr(target, '__module__', None)
    name = getattr(target, '__qualname__', None) or getattr(target, '__name__', None)
    if isinstance(module, str) and isinstance(name, str):
        return f'{_MODULE_ALIASES.get(module, module)}.{name}'
    return repr(target)


@functools.cache
def load_converter_table() -> frozenset[str]:
    """Read the targets that have a Torch-TensorRT 2.13 converter.

    Returns:
        Names such as ``'aten.convolution.default'`` or ``'operator.getitem'``. A name
        without an overload (``'aten.grid_sampler_2d'``) stands for every overload.

    Raises:
        SegnodeError: The packaged table is empty or holds a line that is not an op name.
    """
    path = Path(__file__).with_name(TABLE_FILE)
    names: set[str] = set()
    for number, raw in enumerate(path.read_text(encoding='utf-8').splitlines(), start=1):
        line = raw.split('#', 1)[0].strip()
        if not line:
            continue
        if not _NAME.fullmatch(line):
            raise SegnodeError(f'{path}:{number}: not an op name: {line!r}')
        names.add(line)
    if not names:
        raise SegnodeError(f'{path} lists no converters')
    return frozenset(names)


def listed(name: str, table: frozenset[str]) -> bool:
    """Whether the table has ``name`` itself or its packet (the name without its overload)."""
    return name in table or (name.count('.') >= 2 and name.rsplit('.', 1)[0] in table)


def _arg(node: Node, index: int, default: object) -> object:
    """``node.args[index]``, or ``default`` when it is missing or None (args_bounds_check)."""
    value = node.args[index] if len(node.args) > index else None
    return default if value is None else value


def _is_dynamic(value: object) -> bool:
    """Whether a ``meta['val']`` holds a symbolic size or scalar (one list level deep)."""
    if isinstance(value, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        return True
    if isinstance(value, torch.Tensor):
        return any(isinstance(size, torch.SymInt) for size in value.shape)
    if isinstance(value, (list, tuple)):
        return any(_is_dynamic(item) for item in value if not isinstance(item, (list, tuple)))
    return False


def _has_dynamic_shapes(node: Node) -> bool:
    """Emulates ``node_has_dynamic_shapes``: the node, its node args and its node kwargs."""
    nodes = [node, *node.args, *node.kwargs.values()]
    return any(isinstance(item, Node) and _is_dynamic(item.meta.get('val')) for item in nodes)


def _only_operator_on_placeholder(node: Node, inputs: frozenset[str]) -> bool:
    """Emulates ``is_only_operator_on_placeholder``: reads a graph input, feeds the output."""
    reads_input = any(
        isinstance(arg, Node) and arg.op == 'placeholder' and arg.name in inputs
        for arg in node.args
    )
    return reads_input and any(user.op == 'output' for user in node.users)


def _single_getitem0_user(node: Node) -> bool:
    """Emulates ``one_user_validator``: only output 0 of the op is used."""
    users = list(node.users)
    if len(users) != 1 or op_name(users[0].target) != 'operator.getitem':
        return False
    index = users[0].args[1] if len(users[0].args) > 1 else None
    return isinstance(index, int) and index == 0


def effective_name(node: Node) -> str:
    """The op name Torch-TensorRT converts after its max-pool fusion pass."""
    name = op_name(node.target)
    fused = _FUSED_MAX_POOL.get(name)
    return fused if fused is not None and _single_getitem0_user(node) else name


def accepted(node: Node, table: frozenset[str], inputs: frozenset[str]) -> bool:
    """Whether some 2.13 converter accepts the node (validators and dynamic shapes included)."""
    name = effective_name(node)
    if not listed(name, table):
        return False
    dynamic = _has_dynamic_shapes(node)
    if name in _PLACEHOLDER_VARIANT_OPS:
        dtype = node.kwargs.get('dtype')
        if name == 'aten._to_copy.default' and not (
            isinstance(dtype, torch.dtype) and dtype in _TO_COPY_DTYPES
        ):
            return False
        # The variant for a node that alone maps a graph input to a graph output is static-only.
        return not (dynamic and _only_operator_on_placeholder(node, inputs))
    if name in _STATIC_SHAPE_ONLY and dynamic:
        return False
    if name in _ONE_USER_OPS:
        return _single_getitem0_user(node)
    if name in _MAX_POOL_OPS:
        # Literal as in max_pool_param_validator: an explicit dilation list is rejected too.
        return _arg(node, 4, 1) == 1 and _arg(node, 5, False) is False
    if name in _AVG_POOL_OPS:
        return _arg(node, 4, False) is False and _arg(node, 6, None) is None
    if name == 'aten.native_dropout.default':
        return _arg(node, 2, None) is False
    if name == 'operator.getitem':
        parent = node.args[0] if node.args else None
        if not isinstance(parent, Node):
            return False
        if parent.op == 'get_attr':
            return True
        return parent.op == 'call_function' and accepted(parent, table, inputs)
    return True
