"""What every probe shares: the layout of a unit's gates, the copied gates, their statistics."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class GateLayout:
    """How one attention unit's gates are arranged.

    `kind`: the attention type's short name ("SA", "SE", "CBAM"); `stage`: the network stage
    (1–4) the unit sits in; `groups`: G, the rows the gates come in (groups of channels for SA,
    one for SE, the radix splits or kernel paths for a softmax over them: `rows` names them);
    `channels`: c, channel-gate values per row (0 for a unit without a channel gate);
    `spatial`: whether the unit has a spatial gate; `spatial_channels`: its maps per row (one for
    CBAM and Global Context; None: as many as `channels`, as in SA); `untrained_value`: the
    value every gate of a unit with its initial parameters takes (None where there is none).

    `channel_function` and `spatial_function` say how the gates are made: "sigmoid" (each value
    on its own, in (0, 1)), "hard sigmoid", or "softmax": for a channel gate, across the G rows
    for each channel (the G values of a channel sum to 1); for a spatial gate, across the h·w
    positions (each map sums to 1). `gated` says, in words, what the gates multiply.
    """

    kind: str
    stage: int
    groups: int
    channels: int
    spatial: bool
    untrained_value: float | None = None
    spatial_channels: int | None = None
    channel_function: str = "sigmoid"
    spatial_function: str = "sigmoid"
    rows: str = "group"
    gated: str = ""

    @property
    def details(self) -> dict[str, Any]:
        """What `layout` in the explanation document does not say: spatial maps, gate functions,
        rows, what is gated (its `details`, added to schema 1 as an optional key)."""
        return {name: getattr(self, name) for name in _LAYOUT_DETAILS}

    @property
    def spatial_maps(self) -> int:
        """Spatial-gate maps per row (0 for a unit without a spatial gate)."""
        if not self.spatial:
            return 0
        return self.channels if self.spatial_channels is None else self.spatial_channels

    def describe(self) -> str:
        """One line for people: "CBAM unit, stage 2: channel gates: 512 channels, sigmoid;
        spatial gates: 1 map, sigmoid"."""
        rows = f"{self.groups} {self.rows}s × " if self.groups > 1 else ""
        parts = []
        if self.channels:
            how = self._how(self.channel_function, "the " + self.rows + "s")
            parts.append(f"channel gates: {rows}{self.channels} channels, {how}")
        if self.spatial:
            how = self._how(self.spatial_function, "the positions")
            maps = f"{self.spatial_maps} map" + ("s" if self.spatial_maps > 1 else "")
            parts.append(f"spatial gates: {rows}{maps}, {how}")
        return f"{self.kind} unit, stage {self.stage}: " + "; ".join(parts)

    @staticmethod
    def _how(function: str, over: str) -> str:
        return f"softmax over {over}" if function == "softmax" else function


_LAYOUT_DETAILS = ("spatial_channels", "channel_function", "spatial_function", "rows", "gated")


@dataclass(frozen=True)
class UnitGates:
    """The gates of one unit for a batch, copied out of the forward pass (on the CPU).

    `channel`: (B, G, c) channel-gate values, or None for a unit without one (Global Context
    in timm's `gca` setting); `spatial`: (B, G, c, h, w) spatial-gate values (c: the layout's
    `spatial_maps`, 1 for CBAM), or None for a unit without one; all in [0, 1], one row per
    group (or radix split, or kernel path: see the layout), read at the gates.
    """

    channel: torch.Tensor | None = None
    spatial: torch.Tensor | None = None
    layout: GateLayout | None = None

    def __post_init__(self) -> None:
        if self.channel is None and self.spatial is None:
            raise ValueError("a unit's gates need a channel gate, a spatial gate or both")

    @property
    def groups(self) -> int:
        return (self.channel if self.channel is not None else self.spatial).shape[1]

    @property
    def channels(self) -> int:
        """c: channel-gate values per group (0 for a unit without a channel gate)."""
        return 0 if self.channel is None else self.channel.shape[2]

    @property
    def has_channel(self) -> bool:
        return self.channel is not None

    @property
    def channels_per_half(self) -> int:  # the SA paper's name for c
        return self.channels

    @property
    def has_spatial(self) -> bool:
        return self.spatial is not None

    def spatial_mean(self) -> torch.Tensor:
        """(B, G, h, w): each group's spatial gate averaged over its c channels."""
        if self.spatial is None:
            raise ValueError("this unit has no spatial gate")
        # In NumPy: pictures are drawn on several threads, and a torch op there wakes torch's
        # intra-op threads, which then spin (measured: ~8–9 ms of CPU per set of pictures).
        return torch.from_numpy(self.spatial.numpy().mean(axis=2))


