"""The graphs the backends compile: frames to masks, and frames to logits for the parity gate.

Deployment order (docs/engine.md): load checkpoint, fold the equalizers (and the BatchNorms
where the backend does not fold them itself), ``eval().to(device, dtype)``, export, compile.
The logits variant (``FrameToMask(logits=True)``) runs exactly the same normalisation and
resizes as the mask graph and stops before the argmax.

Reduced precision (``fp16``/``bf16``) for eager and torch-compile is mixed, as
:func:`reduced_precision` sets it: every convolution in the low dtype; the normalisation, the
flow grids and their ``grid_sample``, the score logits, the attention sigmoids, the fusion,
the upsample and the argmax in fp32.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn, Tensor

from segnode.config import DYNAMIC_MAX_SIDE, MIN_SIDE, STRIDE
from segnode.model.attention_fusion import AttentionBranch
from segnode.model.deploy import FrameToMask
from segnode.model.flow_align import FlowPredictor
from segnode.model.fold import fold_batchnorm, fold_equalizers
from segnode.model.mfaranet import MFARANet

__all__ = [
    'Cast',
    'deploy_model',
    'export_program',
    'frame_dims',
    'frame_graph',
    'reduced_precision',
]


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, Tensor) and value.is_floating_point():
        return value.to(dtype)
    if isinstance(value, list | tuple):
        return type(value)(_cast(v, dtype) for v in value)
    return value


class Cast(nn.Module):
    """Run ``module`` with its floating-point inputs cast to ``dtype`` and outputs to ``out``.

    Tensors and lists or tuples of tensors are cast; anything else passes through. The casts
    are explicit graph ops, so exported programs and compiled graphs carry them as they are.
    """

    def __init__(self, module: nn.Module, dtype: torch.dtype, out: torch.dtype) -> None:
        super().__init__()
        self.module = module.to(dtype)
        self.dtype, self.out = dtype, out

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Cast in, run, cast out."""
        args = tuple(_cast(a, self.dtype) for a in args)
        kwargs = {k: _cast(v, self.dtype) for k, v in kwargs.items()}
        return _cast(self.module(*args, **kwargs), self.out)


def reduced_precision(graph: FrameToMask, dtype: torch.dtype) -> FrameToMask:
    """Put every convolution of a frame graph in ``dtype``, in place; keep the rest fp32.

    The encoder (backbone and MFAM, about 80 % of the MACs; docs/model.md, "Counting
    conventions and MAC shares") runs wholly in ``dtype`` and hands its features on in it.
    The other convolutions take ``dtype`` in and give fp32 out where a sensitive op follows:

    - flow predictors: projections in ``dtype``, the 2-channel flow out in fp32, so the
      sampling grid and ``grid_sample`` stay fp32 (the grids lie in [-1, 1], where a bf16
      step is 2^-8, about half a pixel on a 256-pixel-wide /4 map; the warp samples
      low-dtype features in the grid's dtype);
    - score heads: class logits out in fp32;
    - ASFM attention: the 3x3 conv in ``dtype``, the 1x1 out in fp32 before its sigmoid.

    The fusion, the upsample and the argmax are fp32. A whole-``dtype`` graph, grids
    included, produced non-finite logits at 512x1024; this placement passes the parity gate
    on the trained checkpoint (docs/engine.md, "Mixed precision").
    """
    if dtype == torch.float32:
        return graph
    f32 = torch.float32
    model = graph.model
    model.backbone = Cast(model.backbone, dtype, out=dtype)  # type: ignore[assignment]
    model.mfam = Cast(model.mfam, dtype, out=dtype)  # type: ignore[assignment]
    for flow in model.ram.flows:
        assert isinstance(flow, FlowPredictor)
        flow.coarse_proj = Cast(flow.coarse_proj, dtype, out=dtype)  # type: ignore[assignment]
        flow.fine_proj = Cast(flow.fine_proj, dtype, out=dtype)  # type: ignore[assignment]
        flow.flow = Cast(flow.flow, dtype, out=f32)  # type: ignore[assignment]
    for i, head in enumerate(model.score_heads):
        model.score_heads[i] = Cast(head, dtype, out=f32)
    for branch in model.asfm.attentions:
        assert isinstance(branch, AttentionBranch)
        branch[0] = Cast(branch[0], dtype, out=dtype)
        branch[4] = Cast(branch[4], dtype, out=f32)
    return graph


def deploy_model(model: MFARANet, *, fold_bn: bool) -> MFARANet:
    """An eval-mode copy with the equalizers (and optionally the BatchNorms) folded."""
    folded = fold_equalizers(model)
    if fold_bn:
        folded = cast(MFARANet, fold_batchnorm(folded, inplace=True))
    return folded.eval()


def frame_graph(
    model: MFARANet,
    *,
    bgr: bool = False,
    input_size: tuple[int, int] | None = None,
    logits: bool = False,
    mask_dtype: torch.dtype = torch.uint8,
    confidence: bool = False,
    copy: bool = True,
) -> FrameToMask:
    """Wrap a deployment model: a mask graph, or (``logits``) the gate's logits graph.

    ``confidence`` adds the confidence output (masks and confidences out, both of
    ``mask_dtype``); without it the graph is exactly the mask graph.

    ``copy=False`` wraps ``model`` itself (a fresh ``deploy_model`` copy nobody else holds).
    """
    return FrameToMask(
        model,
        bgr=bgr,
        input_size=input_size,
        mask_dtype=mask_dtype,
        logits=logits,
        confidence=confidence,
        copy=copy,
    ).eval()


def frame_dims(batch: int, height: int, width: int, *, dynamic: bool) -> None:
    """Check a frame shape can be exported (dynamic sizes are multiples of ``STRIDE``)."""
    if batch < 1 or height < MIN_SIDE or width < MIN_SIDE:
        raise ValueError(
            f'frames must be at least {MIN_SIDE}x{MIN_SIDE} in batches >= 1, '
            f'got {batch}x{height}x{width}'
        )
    if dynamic and (height % STRIDE or width % STRIDE):
        raise ValueError(
            f'a dynamic engine needs H and W multiples of {STRIDE}, got {height}x{width}'
        )


def export_program(
    graph: FrameToMask, example: Tensor, *, dynamic: bool, max_side: int = DYNAMIC_MAX_SIDE
) -> torch.export.ExportedProgram:
    """``torch.export`` a frame graph on the example's device, static or with dynamic H/W.

    The example (and so every constant the trace creates, such as the flow grids' ``arange``)
    lives on the target device.
    """
    _, height, width, _ = example.shape
    frame_dims(example.shape[0], height, width, dynamic=dynamic)
    shapes = None
    if dynamic:
        h = STRIDE * torch.export.Dim('h32', min=2, max=max_side // STRIDE)
        w = STRIDE * torch.export.Dim('w32', min=2, max=max_side // STRIDE)
        shapes = {'frames': {1: h, 2: w}}
    with torch.no_grad():
        return torch.export.export(graph.eval(), (example,), dynamic_shapes=shapes, strict=False)
