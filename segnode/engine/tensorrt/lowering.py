"""Check on a CPU that an exported graph only uses ops Torch-TensorRT 2.13 can convert.

Torch-TensorRT falls back to PyTorch for every node it cannot convert, which splits the engine
and moves tensors between engines and PyTorch. This module finds such nodes before anyone
builds an engine: :func:`decompose_for_trt` lowers an ``ExportedProgram`` the way
``torch_tensorrt.dynamo.compile`` 2.13 does with its default settings, and
:func:`unconverted_ops` lists the nodes that no converter in ``converters_2_13.txt`` would
accept. Nothing here imports ``torch_tensorrt``.

The decomposition groups below, like the converter table and validator rules of
:mod:`.converters`, were read from the Torch-TensorRT 2.13.0 release (see the header of
``converters_2_13.txt``). They are tied to that version: re-read them when the pinned
Torch-TensorRT changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
import functools
from typing import Any, Final

import torch
from torch._ops import OperatorBase, OpOverload, OpOverloadPacket
from torch.export import ExportedProgram
from torch.fx import GraphModule, Node

from segnode.engine.tensorrt.converters import (
    accepted,
    effective_name,
    listed,
    load_converter_table,
    op_name,
)

__all__ = [
    'decompose_for_trt',
    'trt_decomposition_table',
    'unconverted_ops',
]

# torch_enabled_decompositions in lowering/_decomposition_groups.py: torch decompositions that
# Torch-TensorRT applies although some of these ops (hardtanh, transpose.int) have converters.
_TRT_ENABLED_DECOMPOSITIONS: Final = frozenset(
    """
    aten._adaptive_avg_pool2d_backward aten._euclidean_dist.default
    aten._fused_moving_avg_obs_fq_helper aten._log_softmax_backward_data
    aten._native_batch_norm_legit_functional aten._prelu_kernel_backward aten._reshape_alias
    aten._softmax.out aten._softmax_backward_data aten._unsafe_index aten.addcdiv aten.addcdiv_
    aten.addcmul aten.addcmul_ aten.addr aten.aminmax aten.arange.default aten.arange.start
    aten.avg_pool2d_backward aten.binary_cross_entropy aten.binary_cross_entropy_backward
    aten.binary_cross_entropy_with_logits aten.celu aten.clamp_max aten.clamp_min aten.col2im
    aten.count_nonzero aten.cudnn_batch_norm aten.cudnn_batch_norm_backward aten.deg2rad
    aten.detach aten.diag_embed aten.diagonal_backward aten.elu_backward
    aten.embedding_dense_backward aten.empty_like aten.expand_as aten.eye aten.fill aten.frac
    aten.gelu_backward aten.glu_backward aten.hardshrink aten.hardshrink_backward
    aten.hardsigmoid_backward aten.hardswish aten.hardswish_ aten.hardswish_backward
    aten.hardtanh aten.hardtanh_ aten.hardtanh_backward aten.heaviside aten.huber_loss
    aten.huber_loss_backward aten.im2col aten.index_add aten.index_add_ aten.index_copy
    aten.index_copy_ aten.index_fill aten.index_fill_ aten.isneginf aten.isposinf aten.l1_loss
    aten.leaky_relu_ aten.leaky_relu_backward aten.lerp aten.linalg_vector_norm aten.linspace
    aten.log_sigmoid_backward aten.log_sigmoid_forward aten.logaddexp aten.logaddexp2
    aten.logit aten.logit_backward aten.logspace aten.logsumexp.default aten.masked_fill
    aten.masked_fill_ aten.max_pool2d_with_indices_backward aten.mish aten.mse_loss
    aten.mse_loss_backward aten.mvlgamma aten.nan_to_num aten.nansum aten.narrow
    aten.native_batch_norm_backward aten.native_dropout_backward
    aten.native_group_norm_backward aten.native_layer_norm_backward aten.new_empty
    aten.new_full aten.new_ones aten.new_zeros aten.nll_loss_backward aten.nll_loss_forward
    aten.norm aten.ones aten.ones_like aten.rad2deg aten.renorm aten.renorm_ aten.repeat
    aten.rot90 aten.rsub aten.select_backward aten.select_scatter aten.sgn
    aten.sigmoid_backward aten.silu_backward aten.sinc aten.slice_backward aten.smooth_l1_loss
    aten.smooth_l1_loss_backward aten.soft_margin_loss aten.soft_margin_loss_backward
    aten.softplus_backward aten.softshrink aten.softshrink_backward aten.special_entr
    aten.special_log_ndtr aten.special_xlog1py aten.stack aten.std aten.t aten.tanh_backward
    aten.threshold aten.threshold_backward aten.trace aten.transpose.int aten.tril.default
    aten.triu.default aten.unbind aten.unfold aten.unfold_backward aten.unfold_copy
    aten.upsample_nearest2d_backward aten.var aten.var_mean aten.xlogy aten.zero aten.zero_
    aten.zeros aten.zeros_like
    """.split()
)

# torch_disabled_decompositions: kept whole although they are CompositeImplicitAutograd.
_TRT_DISABLED_DECOMPOSITIONS: Final = frozenset(
    """
    aten._softmax.default aten.linear.default aten.matmul.default aten.upsample_bicubic2d.vec
    aten.upsample_bilinear2d.vec aten.upsample_linear1d.vec aten.upsample_nearest1d.vec
    aten.upsample_nearest2d.vec aten.upsample_nearest3d.vec aten.upsample_trilinear3d.vec
    """.split()
)

# Kept whole unless compile(decompose_attention=True) is passed (not emulated).
_TRT_ATTENTION_OPS: Final = frozenset(
    """
    aten.scaled_dot_product_attention.default aten._scaled_dot_product_flash_attention.default
    aten._scaled_dot_product_efficient_attention.default
    aten._scaled_dot_product_cudnn_attention.default
    """.split()
)

# Ops Torch-TensorRT decomposes with its own functions (lowering/_decompositions.py), without
# the in-place and attention entries. Where the op has no converter, torch's registered
# decomposition of the same op stands in for Torch-TensorRT's (see decompose_for_trt).
_TRT_OWN_DECOMPOSITIONS: Final = frozenset(
    """
    aten.rsqrt aten._unsafe_view aten.lift_fresh_copy aten.alias aten.reciprocal.default
    aten.empty_permuted.default aten.slice_scatter.default aten.select_scatter.default
    aten.empty_strided.default aten.silu.default aten.silu_.default aten.scatter_add.default
    aten.scatter_reduce.two aten._log_softmax aten.instance_norm aten.full_like
    aten.view.default aten.cudnn_grid_sampler aten.masked_scatter prims.var.default
    """.split()
)

# Erased by the remove_assert_nodes pass; remove_detach bypasses detach nodes.
_ASSERT_OPS: Final = frozenset(
    {'aten._assert_scalar.default', 'aten._assert_tensor_metadata.default'}
)
_DETACH: Final = 'aten.detach.default'


def _resolve(name: str) -> OpOverload | OpOverloadPacket | None:
    """The ``torch.ops`` object named ``ns.op`` or ``ns.op.overload``, if this torch has it."""
    namespace, op, *overload = name.split('.')
    packet = getattr(getattr(torch.ops, namespace), op, None)
    if not isinstance(packet, OpOverloadPacket):
        return None
    if not overload:
        return packet
    found = getattr(packet, overload[0], None)
    return found if isinstance(found, OpOverload) else None


def _overloads(names: frozenset[str]) -> Iterator[OpOverload]:
    """Every overload the names stand for (a packet name stands for all of its overloads)."""
    for name in sorted(names):
        resolved = _resolve(name)
        if isinstance(resolved, OpOverload):
            yield resolved
        elif resolved is not None:
            overloads: list[str] = resolved.overloads()  # type: ignore[no-untyped-call]
            yield from (getattr(resolved, overload) for overload in overloads)


def _same_tensor(x: torch.Tensor) -> torch.Tensor:
    """``aten.alias`` and ``aten.lift_fresh_copy``: the input itself."""
    return x


def _full_like(
    x: torch.Tensor,
    fill_value: float,
    *,
    dtype: torch.dtype | None = None,
    layout: torch.layout | None = None,
    device: torch.device | None = None,
    pin_memory: bool | None = None,
    memory_format: torch.memory_format | None = None,
) -> torch.Tensor:
    """``aten.full_like``: ``full`` of the input's shape."""
    return torch.full(
        tuple(x.shape), fill_value, dtype=dtype or x.dtype, device=device or x.device
    )