@dataclass(frozen=True)
class Tap:
    """A submodule whose output is a gate: "channel" (N·G, c, 1, 1) or "spatial" (N·G, c, h, w),
    where N is the batch and G the unit's groups.

    Where the module computes its gate in a function call, not a submodule (Global Context's
    softmax, a `F.sigmoid`), `module` is the nearest submodule before it and `read` makes the
    gate from that module's output, as the unit itself does. A tap with `read` is not itself
    the gate, so an intervention cannot replace the gate there."""

    kind: str
    module: nn.Module
    read: Callable[[torch.Tensor], torch.Tensor] | None = None


class Probe:
    """Where one attention type's units are and how their gates are read. A subclass per type,
    in its own file under `sa_viz/probes/`, defines `PROBE = TheProbe()`; nothing else changes."""

    kind: str = ""  # short name shown to people ("SA")
    unit_type: type[nn.Module] | tuple[type[nn.Module], ...] = nn.Module

    def units(self, model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
        """(unit name, unit module) for every unit of this type, in forward order."""
        for path, module in model.named_modules():
            if self.matches(module):
                yield self.unit_name(path), module

    def matches(self, module: nn.Module) -> bool:
        """Whether `module` is a unit of this type: by default an instance of `unit_type` (or of
        a subclass); a probe may also recognise a module by the submodules that compute it."""
        return isinstance(module, self.unit_type)

    def unit_name(self, path: str) -> str:
        return path

    def taps(self, unit: nn.Module) -> list[Tap]:
        raise NotImplementedError

    def layout(self, name: str, unit: nn.Module) -> GateLayout:
        raise NotImplementedError

    def untrained(self, unit: nn.Module) -> bool:
        """True when the unit's gate parameters still have an init that makes every gate one
        constant (a checkpoint that never trained them)."""
        return False


# The spatial gate's figures per group, as the explanation document and a study's rows keep them.
SPATIAL_SUMMARIES = ("spatial_mean", "spatial_std", "spatial_entropy", "peak_y", "peak_x")


@dataclass(frozen=True)
class GateStats:
    """Mean and spread of one unit's gates, per group and over all groups (for one image).
    The spatial figures are None for a unit without a spatial gate.

    The spatial figures are those of each group's spatial map, its c spatial channels averaged
    (`UnitGates.spatial_mean`): its mean, its standard deviation over the positions (how
    unevenly the group attends over the image), its entropy (0: one position; 1: uniform) and
    the position of its peak (0–1 from the top left). The page's chart, the explanation
    document and a study's rows all give these same numbers (`unit_summary`)."""

    channel_mean: np.ndarray | None  # (G,), None for a unit without a channel gate
    channel_std: np.ndarray | None  # (G,)
    spatial_mean: np.ndarray | None = None  # (G,)
    spatial_std: np.ndarray | None = None  # (G,)
    spatial_entropy: np.ndarray | None = None  # (G,)
    peak_y: np.ndarray | None = None  # (G,)
    peak_x: np.ndarray | None = None  # (G,)

    def summary(self) -> dict[str, float]:
        """The unit's figures over all groups, as people compare them across units."""
        out = {}
        if self.channel_mean is not None and self.channel_std is not None:
            out |= {
                "channel_mean": float(self.channel_mean.mean()),
                "channel_std": float(self.channel_std.mean()),
                "channel_group_spread": float(self.channel_mean.std()),
            }
        if self.spatial_mean is not None and self.spatial_std is not None:
            out |= {
                "spatial_mean": float(self.spatial_mean.mean()),
                "spatial_std": float(self.spatial_std.mean()),
                "spatial_group_spread": float(self.spatial_mean.std()),
            }
        return out


def gate_stats(gates: UnitGates, index: int = 0) -> GateStats:
    """The per-group figures of the gates of image `index` of the batch (see `GateStats`)."""
    channel = None if gates.channel is None else gates.channel[index].numpy().astype(np.float64)
    channel_mean = None if channel is None else channel.mean(1)
    channel_std = None if channel is None else channel.std(1)
    if gates.spatial is None:
        return GateStats(channel_mean, channel_std)
    # In NumPy, not torch: the page computes this on its render threads (see `is_constant`).
    maps = gates.spatial[index].numpy().mean(axis=1, dtype=np.float64)  # (G, h, w)
    g, h, w = maps.shape
    flat = maps.reshape(g, -1)
    p = flat / flat.sum(1, keepdims=True)
    entropy = -(p * np.log(np.maximum(p, 1e-12))).sum(1) / math.log(max(2, h * w))
    peak = flat.argmax(1)
    return GateStats(
        channel_mean=channel_mean,
        channel_std=channel_std,
        spatial_mean=flat.mean(1),
        spatial_std=flat.std(1),
        spatial_entropy=entropy,
        peak_y=(peak // w + 0.5) / h,
        peak_x=(peak % w + 0.5) / w,
    )


def unit_summary(gates: UnitGates, index: int) -> dict[str, Any]:
    """One unit's gates of one image as the explanation document and a study's rows keep them:
    `channel`, all G·c channel-gate values group by group (None for a unit without a channel
    gate); `groups`; and per group the spatial figures of `GateStats` (None for a unit without a
    spatial gate, as SE's)."""
    stats = gate_stats(gates, index)
    channel = None if gates.channel is None else gates.channel[index].flatten().tolist()
    summary: dict[str, Any] = {
        "channel": channel,
        "groups": gates.groups,
    }
    return summary | {
        name: None if getattr(stats, name) is None else getattr(stats, name).tolist()
        for name in SPATIAL_SUMMARIES
    }


def is_constant(gates: UnitGates, tol: float = 1e-6) -> bool:
    """True when every gate value is the same: the sign of a unit that was never trained."""
    # In NumPy: the gate explorer calls this on its render threads, where a torch op wakes
    # torch's intra-op threads (see `UnitGates.spatial_mean`).
    parts = [t.numpy() for t in (gates.channel, gates.spatial) if t is not None]
    low = min(float(p.min()) for p in parts)
    high = max(float(p.max()) for p in parts)
    return high - low <= tol


def stage_of(path: str) -> int:
    """The stage of a unit inside a ResNet-style `layer<N>.<block>` or timm's `stages.<N-1>.…`
    (0 when in neither)."""
    head, _, rest = path.partition(".")
    if head.startswith("layer") and head[5:].isdigit():
        return int(head[5:])
    index = rest.split(".", 1)[0]
    return int(index) + 1 if head == "stages" and index.isdigit() else 0


def block_of(path: str) -> str:
    """The block a unit sits in, which names it: "layer3.0.se" → "layer3.0"."""
    return path.rpartition(".")[0] or path


def gate_function(module: nn.Module | None) -> str:
    """What a gate activation module computes, in the layout's words ("sigmoid", "hard sigmoid")."""
    name = type(module).__name__.lower()
    if "sigmoid" in name:
        return "hard sigmoid" if "hard" in name else "sigmoid"
    return "softmax" if "softmax" in name else name


def has_parts(module: object, *names: str) -> bool:
    """Whether `module` has all these submodules or attributes. (Read from its dicts, not with
    `hasattr`: an `nn.Module` answers a missing name by raising inside `__getattr__`, which made
    matching every module of a ResNet-50 against every probe take milliseconds.)"""
    if not isinstance(module, nn.Module):
        return False
    return all(n in module._modules or n in module.__dict__ for n in names)


def is_conv1x1(module: nn.Module | None) -> bool:
    return isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1)
