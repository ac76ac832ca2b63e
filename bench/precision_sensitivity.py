"""How far reduced precision moves a checkpoint's masks, next to how far camera noise does.

For one checkpoint, on the parity gate's frames (the images in ``--images``, e.g. CamVid val,
else synthetic), all against the eager fp32 frame graph (folded, as the engines are):

- ``bf16 mixed``: the engines' bf16 policy (every convolution bf16; grids, logits and fusion
  fp32);
- ``bf16 encoder only``: the earlier policy (backbone and MFAM bf16, the rest fp32);
- ``bf16 stem``: only the deep stem in bf16, the smallest perturbation bf16 can make;
- ``fp32 + 1 LSB noise``: fp32 on the frames with uniform noise in {-1, 0, +1} grey levels.

For each: argmax agreement (the gate's floor is 99.5 %), and the median, p99 and largest fp32
top-2 logit margin of the pixels that flipped: the gate's ``tie_margin`` was set from the noise
row (docs/engine.md, "How the thresholds were set"). Masks only, no timings.

    .venv/bin/python bench/precision_sensitivity.py --images ../shared/data/camvid/val \
        --checkpoint CKPT --size 360 480 --frames 16 \
        --json bench/results/precision_sensitivity_val_360x480.json
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from segnode.engine.graph import Cast, deploy_model, frame_graph, reduced_precision
from segnode.engine.parity import gate_frames
from segnode.files import write_json
from segnode.model.checkpoint import build_from_checkpoint
from segnode.model.deploy import FrameToMask

Variant = Callable[[FrameToMask], FrameToMask]


def stem_only(graph: FrameToMask) -> FrameToMask:
    """Only the deep stem (``backbone.layer0``) in bf16."""
    backbone = graph.model.backbone
    backbone.layer0 = Cast(backbone.layer0, torch.bfloat16, out=torch.float32)
    return graph


def encoder_only(graph: FrameToMask) -> FrameToMask:
    """Only the encoder (backbone and MFAM) in bf16: the policy before issue 17."""
    model = graph.model
    model.backbone = Cast(model.backbone, torch.bfloat16, out=torch.bfloat16)
    model.mfam = Cast(model.mfam, torch.bfloat16, out=torch.float32)
    return graph


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--size', type=int, nargs=2, default=(360, 480), metavar=('H', 'W'))
    parser.add_argument('--frames', type=int, default=4)
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--seed', type=int, default=0, help='seed of the noise')
    parser.add_argument('--images', default='', help='gate images (default: synthetic)')
    parser.add_argument('--json', type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, _ = build_from_checkpoint(args.checkpoint)
    frames_np, source = gate_frames(args.frames, *args.size, folder=args.images)
    frames = torch.from_numpy(np.ascontiguousarray(frames_np))

    def logits_graph() -> FrameToMask:
        return frame_graph(deploy_model(model, fold_bn=True), logits=True)

    generator = torch.Generator().manual_seed(args.seed)
    noise = torch.randint(-1, 2, frames.shape, generator=generator)
    noisy = (frames.int() + noise).clamp(0, 255).to(torch.uint8)
    with torch.inference_mode():
        ref = logits_graph()(frames)
        top2 = ref.topk(2, dim=1).values
        margin, ref_mask = top2[:, 0] - top2[:, 1], ref.argmax(1)

        def compare(name: str, out: Tensor) -> dict[str, float | str]:
            flipped = out.float().argmax(1) != ref_mask
            row: dict[str, float | str] = {
                'variant': name,
                'agreement': float(1 - flipped.float().mean()),
                'max_abs_logit_diff': float((out.float() - ref).abs().max()),
                'flipped_margin_median': float(margin[flipped].median()) if flipped.any() else 0.0,
                'flipped_margin_p99': float(margin[flipped].quantile(0.99))
                if flipped.any()
                else 0.0,
                'flipped_margin_max': float(margin[flipped].max()) if flipped.any() else 0.0,
            }
            print(
                f'{name:22s} agreement {row["agreement"]:.5%}  max |diff| '
                f'{row["max_abs_logit_diff"]:.3g}  median fp32 margin of flipped pixels '
                f'{row["flipped_margin_median"]:.4f}, p99 {row["flipped_margin_p99"]:.4f}, '
                f'max {row["flipped_margin_max"]:.4f}',
                flush=True,
            )
            return row

        variants: dict[str, Variant] = {
            'bf16 mixed': lambda g: reduced_precision(g, torch.bfloat16),
            'bf16 encoder only': encoder_only,
            'bf16 stem': stem_only,
        }
        rows = [compare(name, make(logits_graph())(frames)) for name, make in variants.items()]
        rows.append(compare('fp32 + 1 LSB noise', logits_graph()(noisy)))
    result = {
        'checkpoint': args.checkpoint,
        'frames': f'{args.frames} {source} at {args.size[0]}x{args.size[1]}',
        'small_margin_fraction': float((margin < 0.05).float().mean()),
        'rows': rows,
    }
    if args.json:
        write_json(result, args.json)
        print(f'wrote {args.json}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
