"""Shuffle Attention (SA-Net): per group, a channel gate on one half of the group's channels and a
spatial gate on the other half, read at the unit's two `nn.Sigmoid` submodules."""

from __future__ import annotations

import math

from torch import nn

from sa_viz.models.attention import ShuffleAttention
from sa_viz.probes.base import GateLayout, Probe, Tap, stage_of

SIGMOID_1 = 1 / (1 + math.exp(-1))  # every gate of a unit with the paper's init (weights 0)


class ShuffleAttentionProbe(Probe):
    kind = "SA"
    unit_type = ShuffleAttention

    def unit_name(self, path: str) -> str:
        return path.removesuffix(".sa")  # "layer3.0.sa" → "layer3.0", the bottleneck's name

    def taps(self, unit: nn.Module) -> list[Tap]:
        return [Tap("channel", unit.channel_gate), Tap("spatial", unit.spatial_gate)]

    def layout(self, name: str, unit: nn.Module) -> GateLayout:
        return GateLayout(
            self.kind,
            stage_of(name),
            unit.groups,
            unit.channels_per_half,
            True,
            SIGMOID_1,
            gated="per group: each channel of its first half (channel gate); each channel of its "
            "second half at each position (spatial gate)",
        )

    def untrained(self, unit: nn.Module) -> bool:
        return unit.untrained  # the paper's init (weights 0, biases 1): every gate is σ(1)


PROBE = ShuffleAttentionProbe()
