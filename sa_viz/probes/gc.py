"""Global Context (GCNet, timm's `GlobalContext` in `gcresnet50t`): a softmax over the positions
pools the features into one context vector per image; with timm's default (`gc`) a sigmoid
channel gate of that context multiplies the features, with its `gca` setting the context is
added to every position instead and the `gate` submodule never runs.

The softmax is computed in a function call: it is read from `conv_attn`, the 1×1 conv whose
output it normalises, the same way the unit does. Its values sum to 1 over a map's positions:
they weight the pooling, they do not multiply the features."""

from __future__ import annotations

import torch
from timm.layers import GlobalContext
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


def softmax_over_positions(logits: torch.Tensor) -> torch.Tensor:
    """(N, 1, h, w) attention logits → the same shape, each map summing to 1."""
    return torch.softmax(logits.flatten(1), dim=1).reshape(logits.shape)


class GlobalContextProbe(Probe):
    kind = "GC"
    unit_type = GlobalContext

    def matches(self, module: nn.Module) -> bool:
        built_like_gc = has_parts(module, "conv_attn", "mlp_add", "mlp_scale", "gate")
        return (super().matches(module) or built_like_gc) and bool(self.taps(module))

    def unit_name(self, path: str) -> str:
        return block_of(path)

    def taps(self, unit: nn.Module) -> list[Tap]:
        taps = []
        if unit.conv_attn is not None:
            taps.append(Tap("spatial", unit.conv_attn, read=softmax_over_positions))
        if unit.mlp_scale is not None:  # the sigmoid gate runs only with `fuse_scale`
            taps.append(Tap("channel", unit.gate))
        return taps

    def layout(self, name: str, unit: nn.Module) -> GateLayout:
        scale, add = unit.mlp_scale is not None, unit.mlp_add is not None
        gated = "each channel of the unit's input, by a gate of the context" if scale else ""
        if add:
            gated += ("; " if gated else "") + "the context is added to every position"
        if unit.conv_attn is not None:
            gated = "the context pools the positions weighted by the spatial softmax; " + gated
        return GateLayout(
            self.kind,
            stage_of(name),
            1,
            unit.mlp_scale.fc2.out_channels if scale else 0,
            unit.conv_attn is not None,
            spatial_channels=1,
            channel_function=gate_function(unit.gate) if scale else "",
            spatial_function="softmax",
            gated=gated,
        )


PROBE = GlobalContextProbe()