def _view(x: torch.Tensor, size: list[int]) -> torch.Tensor:
    """``aten.view``: ``aten._reshape_copy``."""
    reshaped: torch.Tensor = torch.ops.aten._reshape_copy.default(x, size)
    return reshaped


def _rsqrt(x: torch.Tensor) -> torch.Tensor:
    """``aten.rsqrt``: the reciprocal of ``sqrt``."""
    return torch.reciprocal(torch.sqrt(x))


def _reciprocal(x: torch.Tensor) -> torch.Tensor:
    """``aten.reciprocal``: one divided by the input."""
    return torch.div(1, x)


def _log_softmax(x: torch.Tensor, dim: int, half_to_float: bool) -> torch.Tensor:
    """``aten._log_softmax``: ``log`` of ``softmax``."""
    return torch.log(torch.softmax(x, dim, dtype=torch.float32 if half_to_float else None))


def _instance_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    use_input_stats: bool,
    momentum: float,
    eps: float,
    cudnn_enabled: bool,
) -> torch.Tensor:
    """``aten.instance_norm``: group norm with one group per channel, or batch norm."""
    if use_input_stats:
        return torch.nn.functional.group_norm(x, x.shape[1], weight, bias, eps)
    return torch.nn.functional.batch_norm(
        x, running_mean, running_var, weight, bias, False, momentum, eps
    )


