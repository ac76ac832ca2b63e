"""Tests of the Torch-TensorRT 2.13 converter check on small self-made modules (CPU only)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
import importlib
import operator
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.fx import GraphModule
import torch.nn.functional as F

from segnode.engine.tensorrt import converters
from segnode.engine.tensorrt.converters import load_converter_table, op_name
from segnode.engine.tensorrt.lowering import (
    decompose_for_trt,
    trt_decomposition_table,
    unconverted_ops,
)


def graph_op_counts(ep: torch.export.ExportedProgram) -> dict[str, int]:
    """The ``call_function`` nodes of a program (and its subgraphs) by op name."""
    counts = Counter(
        op_name(node.target)
        for module in ep.graph_module.modules()
        if isinstance(module, GraphModule)
        for node in module.graph.nodes
        if node.op == 'call_function'
    )
    return dict(sorted(counts.items()))


TABLE_PATH = Path(converters.__file__).with_name(converters.TABLE_FILE)
INPUT_SHAPE = (1, 3, 64, 96)

# The ops of SegNet after decompose_for_trt with static shapes.
SEGNET_OPS = {
    'aten._assert_tensor_metadata.default': 1,
    'aten._native_batch_norm_legit_no_training.default': 1,
    'aten._reshape_copy.default': 2,
    'aten._to_copy.default': 1,
    'aten.arange.start_step': 2,
    'aten.argmax.default': 1,
    'aten.cat.default': 1,
    'aten.convolution.default': 2,
    'aten.div.Tensor': 2,
    'aten.expand.default': 2,
    'aten.grid_sampler_2d.default': 1,
    'aten.mul.Tensor': 2,
    'aten.relu.default': 1,
    'aten.sub.Tensor': 2,
    'aten.unsqueeze.default': 2,
    'aten.upsample_bilinear2d.vec': 2,
    'operator.getitem': 1,
}


class SegNet(nn.Module):
    """Conv, BN, ReLU, bilinear resampling, grid_sample on an arange grid, argmax and a cast.

    The head has the shape of MFARANet's deployed tail: the sampling grid is built from
    ``arange`` on the feature map's own sizes, so it follows the input resolution.
    """

    def __init__(self, out_dtype: torch.dtype, scalar_first: bool = False) -> None:
        """Build the module.

        Args:
            out_dtype: dtype of the returned label map.
            scalar_first: Compute the coordinate step ``2 / (n - 1)`` as a Python scalar
                before multiplying (with symbolic sizes this becomes ``torch.sym_float``).
        """
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Conv2d(8, 5, 1)
        self.out_dtype = out_dtype
        self.scalar_first = scalar_first
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)

    def _coords(self, size: int, like: torch.Tensor) -> torch.Tensor:
        """Sample positions -1 ... 1 of ``size`` pixel centres (align_corners=True)."""
        index = torch.arange(size, dtype=like.dtype, device=like.device)
        if self.scalar_first:
            return index * (2.0 / (size - 1)) - 1.0
        return index * 2 / (size - 1) - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return a label map of ``out_dtype``."""
        y = F.relu(self.bn(self.conv(x)))
        y = F.interpolate(y, scale_factor=0.5, mode='bilinear', align_corners=True)
        y = F.interpolate(y, scale_factor=2.0, mode='bilinear', align_corners=True)
        n, _, h, w = y.shape
        grid_x = self._coords(w, y).view(1, 1, w).expand(n, h, w)
        grid_y = self._coords(h, y).view(1, h, 1).expand(n, h, w)
        grid = torch.stack([grid_x, grid_y], dim=-1)
        y = F.grid_sample(y, grid, mode='bilinear', padding_mode='zeros', align_corners=True)
        return self.head(y).argmax(dim=1).to(self.out_dtype)


