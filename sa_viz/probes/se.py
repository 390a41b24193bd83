"""Squeeze-and-Excitation (SE-Net): one channel gate per channel (one group), read at the gate
activation that ends each unit: timm's `SEModule` (`seresnet50`), its `EffectiveSEModule`, the
legacy `timm.models.senet.SEModule` (SA-Viz's SE-ResNet-50), or any module built the same way."""

from __future__ import annotations

from timm.layers import EffectiveSEModule
from timm.layers import SEModule as TimmSEModule
from timm.models.senet import SEModule as LegacySEModule
from torch import nn

from sa_viz.probes.base import (
    GateLayout,
    Probe,
    Tap,
    block_of,
    gate_function,
    is_conv1x1,
    stage_of,
)

# The submodules an SE unit may have: squeeze (mean, no module), excite (one or two 1×1 convs,
# an optional norm and activation between), gate. Anything else is not an SE unit.
_SE_PARTS = {"fc", "fc1", "fc2", "bn", "act", "relu", "gate", "sigmoid"}


class SqueezeExcitationProbe(Probe):
    kind = "SE"
    unit_type = (TimmSEModule, EffectiveSEModule, LegacySEModule)

    def matches(self, module: nn.Module) -> bool:
        return super().matches(module) or _built_like_se(module)

    def unit_name(self, path: str) -> str:
        return block_of(path)  # "layer3.0.se_module" → "layer3.0", the bottleneck's name

    def taps(self, unit: nn.Module) -> list[Tap]:
        return [Tap("channel", _gate(unit))]

    def layout(self, name: str, unit: nn.Module) -> GateLayout:
        return GateLayout(
            self.kind,
            stage_of(name),
            1,
            _excite(unit)[-1].out_channels,
            False,
            channel_function=gate_function(_gate(unit)),
            gated="each channel of the unit's input (the block's features before the residual add)",
        )


def _gate(unit: nn.Module) -> nn.Module:
    return unit.gate if hasattr(unit, "gate") else unit.sigmoid


def _excite(unit: nn.Module) -> list[nn.Module]:
    return [unit.fc1, unit.fc2] if hasattr(unit, "fc1") else [unit.fc]


def _built_like_se(module: nn.Module) -> bool:
    """One or two 1×1 convs from the input's width back to it, then a sigmoid-like gate."""
    parts = module._modules
    if not parts or not set(parts) <= _SE_PARTS or not {"gate", "sigmoid"} & set(parts):
        return False
    if gate_function(_gate(module)) not in ("sigmoid", "hard sigmoid"):
        return False
    excite = [parts.get(n) for n in (("fc1", "fc2") if "fc1" in parts else ("fc",))]
    return all(is_conv1x1(m) for m in excite) and excite[-1].out_channels == excite[0].in_channels


PROBE = SqueezeExcitationProbe()