def _cudnn_grid_sampler(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``aten.cudnn_grid_sampler``: bilinear, zero padding, align_corners=True."""
    return torch.grid_sampler_2d(x, grid, 0, 0, True)


def _prims_var(
    x: torch.Tensor,
    dims: list[int] | None,
    correction: float | None = 1.0,
    *,
    output_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``prims.var``: variance from mean, sub, mul, sum and div."""
    axes = list(range(x.dim())) if dims is None else list(dims)
    centred = x - torch.mean(x, axes, keepdim=True)
    count = 1
    for axis in axes:
        count = count * x.shape[axis]
    variance = torch.sum(centred * centred, axes) / (
        count - (1.0 if correction is None else correction)
    )
    return variance if output_dtype is None else variance.to(output_dtype)


@functools.cache
def _decomposition_table() -> dict[OperatorBase, Callable[..., Any]]:
    """Build the table once; see :func:`trt_decomposition_table`."""
    from torch._decomp import decomposition_table, get_decompositions
    from torch._export.utils import (
        _collect_all_valid_cia_ops_for_aten_namespace,
        _get_decomp_for_cia,
    )

    enabled = [op for op in map(_resolve, sorted(_TRT_ENABLED_DECOMPOSITIONS)) if op is not None]
    table: dict[OperatorBase, Callable[..., Any]] = dict(get_decompositions(enabled))
    kept_whole = {str(op) for op in _overloads(_TRT_DISABLED_DECOMPOSITIONS | _TRT_ATTENTION_OPS)}
    for op in _collect_all_valid_cia_ops_for_aten_namespace():
        if isinstance(op, OpOverload) and str(op) not in kept_whole:
            table[op] = _get_decomp_for_cia(op)
    converters = load_converter_table()
    # Torch-TensorRT's own lowerings, rewritten here with the ops they produce.
    local: dict[str, Callable[..., Any]] = {
        'aten.alias.default': _same_tensor,
        'aten.lift_fresh_copy.default': _same_tensor,
        'aten.full_like.default': _full_like,
        'aten.view.default': _view,
        'aten.rsqrt.default': _rsqrt,
        'aten.reciprocal.default': _reciprocal,
        'aten._log_softmax.default': _log_softmax,
        'aten.instance_norm.default': _instance_norm,
        'aten.cudnn_grid_sampler.default': _cudnn_grid_sampler,
        'prims.var.default': _prims_var,
    }
    for op in _overloads(_TRT_OWN_DECOMPOSITIONS):
        name = str(op)
        if name in local:
            table[op] = local[name]
        elif not listed(name, converters) and op in decomposition_table:
            table[op] = decomposition_table[op]
    return table


def trt_decomposition_table() -> dict[OperatorBase, Callable[..., Any]]:
    """The decomposition table :func:`decompose_for_trt` passes to ``run_decompositions``.

    Returns:
        A new dict (callers may change it) from op overloads to decomposition functions.
    """
    return dict(_decomposition_table())


def decompose_for_trt(ep: ExportedProgram) -> ExportedProgram:
    """Decompose an exported program as ``torch_tensorrt.dynamo.compile`` 2.13 does.

    Torch-TensorRT 2.13 (``lowering/_decompositions.py``, ``get_decompositions`` with the
    default ``enable_experimental_decompositions=False``, ``decompose_attention=False``) calls
    ``ep.run_decompositions`` with the union of

    1. torch's decompositions of the ops in its ``torch_enabled_decompositions`` group,
    2. the decomposition of every CompositeImplicitAutograd ATen op except its
       ``torch_disabled_decompositions`` (``_softmax``, ``linear``, ``matmul``, the
       ``upsample_*.vec`` ops) and the four attention ops, and
    3. its own decompositions (later entries win).

    It does not start from torch's default (core ATen) table and does not take out the ops that
    have converters: an op outside these groups stays whole whether or not it has a converter
    (``aten.glu``, ``aten.cummax``), and an op in them is decomposed even when it has one
    (``aten.hardtanh``, ``aten.pad``). Ops that torch always lowers during export or
    ``run_decompositions`` (``aten.batch_norm``, ``aten.to``) are lowered here as there. This
    function rebuilds the table from the installed torch with the groups read from the 2.13
    source. Approximations:

    * Torch-TensorRT's own decompositions are rewritten here for ``alias``,
      ``lift_fresh_copy``, ``full_like``, ``view``, ``rsqrt``, ``reciprocal``,
      ``_log_softmax``, ``instance_norm``, ``cudnn_grid_sampler`` and ``prims.var`` (which
      torch's ``var`` and ``std`` decompositions produce), with the same resulting ops.
      ``_unsafe_view``, ``slice_scatter``, ``select_scatter``, ``empty_strided`` and ``silu``
      take torch's decomposition instead, whose ops may differ from Torch-TensorRT's.
      ``empty_permuted``, ``scatter_add``, ``scatter_reduce.two`` and ``masked_scatter`` are
      not reproduced, so :func:`unconverted_ops` reports them although Torch-TensorRT would
      decompose them.
    * In-place ops (own decompositions there) are not handled: exported graphs are functional.
    * The graph passes that run before and after are not applied here. :func:`unconverted_ops`
      accounts for assert and detach removal, dead-node removal and the max-pool fusion, but
      not for constant folding, which can remove nodes whose inputs are all constants; the
      check may report such nodes although Torch-TensorRT would not convert them.

    Args:
        ep: A program from ``torch.export.export``.

    Returns:
        A new exported program; ``ep`` is not changed.
    """
    decomposed: ExportedProgram = ep.run_decompositions(trt_decomposition_table())
    return decomposed


def _graph_modules(ep: ExportedProgram) -> Iterator[GraphModule]:
    """The top-level graph module and the subgraphs of higher-order operators."""
    for module in ep.graph_module.modules():
        if isinstance(module, GraphModule):
            yield module


def _erased_by_lowering(nodes: list[Node]) -> set[Node]:
    """Nodes the lowering passes erase: asserts, detach, then every node left without users.

    Emulates remove_assert_nodes, remove_detach and remove_num_users_is_0_nodes (which walks
    the graph backwards and erases each node that has inputs but no users any more).
    """
    erased = {node for node in nodes if op_name(node.target) in _ASSERT_OPS}
    for node in reversed(nodes):
        if node in erased or node.op == 'output' or not node.all_input_nodes:
            continue
        if all(user in erased for user in node.users):
            erased.add(node)
    # A detach with users hands them to its input, so it only goes after the dead-node walk.
    return erased | {node for node in nodes if op_name(node.target) == _DETACH}


def unconverted_ops(
    ep: ExportedProgram, *, decompose: bool = True, validators: bool = True
) -> dict[str, int]:
    """Count the nodes Torch-TensorRT 2.13 could not convert and would run in PyTorch.

    Nodes that Torch-TensorRT's lowering erases are skipped: ``_assert_scalar``,
    ``_assert_tensor_metadata`` and ``detach``, then every node left without users (such as
    the SymInt comparisons that fed the asserts). A ``max_pool*_with_indices`` node whose only
    user takes output 0 is checked as the plain pool it becomes.

    With ``validators`` the common capability validators of 2.13 are emulated as well:
    ``_to_copy`` only to float32, float16, bfloat16, int32, int64, int8 or bool (so a cast to
    uint8 is reported); batch-norm, group-norm and ``max.dim``/``min.dim`` only when just
    output 0 is used; max pooling only without dilation and ``ceil_mode``; average pooling
    only without ``ceil_mode`` and ``divisor_override``; ``native_dropout`` only in inference;
    ``getitem`` only on a convertible node; and converters registered without dynamic-shape
    support reject nodes with symbolic sizes. Other validators (``cat`` rank checks, ``index``
    dtypes, bitwise ops on bool only, ``split`` sizes, ``topk``/``sort`` k, attention shapes,
    TensorRT-RTX limits) are not emulated: those ops count as converted.

    Args:
        ep: A program from ``torch.export.export``.
        decompose: Run :func:`decompose_for_trt` first; pass False for a program that has
            already been through it.
        validators: Emulate the validators; False checks the op names only.

    Returns:
        Op name to the number of nodes no converter accepts, sorted by name; empty when the
        whole graph converts.
    """
    program = decompose_for_trt(ep) if decompose else ep
    table = load_converter_table()
    inputs = frozenset(program.graph_signature.user_inputs)
    counts: Counter[str] = Counter()
    for module in _graph_modules(program):
        erased = _erased_by_lowering(list(module.graph.nodes))
        for node in module.graph.nodes:
            if node.op != 'call_function' or node in erased:
                continue
            name = op_name(node.target)
            convertible = (
                accepted(node, table, inputs)
                if validators
                else listed(effective_name(node), table)
            )
            if not convertible:
                counts[name] += 1
    return dict(sorted(counts.items()))
