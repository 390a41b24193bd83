"""Efficient Channel Attention (ECA-Net): one channel gate per channel, a sigmoid of a 1-D
convolution across the pooled channels, read at the unit's `gate` (timm's `EcaModule` and its
circular-padding `CecaModule`, as in `ecaresnet50d`)."""

from __future__ import annotations

import weakref
from collections.abc import Iterator

from timm.layers import CecaModule, EcaModule
from torch import nn

from sa_viz.probes.base import GateLayout, Probe, Tap, block_of, gate_function, stage_of


class EfficientChannelAttentionProbe(Probe):
    kind = "ECA"
    unit_type = (EcaModule, CecaModule)

    def __init__(self) -> None:
        # An ECA unit does not know its channel count; the block's layer before it does.
        self._widths: weakref.WeakKeyDictionary[nn.Module, int] = weakref.WeakKeyDictionary()

    def matches(self, module: nn.Module) -> bool:
        if super().matches(module):
            return True
        parts = module._modules
        return (
            isinstance(parts.get("conv"), nn.Conv1d)
            and "gate" in parts
            and set(parts) <= {"conv", "act", "conv2", "gate"}
        )

    def units(self, model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
        before: tuple[str, int] | None = None  # the last module with a known width
        for path, module in model.named_modules():
            if self.matches(module):
                if before is not None and before[0].startswith(block_of(path) + "."):
                    self._widths[module] = before[1]
                yield self.unit_name(path), module
            if isinstance(module, nn.modules.batchnorm._NormBase):
                before = (path, module.num_features)
            elif isinstance(module, nn.modules.conv._ConvNd):
                before = (path, module.out_channels)

    def unit_name(self, path: str) -> str:
        return block_of(path)

    def taps(self, unit: nn.Module) -> list[Tap]:
        return [Tap("channel", unit.gate)]

    def layout(self, name: str, unit: nn.Module) -> GateLayout:
        return GateLayout(
            self.kind,
            stage_of(name),
            1,
            self._widths.get(unit, 0),
            False,
            channel_function=gate_function(unit.gate),
            gated="each channel of the unit's input (the block's features before the residual add)",
        )


PROBE = EfficientChannelAttentionProbe()
