"""MFARANet, Scale Equalizers, folding and checkpoints (imports torch, never ROS)."""

from __future__ import annotations

from segnode.model.mfaranet import build_mfaranet, MFARANet

__all__ = ['build_mfaranet', 'MFARANet']
