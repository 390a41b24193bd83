"""What every probe shares: the layout of a unit's gates, the copied gates, their statistics."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class GateLayout:
    """How one attention unit's gates are arranged.

    `kind`: the attention type's short name ("SA", "SE"); `stage`: the network stage (1–4) the
    unit sits in; `groups`: G, the groups the channels are split into (1 for SE); `channels`:
    c, channel-gate values per group; `spatial`: whether the unit has a spatial gate (one value
    per pixel of each of a group's c spatial channels); `untrained_value`: the value every gate
    of a unit with its initial parameters takes (None where there is no such value).
    """

    kind: str
    stage: int
    groups: int
    channels: int
    spatial: bool
    untrained_value: float | None = None

    def describe(self) -> str:
        gate = (
            f"{self.groups} groups × {self.channels} channels"
            if self.groups > 1
            else (f"{self.channels} channels")
        )
        return f"{self.kind} unit, stage {self.stage}: {gate}" + (
            ", channel and spatial gates" if self.spatial else ", channel gates"
        )


@dataclass(frozen=True)
class UnitGates:
    """The gates of one unit for a batch, copied out of the forward pass (on the CPU).

    `channel`: (B, G, c) channel-gate values; `spatial`: (B, G, c, h, w) spatial-gate values, or
    None for a unit without one; all in (0, 1), one row per group, read at the gates.
    """

    channel: torch.Tensor
    spatial: torch.Tensor | None = None
    layout: GateLayout | None = None

    @property
    def groups(self) -> int:
        return self.channel.shape[1]

    @property
    def channels(self) -> int:
        """c: channel-gate values per group."""
        return self.channel.shape[2]

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
    where N is the batch and G the unit's groups."""

    kind: str
    module: nn.Module


class Probe:
    """Where one attention type's units are and how their gates are read. A subclass per type,
    in its own file under `sa_viz/probes/`, defines `PROBE = TheProbe()`; nothing else changes."""

    kind: str = ""  # short name shown to people ("SA")
    unit_type: type[nn.Module] = nn.Module

    def units(self, model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
        """(unit name, unit module) for every unit of this type, in forward order."""
        for path, module in model.named_modules():
            if isinstance(module, self.unit_type):
                yield self.unit_name(path), module

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

    channel_mean: np.ndarray  # (G,)
    channel_std: np.ndarray  # (G,)
    spatial_mean: np.ndarray | None = None  # (G,)
    spatial_std: np.ndarray | None = None  # (G,)
    spatial_entropy: np.ndarray | None = None  # (G,)
    peak_y: np.ndarray | None = None  # (G,)
    peak_x: np.ndarray | None = None  # (G,)

    def summary(self) -> dict[str, float]:
        """The unit's figures over all groups, as people compare them across units."""
        out = {
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
    channel = gates.channel[index].numpy().astype(np.float64)
    if gates.spatial is None:
        return GateStats(channel.mean(1), channel.std(1))
    # In NumPy, not torch: the page computes this on its render threads (see `is_constant`).
    maps = gates.spatial[index].numpy().mean(axis=1, dtype=np.float64)  # (G, h, w)
    g, h, w = maps.shape
    flat = maps.reshape(g, -1)
    p = flat / flat.sum(1, keepdims=True)
    entropy = -(p * np.log(np.maximum(p, 1e-12))).sum(1) / math.log(max(2, h * w))
    peak = flat.argmax(1)
    return GateStats(
        channel_mean=channel.mean(1),
        channel_std=channel.std(1),
        spatial_mean=flat.mean(1),
        spatial_std=flat.std(1),
        spatial_entropy=entropy,
        peak_y=(peak // w + 0.5) / h,
        peak_x=(peak % w + 0.5) / w,
    )


def unit_summary(gates: UnitGates, index: int) -> dict[str, Any]:
    """One unit's gates of one image as the explanation document and a study's rows keep them:
    `channel`, all G·c channel-gate values group by group; `groups`; and per group the spatial
    figures of `GateStats` (None for a unit without a spatial gate, as SE's)."""
    stats = gate_stats(gates, index)
    summary: dict[str, Any] = {
        "channel": gates.channel[index].flatten().tolist(),
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
    parts = [gates.channel.numpy()]
    if gates.spatial is not None:
        parts.append(gates.spatial.numpy())
    low = min(float(p.min()) for p in parts)
    high = max(float(p.max()) for p in parts)
    return high - low <= tol


def stage_of(path: str) -> int:
    """The stage of a unit inside a ResNet-style `layer<N>.<block>` (0 when not in one)."""
    head = path.split(".", 1)[0]
    return int(head[5:]) if head.startswith("layer") and head[5:].isdigit() else 0
