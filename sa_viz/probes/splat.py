"""Split Attention (ResNeSt's `SplitAttn`, `resnest50d`): the block's 3×3 conv makes R radix
splits of the features; per channel a softmax across the R splits weights them before they are
summed (a sigmoid per channel when R = 1). Read at its `rsoftmax` (timm's `RadixSoftmax`),
whose output (N, R·C) is ordered split by split: one row per split."""

from __future__ import annotations

import torch
from timm.layers import SplitAttn
from torch import nn

from sa_viz.probes.base import GateLayout, Probe, Tap, block_of, has_parts, stage_of


class SplitAttentionProbe(Probe):
    kind = "SplAt"
    unit_type = SplitAttn

    def matches(self, module: nn.Module) -> bool:
        if super().matches(module):
            return True
        rsoftmax = module._modules.get("rsoftmax")
        return has_parts(rsoftmax, "radix", "cardinality") and has_parts(
            module, "conv", "fc1", "fc2", "radix"
        )

    def unit_name(self, path: str) -> str:
        return block_of(path)

    def taps(self, unit: nn.Module) -> list[Tap]:
        radix = unit.radix

        def per_split(weights: torch.Tensor) -> torch.Tensor:  # (N, R·C) → (N·R, C, 1, 1)
            return weights.reshape(weights.shape[0] * radix, -1, 1, 1)

        return [Tap("channel", unit.rsoftmax, read=per_split)]

    def layout(self, name: str, unit: nn.Module) -> GateLayout:
        return GateLayout(
            self.kind,
            stage_of(name),
            unit.radix,
            unit.fc2.out_channels // unit.radix,
            False,
            channel_function="softmax" if unit.radix > 1 else "sigmoid",
            rows="radix split",
            gated="each channel of each radix split of the conv's features, which are then summed",
        )


PROBE = SplitAttentionProbe()