class Lambda(nn.Module):
    """Wrap a function of one tensor as a module."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Store ``fn``."""
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ``fn``."""
        return self.fn(x)


def _export(
    module: nn.Module, dynamic: bool = False, shape: tuple[int, ...] = INPUT_SHAPE
) -> torch.export.ExportedProgram:
    """Export ``module`` in eval mode, optionally with H and W as multiples of 32."""
    torch.manual_seed(0)
    example = torch.randn(shape)
    if not dynamic:
        return torch.export.export(module.eval(), (example,))
    height = torch.export.Dim('height', min=1, max=32)
    width = torch.export.Dim('width', min=1, max=64)
    shapes = {'x': {2: 32 * height, 3: 32 * width}}
    return torch.export.export(module.eval(), (example,), dynamic_shapes=shapes)


def _unconverted(fn: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, int]:
    return unconverted_ops(_export(Lambda(fn), shape=(1, 4, 8, 12)))


@pytest.fixture(scope='module')
def uint8_program() -> torch.export.ExportedProgram:
    torch.manual_seed(0)
    return _export(SegNet(torch.uint8))


@pytest.fixture(scope='module')
def int32_program() -> torch.export.ExportedProgram:
    torch.manual_seed(0)
    return _export(SegNet(torch.int32))


def test_table_loads_with_the_segmentation_converters() -> None:
    table = load_converter_table()
    assert len(table) == 229
    for name in (
        'aten.convolution.default',
        'aten._native_batch_norm_legit_no_training.default',
        'aten.relu.default',
        'aten.sigmoid.default',
        'aten.upsample_bilinear2d.vec',
        'aten.grid_sampler_2d.default',
        'aten.arange.start_step',
        'aten.expand.default',
        'aten.cat.default',
        'aten.argmax.default',
        'aten._to_copy.default',
        'operator.getitem',
        'aten.sym_size.int',
    ):
        assert name in table, name
    for name in (
        'aten.cummax.default',
        'aten.glu.default',
        'aten.stack.default',
        'aten.max_pool2d_with_indices.default',
        'aten._unique2.default',
        'torch.sym_float',
    ):
        assert name not in table, name


def test_table_file_is_sorted_per_block_and_names_real_targets() -> None:
    blocks: list[list[str]] = [[]]
    for line in TABLE_PATH.read_text(encoding='utf-8').splitlines():
        if line.startswith('#'):
            if blocks[-1]:
                blocks.append([])
            continue
        blocks[-1].append(line.strip())
    assert [len(block) for block in blocks] == [214, 15]
    assert all(block == sorted(block) for block in blocks)
    assert all(name.startswith('aten.') for name in blocks[0])
    for name in load_converter_table():
        namespace, _, rest = name.partition('.')
        if namespace in ('aten', 'prims'):
            target: object = getattr(torch.ops, namespace)
            for part in rest.split('.'):
                target = getattr(target, part)
            assert op_name(target) == name
        else:
            target = getattr(importlib.import_module(namespace), rest)
            assert op_name(target) == name


def test_op_name_normalises_fx_targets() -> None:
    aten = torch.ops.aten
    assert op_name(aten.convolution.default) == 'aten.convolution.default'
    assert op_name(aten.upsample_bilinear2d.vec) == 'aten.upsample_bilinear2d.vec'
    assert op_name(aten.grid_sampler_2d) == 'aten.grid_sampler_2d'
    assert op_name(torch.ops.prims.sum.default) == 'prims.sum.default'
    assert op_name(torch.ops.higher_order.cond) == 'higher_order.cond'
    assert op_name(operator.getitem) == 'operator.getitem'
    assert op_name(operator.truediv) == 'operator.truediv'
    assert op_name(torch.sym_float) == 'torch.sym_float'
    assert op_name('size') == 'size'


def test_decomposed_segnet_ops_and_outputs(uint8_program: torch.export.ExportedProgram) -> None:
    exported = graph_op_counts(uint8_program)
    assert exported['aten.conv2d.default'] == 2
    assert exported['aten.batch_norm.default'] == 1
    assert exported['aten.grid_sampler.default'] == 1
    decomposed = decompose_for_trt(uint8_program)
    assert graph_op_counts(decomposed) == SEGNET_OPS
    # The input program is left as it was, and the lowering keeps the results.
    assert graph_op_counts(uint8_program) == exported
    x = torch.randn(INPUT_SHAPE)
    expected = uint8_program.module()(x)
    assert expected.dtype == torch.uint8
    assert torch.equal(decomposed.module()(x), expected)


def test_uint8_cast_is_rejected_by_the_to_copy_validator(
    uint8_program: torch.export.ExportedProgram,
) -> None:
    assert unconverted_ops(uint8_program) == {'aten._to_copy.default': 1}
    assert unconverted_ops(uint8_program, validators=False) == {}


def test_static_segnet_with_int32_labels_converts(
    int32_program: torch.export.ExportedProgram,
) -> None:
    assert unconverted_ops(int32_program) == {}
    decomposed = decompose_for_trt(int32_program)
    assert unconverted_ops(decomposed, decompose=False) == {}
    # The assert node is in the graph but Torch-TensorRT's lowering erases it.
    assert graph_op_counts(decomposed)['aten._assert_tensor_metadata.default'] == 1


def test_dynamic_segnet_converts_and_follows_the_resolution() -> None:
    torch.manual_seed(0)
    module = SegNet(torch.int32).eval()
    program = _export(module, dynamic=True)
    decomposed = decompose_for_trt(program)
    counts = graph_op_counts(decomposed)
    assert counts['aten.sym_size.int'] == 2
    assert counts['operator.sub'] == 2
    assert counts['aten.grid_sampler_2d.default'] == 1
    assert unconverted_ops(program) == {}
    x = torch.randn(1, 3, 96, 160)
    labels = decomposed.module()(x)
    assert labels.shape == (1, 96, 160)
    assert torch.equal(labels, module(x))


def test_dynamic_scalar_step_is_reported_as_sym_float() -> None:
    program = _export(SegNet(torch.int32, scalar_first=True), dynamic=True)
    counts = graph_op_counts(decompose_for_trt(program))
    assert counts['torch.sym_float'] == 2
    assert counts['operator.truediv'] == 2
    assert unconverted_ops(program) == {'torch.sym_float': 2}
    # With static shapes the step is a constant and no symbolic node is left.
    assert unconverted_ops(_export(SegNet(torch.int32, scalar_first=True))) == {}


def test_op_without_converter_is_reported_with_its_count() -> None:
    def two_cummax(x: torch.Tensor) -> torch.Tensor:
        return torch.cummax(x, dim=1).values + torch.cummax(x, dim=3).values

    # The getitem on each cummax output has no convertible parent, as in Torch-TensorRT.
    assert _unconverted(two_cummax) == {'aten.cummax.default': 2, 'operator.getitem': 2}
    program = _export(Lambda(two_cummax), shape=(1, 4, 8, 12))
    assert unconverted_ops(program, validators=False) == {'aten.cummax.default': 2}


def test_op_outside_the_decomposition_groups_stays_whole() -> None:
    # torch's default table would split glu into convertible ops; Torch-TensorRT 2.13 does not.
    assert torch.ops.aten.glu.default in torch.export.default_decompositions()
    assert _unconverted(lambda x: F.glu(x, dim=1)) == {'aten.glu.default': 1}


def test_decomposition_groups_are_applied() -> None:
    def ops(fn: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, int]:
        return graph_op_counts(decompose_for_trt(_export(Lambda(fn), shape=(1, 4, 8, 12))))

    # Enabled group: decomposed although hardtanh has a converter.
    assert ops(F.hardtanh) == {'aten.clamp.default': 1}
    # stack (enabled group) becomes cat and view, and view becomes _reshape_copy (own).
    stacked = ops(lambda x: torch.stack([x, x]))
    assert stacked == {'aten._reshape_copy.default': 1, 'aten.cat.default': 1}
    # Disabled group: nearest upsampling stays whole.
    nearest = ops(lambda x: F.interpolate(x, scale_factor=2.0, mode='nearest'))
    assert nearest == {'aten.upsample_nearest2d.vec': 1}
    # Own decompositions: full_like becomes full, var goes through prims.var to plain ops,
    # log_softmax becomes log of softmax.
    assert ops(lambda x: torch.ones_like(x) * x) == {'aten.full.default': 1, 'aten.mul.Tensor': 1}
    assert ops(lambda x: x.var(dim=(2, 3))) == {
        'aten.div.Tensor': 1,
        'aten.mean.dim': 1,
        'aten.mul.Tensor': 1,
        'aten.sub.Tensor': 1,
        'aten.sum.dim_IntList': 1,
    }
    log_softmax = ops(lambda x: F.log_softmax(x, dim=1))
    assert log_softmax == {'aten._softmax.default': 1, 'aten.log.default': 1}


def test_rewritten_decompositions_keep_the_values() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 12)
    cases: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        'prims.var': lambda t: t.var(dim=(2, 3)),
        'prims.var, correction 0': lambda t: t.std(dim=1, correction=0),
        'full_like': lambda t: torch.full_like(t, 3.0) - t,
        '_log_softmax': lambda t: F.log_softmax(t, dim=1),
        'instance_norm': lambda t: F.instance_norm(t),
        'rsqrt': lambda t: torch.rsqrt(t.abs() + 1.0),
    }
    for name, fn in cases.items():
        program = decompose_for_trt(torch.export.export(Lambda(fn), (x,)))
        assert torch.allclose(program.module()(x), fn(x), atol=1e-5), name


def test_max_pool_validator_is_emulated() -> None:
    assert _unconverted(lambda x: F.max_pool2d(x, 3, 2, 1)) == {}
    rejected = {'aten.max_pool2d_with_indices.default': 1, 'operator.getitem': 1}
    assert _unconverted(lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True)) == rejected
    assert _unconverted(lambda x: F.max_pool2d(x, 3, 2, 1, dilation=2)) == rejected


def test_decomposition_table_is_a_fresh_copy() -> None:
    table = trt_decomposition_table()
    upsample = torch.ops.aten.upsample_bilinear2d.vec
    assert upsample not in table
    # A CompositeImplicitAutograd op outside the disabled group, and one from the enabled group.
    assert torch.ops.aten.conv2d.default in table
    assert torch.ops.aten.hardtanh.default in table
    table.clear()
    assert len(trt_decomposition_table()) > 500
