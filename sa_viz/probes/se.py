"""Squeeze-and-Excitation (SE-Net): one channel gate per channel (one group), read at the
`nn.Sigmoid` that ends each `SEModule` of timm's SENet family."""

from __future__ import annotations

from timm.models.senet import SEModule
from torch import nn

from sa_viz.probes.base import GateLayout, Probe, Tap, stage_of


class SqueezeExcitationProbe(Probe):
    kind = "SE"
    unit_type = SEModule

    def unit_name(self, path: str) -> str:
        return path.removesuffix(".se_module")  # "layer3.0.se_module" → "layer3.0"

    def taps(self, unit: nn.Module) -> list[Tap]:
        return [Tap("channel", unit.sigmoid)]

    def layout(self, name: str, unit: nn.Module) -> GateLayout:
        return GateLayout(self.kind, stage_of(name), 1, unit.fc2.out_channels, False)


PROBE = SqueezeExcitationProbe()
