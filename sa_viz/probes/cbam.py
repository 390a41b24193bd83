"""CBAM (Woo et al., 2018): a channel gate per channel, then one spatial gate map shared by all
channels, read at timm's `CbamModule` and `LightCbamModule` (its `channel` and `spatial` parts).

The spatial gate multiplies the channel-gated features, so its layout has one map per row
(`spatial_channels=1`), not one per channel. timm's light channel part computes its sigmoid in a
function call: its gate is read from the `fc2` before it."""

from __future__ import annotations

import torch
from timm.layers.cbam import CbamModule, LightCbamModule, LightChannelAttn
from torch import nn

from sa_viz.probes.base import (
    GateLayout,
    Probe,
    Tap,
    block_of,
    gate_function,
    has_parts,
    stage_of,
)


class CbamProbe(Probe):
    kind = "CBAM"
    unit_type = (CbamModule, LightCbamModule)

    def matches(self, module: nn.Module) -> bool:
        if super().matches(module):
            return True
        parts = module._modules
        return has_parts(parts.get("channel"), "fc1", "fc2", "gate") and has_parts(
            parts.get("spatial"), "conv", "gate"
        )

    def unit_name(self, path: str) -> str:
        return block_of(path)

    def taps(self, unit: nn.Module) -> list[Tap]:
        if isinstance(unit.channel, LightChannelAttn):  # σ in the forward, its `gate` unused
            channel = Tap("channel", unit.channel.fc2, read=torch.sigmoid)
        else:
            channel = Tap("channel", unit.channel.gate)
        return [channel, Tap("spatial", unit.spatial.gate)]

    def layout(self, name: str, unit: nn.Module) -> GateLayout:
        light = isinstance(unit.channel, LightChannelAttn)
        return GateLayout(
            self.kind,
            stage_of(name),
            1,
            unit.channel.fc2.out_channels,
            True,
            spatial_channels=1,
            channel_function="sigmoid" if light else gate_function(unit.channel.gate),
            spatial_function=gate_function(unit.spatial.gate),
            gated="each channel of the unit's input (channel gate); then every channel of the "
            "channel-gated features at each position (one spatial map)",
        )


PROBE = CbamProbe()
