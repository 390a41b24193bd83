"""Selective Kernel (SKNet, timm's `SelectiveKernel` in `skresnext50_32x4d`): per channel a
softmax across the unit's kernel paths (a 3×3 and a dilated 3×3 conv) weights them before they
are summed. Read at its `attn` (`SelectiveKernelAttn`), whose output is (N, paths, C, 1, 1):
one row per path."""

from __future__ import annotations

import torch
from timm.layers import SelectiveKernel
from torch import nn

from sa_viz.probes.base import GateLayout, Probe, Tap, block_of, has_parts, stage_of


def per_path(weights: torch.Tensor) -> torch.Tensor:
    """(N, paths, C, 1, 1) → (N·paths, C, 1, 1)."""
    return weights.reshape(-1, *weights.shape[2:])


class SelectiveKernelProbe(Probe):
    kind = "SK"
    unit_type = SelectiveKernel

    def matches(self, module: nn.Module) -> bool:
        if super().matches(module):
            return True
        parts = module._modules
        return isinstance(parts.get("paths"), nn.ModuleList) and has_parts(
            parts.get("attn"), "fc_reduce", "fc_select", "num_paths"
        )

    def unit_name(self, path: str) -> str:
        return block_of(path)

    def taps(self, unit: nn.Module) -> list[Tap]:
        return [Tap("channel", unit.attn, read=per_path)]

    def layout(self, name: str, unit: nn.Module) -> GateLayout:
        paths = unit.attn.num_paths
        return GateLayout(
            self.kind,
            stage_of(name),
            paths,
            unit.attn.fc_select.out_channels // paths,
            False,
            channel_function="softmax",
            rows="kernel path",
            gated="each channel of each kernel path's features, which are then summed",
        )


PROBE = SelectiveKernelProbe()
